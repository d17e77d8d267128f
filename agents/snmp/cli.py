"""``dcim agent snmp``: poll PDUs, CDUs, UPSes and switches once (print) or on an interval (MQTT + /metrics)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import time

import click
from prometheus_client import CollectorRegistry

from dcim.agents.snmp.poller import Detection, Device, DevicePoll, Poller
from dcim.agents.snmp.profile import load_profile, load_profiles
from dcim.config import SiteConfig, SnmpDeviceConfig, load_site
from dcim.errors import ConfigError, DeviceError
from dcim.lineprotocol.encode import encode

log = logging.getLogger(__name__)


def _env(var: str, what: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"{what}: environment variable {var} is not set or empty")
    return value


def _parse_target(target: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep:
        return target, 161
    try:
        return host, int(port)
    except ValueError:
        raise ConfigError(f"--target {target!r}: port must be a number") from None


def devices_from_site(site: SiteConfig, *, community: str | None, port_base: int | None) -> list[Device]:
    """The site's snmp_agent.devices; when none are listed, every PDU and CDU with a port.

    Ports come from ``snmp_port`` or ``port_base`` + position, PDUs by rack then CDUs, the order
    ``python -m dcim.simulators.snmp serve --port-base`` uses.
    """
    cfg = site.snmp_agent
    out: list[Device] = []
    for d in cfg.devices:
        out.append(_from_config(site, d, community))
    if out:
        return out
    i = 0
    for rack in site.racks():
        for pdu in rack.pdus:
            port = pdu.snmp_port or (port_base + i if port_base else None)
            i += 1
            if port is None:
                continue
            tags = {**site.rack_tags(rack.name), "pdu": pdu.name, "feed": pdu.feed}
            out.append(Device(f"{rack.name}-{pdu.name}", port=port, community=community or "public", tags=tags))
    for loop in site.loops:
        port = loop.snmp_port or (port_base + i if port_base else None)
        i += 1
        if port is None:
            continue
        out.append(Device(loop.cdu, port=port, community=community or "public", tags=site.loop_tags(loop)))
    if not out:
        raise ConfigError("the site lists no snmp_agent.devices and no PDU or loop has an snmp_port "
                          "(give --port-base for simulated devices)")
    return out


def _from_config(site: SiteConfig, d: SnmpDeviceConfig, community: str | None) -> Device:
    tags: dict[str, str] = {}
    if d.rack:
        try:
            tags.update(site.rack_tags(d.rack))
        except KeyError:
            raise ConfigError(f"snmp_agent.devices {d.name!r}: unknown rack {d.rack!r}") from None
    for loop in site.loops:
        if loop.cdu == d.name:
            tags.update(site.loop_tags(loop))
    tags.setdefault("site", site.site)
    tags.update(d.tags)
    dev = Device(d.name, d.address, d.port, d.version, profile=d.profile, tags=tags, timeout_s=d.timeout_s,
                 retries=d.retries, max_repetitions=d.max_repetitions)
    if d.version == "3":
        if d.v3 is None:
            raise ConfigError(f"snmp_agent.devices {d.name!r}: version 3 needs a v3 section")
        dev.v3_user = d.v3.user
        dev.v3_auth_protocol = d.v3.auth_protocol
        dev.v3_auth_key = d.v3.auth_key.resolve().get_secret_value()
        dev.v3_priv_protocol = d.v3.priv_protocol
        dev.v3_priv_key = d.v3.priv_key.resolve().get_secret_value()
    else:
        dev.community = d.community.resolve().get_secret_value() if d.community else (community or "public")
    return dev


def _payload(poll: DevicePoll) -> bytes:
    out = encode([*poll.records, poll.health])
    return out if isinstance(out, bytes) else out.encode()


@click.command("snmp")
@click.option("--target", "targets", multiple=True, metavar="HOST[:PORT]", help="device to poll (repeatable)")
@click.option("--community", default=None, help="v2c community (visible in `ps`; prefer --community-env)")
@click.option("--community-env", default=None, metavar="VAR", help="environment variable holding the community")
@click.option("--snmp-version", "version", type=click.Choice(["2c", "3"]), default="2c", show_default=True)
@click.option("--v3-user", default=None)
@click.option("--v3-auth-protocol", type=click.Choice(["SHA", "SHA256", "SHA512", "MD5"]), default="SHA")
@click.option("--v3-auth-env", default=None, metavar="VAR", help="environment variable holding the v3 auth key")
@click.option("--v3-priv-protocol", type=click.Choice(["AES", "AES192", "AES256", "DES"]), default="AES")
@click.option("--v3-priv-env", default=None, metavar="VAR", help="environment variable holding the v3 priv key")
@click.option("--profile", default="auto", show_default=True, help="profile name, a profile YAML path, or auto")
@click.option("--rack", default=None, help="rack tag for --target devices")
@click.option("--pdu", default=None, help="device tag (pdu/cdu/ups/switch) for --target devices")
@click.option("--site-name", default=None, help="site tag for --target devices")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="site YAML")
@click.option("--port-base", type=int, default=None, help="with --config: ports of simulated devices")
@click.option("--timeout-s", type=float, default=2.0, show_default=True)
@click.option("--retries", type=int, default=1, show_default=True)
@click.option("--max-repetitions", type=int, default=25, show_default=True)
@click.option("--backend", type=click.Choice(["fast", "pysnmp"]), default="fast", show_default=True,
              help="v2c implementation: our codec (fast) or pysnmp (reference)")
@click.option("--detect", "detect_only", is_flag=True,
              help="print the profile auto-detection chooses for each device and why, then exit "
                   "(exit 1 if a device is refused)")
@click.option("--once", is_flag=True, help="poll once, print, exit (exit 1 if a device failed)")
@click.option("--format", "fmt", type=click.Choice(["lp", "json"]), default="lp", show_default=True)
@click.option("--interval-s", type=float, default=None, help="run mode poll interval (default: config or 10)")
@click.option("--metrics-port", type=int, default=None, help="run mode /metrics port (0: off)")
def snmp_cmd(targets: tuple[str, ...], community: str | None, community_env: str | None, version: str,
             v3_user: str | None, v3_auth_protocol: str, v3_auth_env: str | None, v3_priv_protocol: str,
             v3_priv_env: str | None, profile: str, rack: str | None, pdu: str | None, site_name: str | None,
             config_path: str | None, port_base: int | None, timeout_s: float, retries: int, max_repetitions: int,
             backend: str, detect_only: bool, once: bool, fmt: str, interval_s: float | None, metrics_port: int | None) -> None:
    """Poll rack PDUs, CDUs, UPSes and switches over SNMP; values leave in SI units.

    A community given with --community is visible to other users in `ps`; use --community-env.
    """
    if community_env:
        community = _env(community_env, "--community-env")
    profiles = load_profiles()
    if profile not in ("auto", *profiles):
        custom = load_profile(profile)
        profiles[custom.name] = custom
        profile = custom.name
    site: SiteConfig | None = load_site(config_path) if config_path else None
    devices: list[Device] = []
    if site is not None and not targets:
        devices = devices_from_site(site, community=community, port_base=port_base)
    for t in targets:
        host, port = _parse_target(t)
        tags: dict[str, str] = {}
        if site_name or site is not None:
            tags["site"] = site_name or site.site  # type: ignore[union-attr]
        if rack:
            tags["rack"] = rack
        dev = Device(pdu or (t if len(targets) > 1 else host), host, port, version, community or "public",
                     profile=profile, tags=tags, timeout_s=timeout_s, retries=retries,
                     max_repetitions=max_repetitions)
        if pdu:
            dev.tags["pdu"] = pdu
        if version == "3":
            if not (v3_user and v3_auth_env and v3_priv_env):
                raise click.UsageError("--snmp-version 3 needs --v3-user, --v3-auth-env and --v3-priv-env")
            dev.v3_user = v3_user
            dev.v3_auth_protocol = v3_auth_protocol
            dev.v3_auth_key = _env(v3_auth_env, "--v3-auth-env")
            dev.v3_priv_protocol = v3_priv_protocol
            dev.v3_priv_key = _env(v3_priv_env, "--v3-priv-env")
        devices.append(dev)
    if not devices:
        raise click.UsageError("give --target HOST[:PORT] or --config site.yaml")
    for d in devices:
        d.backend = backend
        if d.profile == "auto" and profile != "auto":
            d.profile = profile
    max_in_flight = site.snmp_agent.max_in_flight if site else 64
    if detect_only:
        found = asyncio.run(_detect(devices, profiles, max_in_flight))
        for det in found:
            if isinstance(det, str):
                click.echo(f"error: {det}", err=True)
            elif fmt == "json":
                click.echo(json.dumps(dataclasses.asdict(det)))
            else:
                click.echo("\n".join(det.lines()))
        if not all(isinstance(det, Detection) and det.chosen for det in found):
            raise SystemExit(1)
        return
    if once:
        polls = asyncio.run(_once(devices, profiles, max_in_flight))
        failed = False
        for p in polls:
            if fmt == "lp":
                try:
                    out = _payload(p).decode()
                except Exception as exc:  # noqa: BLE001 - the other devices' polls still go out
                    failed = True
                    click.echo(f"error: {p.device}: cannot encode the poll: {exc}", err=True)
                    continue
                click.echo(out, nl=False)
            else:
                for r in [*p.records, p.health]:
                    click.echo(json.dumps({"measurement": r.measurement, "tags": r.tags, "fields": r.fields,
                                           "time_ns": r.time_ns}))
            if not p.ok:
                click.echo(f"error: {p.error}", err=True)
        if failed or not all(p.ok for p in polls):
            raise SystemExit(1)
        return
    cfg = site.snmp_agent if site else None
    interval = interval_s or (cfg.interval_s if cfg else 10.0)
    port = metrics_port if metrics_port is not None else (cfg.metrics.port if cfg else 9116)
    host = cfg.metrics.host if cfg else "127.0.0.1"
    mqtt = site.mqtt if site else None
    asyncio.run(run(devices, profiles, site_tag=site.site if site else (site_name or "site"), mqtt=mqtt,
                    interval_s=interval, metrics_host=host, metrics_port=port,
                    queue_max=cfg.queue_max if cfg else 10_000, max_in_flight=max_in_flight))


async def _detect(devices: list[Device], profiles: dict, max_in_flight: int) -> list[Detection | str]:
    out: list[Detection | str] = []
    async with Poller(devices, profiles, max_in_flight=max_in_flight) as poller:
        for d in devices:
            try:
                out.append(await poller.detection(d))
            except DeviceError as exc:
                out.append(str(exc))
    return out


async def _once(devices: list[Device], profiles: dict, max_in_flight: int) -> list[DevicePoll]:
    async with Poller(devices, profiles, max_in_flight=max_in_flight) as poller:
        return await poller.poll_all()


def device_topic(prefix: str, site: str, d: Device) -> str:
    rack = d.tags.get("rack") or d.tags.get("row") or "-"
    return f"{prefix}/{site}/{rack}/{d.name}/snmp"


async def run(devices: list[Device], profiles: dict, *, site_tag: str, mqtt, interval_s: float,  # noqa: ANN001
              metrics_host: str, metrics_port: int, queue_max: int, max_in_flight: int,
              polls_max: int | None = None, registry: CollectorRegistry | None = None,
              stop: asyncio.Event | None = None) -> None:
    """Run mode: poll each device every ``interval_s``, publish one message per device poll.

    SIGTERM and SIGINT (or ``stop``) end the polling; the polls the broker has not acknowledged yet
    are flushed before the process exits, so a restart by systemd loses nothing queued.
    """
    from dcim.exporter import serve_metrics
    from dcim.agents.publisher import Publisher
    from dcim.config import MqttConfig

    registry = registry or CollectorRegistry()
    mqtt = mqtt or MqttConfig()
    server = serve_metrics(registry, metrics_host, metrics_port) if metrics_port else None
    host = socket.gethostname()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)

    async def pause(seconds: float) -> bool:
        """Sleep, or return True at once when asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
        return stop.is_set()

    try:
        publisher = Publisher(mqtt, client_id=mqtt.client_id or f"dcim-snmp-{host}-{os.getpid()}",
                              status_topic=f"{mqtt.topic_prefix}/{site_tag}/_agents/snmp-{host}/status",
                              queue_max=queue_max, registry=registry, component="snmp")
        async with Poller(devices, profiles, max_in_flight=max_in_flight, registry=registry) as poller, publisher:
            poller.queue_stats = lambda: (publisher.depth, publisher.dropped)

            async def device_loop(d: Device, offset_s: float) -> None:
                # each device on its own schedule: a silent device delays only its own messages
                next_at = time.monotonic() + offset_s
                if await pause(offset_s):
                    return
                n = 0
                while polls_max is None or n < polls_max:
                    # one device's failure of any kind never ends its own loop or the others'
                    payload: bytes | None = None
                    try:
                        p = await poller.poll_device(d)
                        payload = _payload(p)
                    except Exception as exc:  # noqa: BLE001
                        log.exception("%s: poll failed outside the device exchange", d.name)
                        p = poller.failed_poll(d, f"{d.name}: {type(exc).__name__}: {exc}")
                        try:
                            payload = _payload(p)
                        except Exception:  # noqa: BLE001 - e.g. a configured tag line protocol cannot carry
                            log.exception("%s: not even the health record can be encoded", d.name)
                    if payload is not None:
                        try:
                            publisher.publish(device_topic(mqtt.topic_prefix, site_tag, d), payload)
                        except Exception:  # noqa: BLE001
                            log.exception("%s: publishing the poll failed", d.name)
                    if not p.ok:
                        log.warning("%s", p.error)
                    n += 1
                    if polls_max is not None and n >= polls_max:
                        break
                    next_at += interval_s
                    while next_at < time.monotonic():  # overran: skip the missed slots
                        next_at += interval_s
                    if await pause(next_at - time.monotonic()):
                        return

            # start times spread over the first interval, so a large fleet does not poll in one burst
            spread = interval_s / max(1, len(devices))
            await asyncio.gather(*(device_loop(d, i * spread) for i, d in enumerate(devices)))
            if not await publisher.flush(5.0):
                log.warning("stopping with %d polls the broker has not acknowledged", publisher.depth)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        if server is not None:
            server.close()
