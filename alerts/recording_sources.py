"""Where recordings come from: the simulator, an InfluxDB range, the live MQTT stream.

Each source yields records; ``alerts.recording.write_recording`` puts them in the canonical order.
The embedded store's source sits with the collector's store it reads, in ``dcim.app.record``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from dcim.alerts.recording import DERIVED_MEASUREMENTS, resolve_topology
from dcim.errors import RecordingError
from dcim.lineprotocol.decode import decode_report
from dcim.record import Record


def records_from_simulator(scenario: str | None, duration_s: float, *, site=None, topology: str = "embedded",  # noqa: ANN001
                           seed: int = 42, step_s: float = 1.0) -> Iterator[Record]:
    """Run the hall model with a scenario and yield what its devices would publish, step by step."""
    from dcim.simulators.hall import Hall
    from dcim.simulators.scenarios import load_scenario

    if site is None:
        site = resolve_topology(topology)
    hall = Hall(site, seed=seed, scenario=load_scenario(scenario) if scenario else None)
    steps = round(duration_s / step_s)
    for _ in range(steps):
        hall.step(step_s)
        yield from hall.records()


def _influx_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def records_from_influx(url: str, db: str, *, start_ns: int, end_ns: int, tags: dict[str, str] | None = None,
                        username: str | None = None, password: str | None = None, window_s: float = 600.0,
                        timeout_s: float = 30.0, ca_file: str | Path | None = None) -> Iterator[Record]:
    """Records of an InfluxDB 1.x database (or a 2.x/3.x v1 API) in [start_ns, end_ns], time-ordered per window.

    Field types come from ``SHOW FIELD KEYS``, because the JSON answer prints 30.0 as 30. A tag
    filter applies to the measurements that carry the tag; the others (a loop has no rack) come in
    whole, so the engine still sees what the filtered racks depend on.
    """
    import ssl

    import httpx

    from dcim.config import check_url_credentials

    try:
        check_url_credentials(url)
    except ValueError as exc:
        raise RecordingError(f"--from-influx: {exc}") from None
    # InfluxDB 1.x takes credentials from the URL query or an Authorization header, never from a
    # form body; a header keeps them out of URLs, logs and the recording's header
    auth = httpx.BasicAuth(username, password or "") if username else None
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True

    def query(client: httpx.Client, q: str) -> list[dict]:
        try:
            resp = client.post("/query", data={"q": q, "db": db, "epoch": "ns"})
        except httpx.HTTPError as exc:
            msg = f"InfluxDB at {url} is not reachable: {exc}"
            raise RecordingError(msg) from exc
        if resp.status_code == 401:
            msg = f"InfluxDB at {url} refused the credentials (HTTP 401): check --user and --password-env"
            raise RecordingError(msg)
        if resp.status_code != 200:
            msg = f"InfluxDB answered HTTP {resp.status_code} to {q!r}: {resp.text[:300]}"
            raise RecordingError(msg)
        results = resp.json().get("results", [])
        for res in results:
            if "error" in res:
                msg = f"InfluxDB refused {q!r}: {res['error']}"
                raise RecordingError(msg)
        return [s for res in results for s in res.get("series", [])]

    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, auth=auth, verify=verify) as client:
        types: dict[str, dict[str, str]] = {}
        tag_keys: dict[str, set[str]] = {}
        for s in query(client, "SHOW FIELD KEYS"):
            types[s["name"]] = {row[0]: row[1] for row in s.get("values", [])}
        for s in query(client, "SHOW TAG KEYS"):
            tag_keys[s["name"]] = {row[0] for row in s.get("values", [])}
        measurements = sorted(m for m in types if m not in DERIVED_MEASUREMENTS)
        step = int(window_s * 1e9)
        lo = start_ns
        while lo <= end_ns:
            hi = min(lo + step, end_ns + 1)
            window: list[Record] = []
            for m in measurements:
                where = [f"time >= {lo}", f"time < {hi}"]
                where += [f"\"{k}\" = '{_influx_escape(v)}'" for k, v in (tags or {}).items() if k in tag_keys.get(m, ())]
                q = f'SELECT * FROM "{m}" WHERE {" AND ".join(where)} GROUP BY *'
                ftypes = types[m]
                for s in query(client, q):
                    series_tags = {k: v for k, v in (s.get("tags") or {}).items() if v != ""}
                    cols = s["columns"]
                    for row in s.get("values", []):
                        fields = {}
                        for c, v in zip(cols[1:], row[1:], strict=True):
                            if v is None:
                                continue
                            t = ftypes.get(c)
                            fields[c] = float(v) if t == "float" else int(v) if t == "integer" else v
                        if fields:
                            window.append(Record(m, dict(series_tags), fields, int(row[0])))
            window.sort(key=lambda r: r.time_ns)  # type: ignore[arg-type,return-value]
            yield from window
            lo = hi


async def records_from_mqtt(url: str, *, topics: Iterable[str] = ("dcim/#"), duration_s: float | None = None,
                            max_messages: int | None = None, ready=None, idle_s: float | None = None,  # noqa: ANN001
                            counts: dict[str, int] | None = None, mqtt=None) -> list[Record]:  # noqa: ANN001
    """Line-protocol payloads from an MQTT broker for ``duration_s`` (or ``max_messages``, or until idle).

    ``ready`` (an asyncio.Event) is set once the subscriptions are in place. Payloads that are not
    line protocol (JSON from third-party devices, status messages) are counted in ``counts``.
    """
    import asyncio

    import aiomqtt

    from dcim import mqtt as boundary
    from dcim.config import MqttConfig
    from dcim.errors import ConfigError

    cfg = mqtt if mqtt is not None else MqttConfig(url=url)  # MqttConfig: user, password, TLS
    try:
        args = boundary.client_args(cfg)
    except (ConfigError, ValueError) as exc:
        raise RecordingError(f"--from-mqtt: {exc}") from None
    counts = counts if counts is not None else {}
    counts.setdefault("messages", 0)
    counts.setdefault("skipped", 0)
    out: list[Record] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_s if duration_s else None
    try:
        async with aiomqtt.Client(**args) as client:
            for t in topics:
                await client.subscribe(t, qos=1)
            if ready is not None:
                ready.set()
            it = aiomqtt_messages(client)
            while True:
                timeouts = [x for x in (idle_s, deadline - loop.time() if deadline else None) if x is not None]
                try:
                    msg_ = await asyncio.wait_for(anext(it), min(timeouts)) if timeouts else await anext(it)
                except (TimeoutError, StopAsyncIteration):
                    break
                counts["messages"] += 1
                payload = msg_.payload if isinstance(msg_.payload, (bytes, bytearray)) else str(msg_.payload).encode()
                result = decode_report(bytes(payload))
                if result.errors or not result.records:
                    counts["skipped"] += 1
                out.extend(r for r in result.records if r.time_ns is not None)
                if max_messages is not None and counts["messages"] >= max_messages:
                    break
    except aiomqtt.MqttError as exc:
        msg = f"MQTT broker at {url} failed: {boundary.describe(exc)}"
        raise RecordingError(msg) from exc
    out.sort(key=lambda r: r.time_ns)  # type: ignore[arg-type,return-value]
    return out


def aiomqtt_messages(client):  # noqa: ANN001, ANN201
    """The client's message iterator (aiomqtt 2.x: ``client.messages``)."""
    return aiter(client.messages)
