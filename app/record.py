"""``dcim record``: write a recording from a simulator scenario, InfluxDB, the embedded store or MQTT.

It sits in the application because its sources span the layers: the simulator, the peers
(``alerts.recording_sources``) and the collector's embedded store (read here).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import click

from dcim.alerts.recording import (DERIVED_MEASUREMENTS, Header, RecordingReader, format_time, parse_duration_s,
                                   parse_time, resolve_topology, write_recording)
from dcim.alerts.recording_sources import records_from_influx, records_from_mqtt, records_from_simulator
from dcim.collector.store import EmbeddedStore
from dcim.errors import DcimError
from dcim.record import Record


def _in_place(r: Record, tags: dict[str, str]) -> bool:
    """Whether a record passes a location filter: every filter tag it carries has the filter's value
    (a measurement without the tag, the site's or a loop's, comes whole)."""
    return not any(k in r.tags and r.tags[k] != v for k, v in tags.items())


def records_from_store(path: str | Path, *, start_ns: int | None = None, end_ns: int | None = None,
                       tags: dict[str, str] | None = None) -> Iterator[Record]:
    """Records of the embedded store in a time range; a tag filter applies where the measurement has the tag."""
    store = EmbeddedStore(path)
    try:
        for m in store.measurements():
            if m in DERIVED_MEASUREMENTS:
                continue
            for r in store.query(m, start_ns=start_ns, end_ns=end_ns):
                if not tags or _in_place(r, tags):
                    yield r
    finally:
        store.close()


def _location_filter(rack: str | None, row: str | None, where: tuple[str, ...]) -> dict[str, str]:
    tags: dict[str, str] = {}
    if rack:
        tags["rack"] = rack
    if row:
        tags["row"] = row
    for item in where:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            msg = f"--where takes tag=value, got {item!r}"
            raise DcimError(msg)
        tags[key] = value
    return tags


@click.command("record")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Recording to write (columnar; line protocol when named *.lp.gz or with --format lp).")
@click.option("--scenario", help="Simulate this fault scenario (see `dcim simulate --list`).")
@click.option("--simulate", is_flag=True, help="Simulate the hall with no fault (with --duration).")
@click.option("--from-influx", "influx_url", metavar="URL", help="Read an InfluxDB time range (v1 /query API).")
@click.option("--db", help="InfluxDB database (with --from-influx).")
@click.option("--user", help="InfluxDB user (with --from-influx).")
@click.option("--password-env", metavar="VAR", help="Environment variable holding the InfluxDB password.")
@click.option("--ca-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="CA certificate to verify an https:// InfluxDB (with --from-influx) or an mqtts:// broker.")
@click.option("--from-store", "store_path", type=click.Path(file_okay=False, path_type=Path),
              help="Read the embedded store in this folder.")
@click.option("--from-recording", "recording_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Read another recording: convert between formats, or cut out a range or a location.")
@click.option("--format", "fmt", type=click.Choice(["columnar", "lp"]), default=None,
              help="columnar: gzip JSON blocks, several times faster to replay (the default); lp: gzip line "
                   "protocol, for interchange (InfluxDB imports it; the default when the output is named *.lp.gz).")
@click.option("--from-mqtt", "mqtt_url", metavar="URL", help="Record the live MQTT stream, e.g. mqtt://127.0.0.1:1883.")
@click.option("--mqtt-user", help="MQTT user name (with --from-mqtt).")
@click.option("--mqtt-password-env", metavar="VAR", help="Environment variable holding the MQTT password.")
@click.option("--topic", "topics", multiple=True, help="MQTT topic filter (repeatable; default dcim/#).")
@click.option("--max-messages", type=int, help="Stop the MQTT recording after this many messages.")
@click.option("--start", help="Start of the range (RFC 3339 or unix seconds).")
@click.option("--end", help="End of the range, inclusive (RFC 3339 or unix seconds).")
@click.option("--duration", help="Simulated time or MQTT listening time, e.g. 10m (default 10m / 60s).")
@click.option("--rack", help="Only this rack (measurements without a rack tag come whole).")
@click.option("--row", help="Only this row.")
@click.option("--where", multiple=True, metavar="TAG=VALUE", help="Any other tag filter (repeatable).")
@click.option("--measurement", "measurements", multiple=True,
              help="Only this measurement (repeatable), e.g. gpu and coolant_loop for a cooling incident.")
@click.option("--site", "site_file", type=click.Path(dir_okay=False), help="Topology file (default: the embedded hall).")
@click.option("--racks", type=int, help="Simulate a generated hall of this many racks (32 = 1,024 GPUs).")
@click.option("--seed", type=int, default=42, show_default=True, help="Simulator seed.")
@click.option("--step", default="1s", show_default=True, help="Simulator step.")
def record_cmd(out: Path, scenario: str | None, simulate: bool, influx_url: str | None, db: str | None,
               user: str | None, password_env: str | None, ca_file: Path | None,
               store_path: Path | None, recording_path: Path | None,
               fmt: str | None, mqtt_url: str | None, mqtt_user: str | None, mqtt_password_env: str | None,
               topics: tuple[str, ...], max_messages: int | None, start: str | None, end: str | None,
               duration: str | None, rack: str | None, row: str | None, where: tuple[str, ...],
               measurements: tuple[str, ...], site_file: str | None, racks: int | None, seed: int, step: str) -> None:
    """Write a recording for `dcim replay` from exactly one source.

    \b
    dcim record --scenario pump-degradation --duration 10m -o pump.col.gz
    dcim record --from-influx http://127.0.0.1:8086 --db dcim --start 2026-11-27T10:00:00Z \\
                --end 2026-11-27T11:00:00Z --rack A01 -o a01.col.gz
    dcim record --from-store var/store --start ... --end ... -o incident.col.gz
    dcim record --from-mqtt mqtt://127.0.0.1:1883 --duration 5m -o live.col.gz
    dcim record --from-recording pump.col.gz --format lp -o pump.lp.gz   # line protocol, for InfluxDB

    The columnar format is the default (a replay reads it several times faster); an output named
    *.lp.gz, or --format lp, gets line protocol.
    """
    chosen = [n for n, v in (("--scenario/--simulate", scenario or simulate), ("--from-influx", influx_url),
                             ("--from-store", store_path), ("--from-recording", recording_path),
                             ("--from-mqtt", mqtt_url)) if v]
    if len(chosen) != 1:
        msg = ("give exactly one source: --scenario (or --simulate), --from-influx, --from-store, "
               "--from-recording or --from-mqtt")
        raise click.UsageError(msg if not chosen else f"{msg} (got {', '.join(chosen)})")
    from dcim.config import check_url_credentials

    for flag, url in (("--from-influx", influx_url), ("--from-mqtt", mqtt_url)):
        if url:
            try:
                check_url_credentials(url)
            except ValueError as exc:  # before anything is written: the URL goes into the header
                raise click.UsageError(f"{flag}: {exc}") from None
    topology = f"generated:racks={racks}" if racks else (site_file or "embedded")
    tags = _location_filter(rack, row, where)
    start_ns = parse_time(start) if start else None
    end_ns = parse_time(end) if end else None
    header = Header(topology=topology)
    if scenario or simulate:
        dur = parse_duration_s(duration or "10m")
        site = resolve_topology(topology)
        header.source = f"simulator scenario={scenario or 'none'} seed={seed} step={step}"
        records = records_from_simulator(scenario, dur, site=site, seed=seed, step_s=parse_duration_s(step))
        if tags:
            records = (r for r in records if _in_place(r, tags))
    elif influx_url:
        if not db or start_ns is None or end_ns is None:
            raise click.UsageError("--from-influx needs --db, --start and --end")

        password = os.environ.get(password_env) if password_env else None
        if password_env and password is None:
            msg = f"environment variable {password_env} is not set"
            raise DcimError(msg)
        header.source = f"influxdb url={influx_url} db={db}" + "".join(f" {k}={v}" for k, v in sorted(tags.items()))
        header.start_ns, header.end_ns = start_ns, end_ns
        records = records_from_influx(influx_url, db, start_ns=start_ns, end_ns=end_ns, tags=tags,
                                      username=user, password=password, ca_file=ca_file)
    elif store_path:
        header.source = f"store path={store_path}" + "".join(f" {k}={v}" for k, v in sorted(tags.items()))
        header.start_ns, header.end_ns = start_ns, end_ns
        records = records_from_store(store_path, start_ns=start_ns,
                                     end_ns=end_ns + 1 if end_ns is not None else None, tags=tags)
    elif recording_path:
        reader = RecordingReader(recording_path)
        header = reader.header
        header.extra.pop("records", None)
        if site_file or racks:
            header.topology = topology
        if start_ns is not None or end_ns is not None:
            header.start_ns = start_ns if start_ns is not None else header.start_ns
            header.end_ns = end_ns if end_ns is not None else header.end_ns
        records = (r for b in reader.batches() for r in b
                   if (start_ns is None or r.time_ns >= start_ns) and (end_ns is None or r.time_ns <= end_ns)  # type: ignore[operator]
                   and _in_place(r, tags))
    else:
        assert mqtt_url is not None
        counts: dict[str, int] = {}
        dur = parse_duration_s(duration or "60s")
        from dcim.config import MqttConfig, Secret

        if mqtt_password_env and mqtt_password_env not in os.environ:
            raise DcimError(f"environment variable {mqtt_password_env} is not set")
        mqtt_cfg = MqttConfig(url=mqtt_url, username=mqtt_user, ca_file=ca_file,
                              password=Secret(env=mqtt_password_env) if mqtt_password_env else None)
        header.source = f"mqtt url={mqtt_url} topics={','.join(topics or ('dcim/#',))}"
        got = asyncio.run(records_from_mqtt(mqtt_url, topics=topics or ("dcim/#",), duration_s=dur,
                                            max_messages=max_messages, counts=counts, mqtt=mqtt_cfg))
        records = [r for r in got if _in_place(r, tags)]
        if counts.get("skipped"):
            click.echo(f"note: {counts['skipped']} of {counts['messages']} messages were not line protocol "
                       "and are not in the recording", err=True)
    if measurements:
        wanted = {m for item in measurements for m in item.split(",") if m}
        header.extra["measurements"] = ",".join(sorted(wanted))
        records = (r for r in records if r.measurement in wanted)
    n = write_recording(out, records, header, fmt=fmt)
    span = ""
    if header.start_ns is not None and header.end_ns is not None:
        span = f" from {format_time(header.start_ns)} to {format_time(header.end_ns)}"
    click.echo(f"{out}: {n} records{span} ({header.source})", err=True)
