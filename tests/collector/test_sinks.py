"""InfluxDB sinks against a scripted loopback HTTP server: each answer becomes the right error."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from dcim.collector.sinks import EmbeddedSink, InfluxSink, retry_after
from dcim.config import InfluxConfig, Secret
from dcim.errors import BatchTooLarge, SinkRejected, SinkUnavailable


class Scripted(ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.answers: list[tuple[int, dict, bytes]] = []
        self.requests: list[dict] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        u = urlparse(self.path)
        self.server.requests.append({"path": u.path, "query": parse_qs(u.query), "headers": dict(self.headers),
                                     "body": body})
        status, headers, payload = self.server.answers.pop(0) if self.server.answers else (204, {}, b"")
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    s = Scripted()
    yield s
    s.shutdown()
    s.server_close()


BODY = b"gpu,node=n1 power_w=1 1\n"


def test_v1_writes_with_db_rp_and_basic_auth_in_a_header(server, monkeypatch):
    monkeypatch.setenv("INFLUX_PW", "s3cret-pw")
    sink = InfluxSink(InfluxConfig(url=server.url, api="v1", database="dcim", retention_policy="raw",
                                   username="collector", password=Secret(env="INFLUX_PW")))
    sink.write_sync(BODY)
    (req,) = server.requests
    assert req["path"] == "/write" and req["body"] == BODY
    assert req["query"] == {"db": ["dcim"], "rp": ["raw"], "precision": ["ns"]}
    assert req["headers"]["Authorization"] == "Basic " + base64.b64encode(b"collector:s3cret-pw").decode()
    server.answers.append((401, {}, b'{"error":"authorization failed"}'))
    with pytest.raises(SinkUnavailable) as exc:
        sink.write_sync(BODY)
    assert exc.value.status == 401 and "s3cret-pw" not in str(exc.value)
    assert "credentials" in str(exc.value)


def test_v2_writes_with_org_bucket_and_token(server, monkeypatch):
    monkeypatch.setenv("INFLUX_TOKEN", "tok-123")
    sink = InfluxSink(InfluxConfig(url=server.url, api="v2", org="acme", bucket="dcim", token=Secret(env="INFLUX_TOKEN")))
    assert sink.name == "influxdb_v2"
    sink.write_sync(BODY)
    (req,) = server.requests
    assert req["path"] == "/api/v2/write"
    assert req["query"] == {"org": ["acme"], "bucket": ["dcim"], "precision": ["ns"]}
    assert req["headers"]["Authorization"] == "Token tok-123"


def test_gzip_bodies(server):
    import gzip

    sink = InfluxSink(InfluxConfig(url=server.url, gzip=True))
    sink.write_sync(BODY)
    (req,) = server.requests
    assert req["headers"]["Content-Encoding"] == "gzip" and gzip.decompress(req["body"]) == BODY


@pytest.mark.parametrize(("status", "headers", "error", "retry"), [
    (400, {}, SinkRejected, None),
    (422, {}, SinkRejected, None),
    (413, {}, BatchTooLarge, None),
    (429, {"Retry-After": "7"}, SinkUnavailable, 7.0),
    (503, {"Retry-After": "2"}, SinkUnavailable, 2.0),
    (503, {}, SinkUnavailable, None),
    (500, {}, SinkUnavailable, None),
    (404, {}, SinkUnavailable, None),
])
def test_answers_by_kind(server, status, headers, error, retry):
    sink = InfluxSink(InfluxConfig(url=server.url))
    server.answers.append((status, headers, b'{"error":"nope"}'))
    with pytest.raises(error) as exc:
        sink.write_sync(BODY)
    assert type(exc.value) is error
    assert exc.value.status == status and exc.value.retry_after_s == retry
    assert "nope" in str(exc.value)


def test_connection_refused_is_unavailable():
    import servers

    sink = InfluxSink(InfluxConfig(url=f"http://127.0.0.1:{servers.free_tcp_port()}", timeout_s=2))
    with pytest.raises(SinkUnavailable) as exc:
        sink.write_sync(BODY)
    assert exc.value.status is None


def test_retry_after_forms():
    assert retry_after("5") == 5.0
    assert retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now_s=1445412470.0) == pytest.approx(10.0)


async def test_embedded_sink_writes_the_store(tmp_path):
    sink = EmbeddedSink(tmp_path)
    await sink.write(b"gpu,node=n1 power_w=1.5 1700000000000000000\npdu,pdu=p power_w=2.5 1700000000000000001\n")
    assert sink.store.measurements() == ["gpu", "pdu"]
    assert [r.fields for r in sink.store.query()] == [{"power_w": 1.5}, {"power_w": 2.5}]
    sink.close()


def test_influxdb_v1_gets_unsigned_fields_as_integers_and_refuses_past_int64():
    from dcim.collector.sinks import InfluxSink
    from dcim.config import InfluxConfig
    from dcim.errors import SinkRejected

    v1 = InfluxSink(InfluxConfig(url="http://127.0.0.1:9", api="v1"))
    v2 = InfluxSink(InfluxConfig(url="http://127.0.0.1:9", api="v2", bucket="b"))
    body = (b"netif,ifname=eth0,switch=s1 rx_bytes_total=9223372036854775807u,rx_errors_total=3u 5\n"
            b'agent,host=h message="x=5u y" 6\n')
    assert v2.adapt(body) == body  # InfluxDB 2/3, VictoriaMetrics: unsigned as sent
    assert v1.adapt(body) == (b"netif,ifname=eth0,switch=s1 rx_bytes_total=9223372036854775807i,rx_errors_total=3i 5\n"
                              b'agent,host=h message="x=5u y" 6\n')
    with pytest.raises(SinkRejected, match=r"18446744073709551615 of 'netif' is past 2\^63-1"):
        v1.adapt(b"netif,ifname=eth0,switch=s1 rx_bytes_total=18446744073709551615u 5\n")
    v1.close()
    v2.close()
