"""Sinks: where validated line protocol goes. ``influxdb_v1``, ``influxdb_v2`` and ``embedded``.

A sink takes one pre-encoded batch (newline-separated line protocol) and either returns (done)
or raises one of our errors, which says what the router must do next:

    SinkRejected (400, 422)   the data is refused for good: bisect, dead-letter the bad lines
    BatchTooLarge (413)       split the batch and send the halves
    SinkUnavailable           network error, timeout, 5xx, 429/503 (with retry_after_s), and
                              401/403/404 (a configuration problem: keep the data, say so)

The InfluxDB sinks go through influxdb-client's synchronous HTTP layer (``ApiClient.call_api``)
so every status code and header is ours to see; the client's own batching WriteApi keeps data
in memory only and gives up after its retries, so batching, retries and spooling live here.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import gzip
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from dcim.config import InfluxConfig
from dcim.errors import BatchTooLarge, ConfigError, LineProtocolError, SinkRejected, SinkUnavailable
from dcim.lineprotocol.decode import decode_line
from dcim.lineprotocol.encode import INT64_MAX, encode_record
from dcim.record import UInt

log = logging.getLogger(__name__)


class Sink(Protocol):
    name: str

    async def write(self, body: bytes) -> None: ...

    def close(self) -> None: ...


def retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now_s is None else now_s))


def classify(status: int, body: str, headers: dict[str, str] | None, what: str) -> Exception:
    """Our error for an HTTP answer that is not 2xx."""
    detail = f"{what} answered HTTP {status}: {body.strip()[:300]}"
    if status in (400, 422):
        return SinkRejected(detail, status=status)
    if status == 413:
        return BatchTooLarge(detail, status=status)
    wait = None
    if headers:
        for k, v in headers.items():
            if k.lower() == "retry-after":
                wait = retry_after(v)
    if status in (401, 403, 404):
        detail += " (check the sink's credentials, database/bucket and URL; the data is kept in the spool)"
    return SinkUnavailable(detail, status=status, retry_after_s=wait)


#: an unsigned value in line protocol (``=123u`` before a separator); a hit is decoded properly
_UINT_VALUE = re.compile(rb"=[0-9]+u(?=[, \n]|$)", re.M)


class InfluxSink:
    """InfluxDB ``/write`` (v1: db, rp, user/password) or ``/api/v2/write`` (v2: org, bucket, token).

    A sink declares the field types it stores as sent (``accepts_uint``). InfluxDB 1.x has no
    unsigned type (its parser refuses ``12u``: "invalid number"), so for v1 an unsigned field is
    written as an integer, and one past 2^63-1 is refused with that reason; InfluxDB 2 and 3 and
    VictoriaMetrics (``/api/v2/write``) take ``u`` as it is.
    """

    def __init__(self, config: InfluxConfig) -> None:
        from influxdb_client import InfluxDBClient

        self.config = config
        self.name = "influxdb_v1" if config.api == "v1" else "influxdb_v2"
        self.accepts_uint = config.api != "v1"
        headers = {"Content-Type": "text/plain; charset=utf-8", "Accept": "application/json"}
        token = None
        if config.api == "v1":
            self.path = "/write"
            self.params: list[tuple[str, str]] = [("db", config.database), ("precision", "ns")]
            if config.retention_policy:
                self.params.append(("rp", config.retention_policy))
            if config.username:
                # a header, never a query parameter: URLs end up in error messages and logs
                password = config.password.resolve().get_secret_value() if config.password else ""
                cred = base64.b64encode(f"{config.username}:{password}".encode()).decode()
                headers["Authorization"] = f"Basic {cred}"
        else:
            self.path = "/api/v2/write"
            self.params = [("org", config.org or ""), ("bucket", config.bucket or ""), ("precision", "ns")]
            if config.token:
                token = config.token.resolve().get_secret_value()
        if config.gzip:
            headers["Content-Encoding"] = "gzip"
        self.headers = headers
        tls = {"ssl_ca_cert": str(config.ca_file)} if config.ca_file else {}
        self.client = InfluxDBClient(url=config.url.rstrip("/"), token=token, org=config.org,
                                     timeout=int(config.timeout_s * 1000), enable_gzip=False, **tls)
        self.what = f"{self.name} {config.url}"

    def adapt(self, body: bytes) -> bytes:
        """The body in the types this store takes; SinkRejected names a value it cannot hold."""
        if self.accepts_uint or _UINT_VALUE.search(body) is None:
            return body
        out = []
        for line in body.split(b"\n"):
            if _UINT_VALUE.search(line) is None:
                out.append(line)
                continue
            try:
                rec = decode_line(line.decode("utf-8"))
            except (LineProtocolError, UnicodeDecodeError):
                out.append(line)  # not ours to judge: the store answers it
                continue
            for k, v in rec.fields.items():
                if type(v) is UInt:
                    if v > INT64_MAX:
                        msg = (f"{self.what}: field {k!r} = {int(v)} of {rec.measurement!r} is past 2^63-1, the "
                               "largest integer InfluxDB 1.x can store (it has no unsigned type)")
                        raise SinkRejected(msg)
                    rec.fields[k] = int(v)
            out.append(encode_record(rec).encode())
        return b"\n".join(out)

    def write_sync(self, body: bytes) -> None:
        from influxdb_client.rest import ApiException

        body = self.adapt(body)
        data = gzip.compress(body, compresslevel=1) if self.config.gzip else body
        try:
            self.client.api_client.call_api(
                self.path, "POST", query_params=list(self.params), header_params=dict(self.headers),
                body=data, auth_settings=[], _return_http_data_only=True, _preload_content=True,
            )
        except ApiException as exc:
            raw = exc.body or b""
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            headers = dict(exc.headers.items()) if exc.headers else None
            raise classify(exc.status or 0, text, headers, self.what) from None
        except Exception as exc:  # noqa: BLE001 - urllib3/socket errors: the store is away
            raise SinkUnavailable(f"{self.what}: {type(exc).__name__}: {_short(exc)}") from exc

    async def write(self, body: bytes) -> None:
        await asyncio.to_thread(self.write_sync, body)

    def close(self) -> None:
        self.client.close()


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "..."


class EmbeddedSink:
    """The embedded store as a sink: no server, files on local disk (see collector/store.py)."""

    name = "embedded"

    def __init__(self, path: Path, *, clock: Callable[[], int] = time.time_ns) -> None:
        from dcim.collector.store import EmbeddedStore

        self.store = EmbeddedStore(path, clock=clock)
        self.store._open_writer()  # noqa: SLF001 - a second collector on the same store fails at start, not later

    def write_sync(self, body: bytes) -> None:
        # the lines the collector validated, written as they arrived (not decoded and encoded again)
        try:
            self.store.write_lines(body.decode("utf-8", "replace").split("\n"))
        except LineProtocolError as exc:  # not from the validator; answer as InfluxDB would, so the router bisects
            raise SinkRejected(f"embedded store: not line protocol: {exc}", status=400) from None
        except ConfigError:
            raise
        except OSError as exc:  # disk full, permissions: keep the data (spool) and say why
            raise SinkUnavailable(f"embedded store {self.store.path}: {exc}") from exc

    async def write(self, body: bytes) -> None:
        await asyncio.to_thread(self.write_sync, body)

    def close(self) -> None:
        self.store.close()


#: Every sink kind, by ``kind``: the configuration model is ``dcim.config.SINK_CONFIGS[kind]``.
SINKS: dict[str, Callable[..., Sink]] = {
    "influxdb_v1": lambda cfg, clock: InfluxSink(cfg.influx()),
    "influxdb_v2": lambda cfg, clock: InfluxSink(cfg.influx()),
    "embedded": lambda cfg, clock: EmbeddedSink(cfg.path, clock=clock),
}


def build_sink(cfg, *, clock: Callable[[], int] = time.time_ns) -> Sink:  # noqa: ANN001 - one of SINK_CONFIGS
    """The sink a ``collector.sinks`` entry describes, named by its ``name`` (default its kind)."""
    sink = SINKS[cfg.kind](cfg, clock)
    sink.name = cfg.name or cfg.kind
    if isinstance(sink, InfluxSink):
        sink.what = f"{sink.name} {sink.config.url}"
    return sink


def make_sink(kind: str, influx: InfluxConfig, embedded_path: Path, *,
              clock: Callable[[], int] = time.time_ns) -> Sink:
    if kind == "embedded":
        return EmbeddedSink(embedded_path, clock=clock)
    if kind == "influx":
        return InfluxSink(influx)
    msg = f"unknown sink {kind!r}"
    raise ConfigError(msg)
