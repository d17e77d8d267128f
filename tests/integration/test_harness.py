"""Proof that each server fixture runs a real, working server on loopback (see conftest.py)."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import servers
from servers import (
    Alertmanager,
    InfluxDB,
    Mosquitto,
    Prometheus,
    ServerStartError,
    VictoriaMetrics,
    wait_until,
)

pytestmark = pytest.mark.integration

SERVER_FIXTURES = ["mosquitto", "influxdb", "victoriametrics", "prometheus", "alertmanager"]


def _client(broker: Mosquitto, client_id: str = "", clean: bool = True) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=clean)
    client.connect(broker.host, broker.port, keepalive=10)
    return client


def _collect(client: mqtt.Client) -> tuple[list[mqtt.MQTTMessage], threading.Event]:
    got: list[mqtt.MQTTMessage] = []
    event = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        got.append(msg)
        event.set()

    client.on_message = on_message
    return got, event


# --- every server ----------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", SERVER_FIXTURES)
def test_servers_listen_on_loopback_only(fixture: str, request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue(fixture)
    sockets = server.listening()
    assert any(port == server.port for _, _, port in sockets), sockets
    assert all(ip == "127.0.0.1" for _, ip, _ in sockets), sockets


def test_free_ports_are_distinct_and_bindable() -> None:
    tcp = {servers.free_tcp_port() for _ in range(20)}
    udp = {servers.free_udp_port() for _ in range(20)}
    assert len(tcp) == 20 and len(udp) == 20
    assert not servers.tcp_port_open(next(iter(tcp)))


# --- Mosquitto -------------------------------------------------------------------------------


def test_mosquitto_publish_subscribe(mosquitto: Mosquitto) -> None:
    topic = f"dcim/test/{uuid.uuid4().hex}"
    sub = _client(mosquitto)
    got, event = _collect(sub)
    sub.subscribe(topic, qos=1)
    sub.loop_start()
    try:
        time.sleep(0.2)
        out = subprocess.run(
            [str(servers.find_binary("mosquitto_pub")), "-h", mosquitto.host,
             "-p", str(mosquitto.port), "-q", "1", "-t", topic,
             "-m", "gpu,node=n1 power_w=301.5 1700000000000000000"],
            capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        assert event.wait(10), "no message came back"
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert got[0].payload == b"gpu,node=n1 power_w=301.5 1700000000000000000"


def test_mosquitto_restart_keeps_persistent_session(mosquitto_factory) -> None:  # noqa: ANN001
    with mosquitto_factory() as broker:
        port = broker.port
        client_id = f"collector-{uuid.uuid4().hex[:8]}"
        sub = _client(broker, client_id, clean=False)
        sub.subscribe("dcim/#", qos=1)
        sub.loop(1)
        sub.disconnect()

        pub = _client(broker)
        pub.loop_start()
        pub.publish("dcim/queued", b"held while offline", qos=1).wait_for_publish(5)
        pub.loop_stop()
        pub.disconnect()

        broker.restart()
        assert broker.port == port

        sub = _client(broker, client_id, clean=False)
        got, event = _collect(sub)
        sub.loop_start()
        try:
            assert event.wait(10), "queued message lost across the restart"
        finally:
            sub.loop_stop()
            sub.disconnect()
        assert got[0].payload == b"held while offline"


def test_mosquitto_factory_bad_config_reports_log(mosquitto_factory) -> None:  # noqa: ANN001
    with pytest.raises(ServerStartError) as info:
        mosquitto_factory(extra_config="no_such_option on\n")
    assert "no_such_option" in str(info.value) or "Unknown" in str(info.value)


def test_mosquitto_factory_extra_listener(mosquitto_factory, free_tcp_port: int) -> None:  # noqa: ANN001
    with mosquitto_factory(extra_config=f"listener {free_tcp_port} 127.0.0.1\n",
                           extra_ports=[free_tcp_port]) as broker:
        assert {p for _, _, p in broker.listening()} == {broker.port, free_tcp_port}


# --- InfluxDB --------------------------------------------------------------------------------


def test_influxdb_write_and_query(influxdb: InfluxDB) -> None:
    influxdb.create_database("harness")
    influxdb.write(["gpu,node=n1,gpu=0 power_w=301.5,temp_c=61i 1700000000000000000",
                    "gpu,node=n1,gpu=1 power_w=288 1700000000000000000"], db="harness")
    rows = influxdb.points('SELECT power_w FROM gpu WHERE node=\'n1\' GROUP BY "gpu"',
                           db="harness")
    assert sorted((r["gpu"], r["power_w"], r["time"]) for r in rows) == [
        ("0", 301.5, 1700000000000000000), ("1", 288.0, 1700000000000000000)]
    with pytest.raises(servers.ServerHTTPError) as info:
        influxdb.write("gpu power_w=", db="harness")
    assert info.value.status == 400


def test_influxdb_restart_same_port_keeps_data(influxdb: InfluxDB) -> None:
    influxdb.create_database("restart")
    influxdb.write("pdu,pdu=p1 power_w=4200 1700000000", db="restart", precision="s")
    port, data_dir = influxdb.port, influxdb.data_dir
    with influxdb.stopped():
        assert not servers.tcp_port_open(port)
    assert (influxdb.port, influxdb.data_dir) == (port, data_dir)
    rows = influxdb.points("SELECT power_w FROM pdu", db="restart", epoch="s")
    assert [(r["time"], r["power_w"]) for r in rows] == [(1700000000, 4200)]


# --- VictoriaMetrics -------------------------------------------------------------------------


def test_victoriametrics_v2_write_and_export(victoriametrics: VictoriaMetrics) -> None:
    now_ms = int(time.time()) * 1000
    victoriametrics.write(f"coolant_loop,loop=a flow_lpm=120.5 {now_ms}", precision="ms")
    series = wait_until(lambda: victoriametrics.export('{__name__="coolant_loop_flow_lpm"}'),
                        10, message="exported series")
    assert series[0]["metric"]["loop"] == "a"
    assert series[0]["values"] == [120.5] and series[0]["timestamps"] == [now_ms]
    # a new metric name reaches /api/v1/query about a second after export() sees it
    result = wait_until(lambda: victoriametrics.query('coolant_loop_flow_lpm{loop="a"}'), 10,
                        message="queryable series")
    assert float(result[0]["value"][1]) == 120.5


# --- Prometheus and Alertmanager -------------------------------------------------------------


def test_prometheus_scrapes_itself(prometheus: Prometheus, promtool: Path) -> None:
    targets = prometheus.wait_targets_up()
    assert [t["labels"]["job"] for t in targets] == ["prometheus"]
    result = wait_until(lambda: prometheus.query('up{job="prometheus"}'), 10,
                        message="up sample")
    assert result[0]["value"][1] == "1"
    check = subprocess.run([str(promtool), "check", "config", str(prometheus.config_path)],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


def test_alertmanager_accepts_and_lists_alerts(alertmanager: Alertmanager) -> None:
    name = f"HarnessAlert{uuid.uuid4().hex[:6]}"
    alertmanager.post_alerts([{"labels": {"alertname": name, "severity": "warning",
                                          "rack": "r1"},
                               "annotations": {"summary": "harness test"}}])
    alerts = wait_until(lambda: alertmanager.alerts(filters=[f'alertname="{name}"']), 10,
                        message="alert listed")
    assert alerts[0]["labels"]["rack"] == "r1"
    assert alerts[0]["status"]["state"] == "active"


# --- SNMP ------------------------------------------------------------------------------------

PDU_RECORDS = (
    "1.3.6.1.2.1.1.1.0|4|Harness PDU\n"
    "1.3.6.1.4.1.99999.1.1.0|66|4200\n"
)
PDU_MODULE = {
    "dcim_pdu": {
        "walk": [],
        "get": ["1.3.6.1.4.1.99999.1.1.0"],
        "metrics": [{"name": "pdu_power_w", "oid": "1.3.6.1.4.1.99999.1.1", "type": "gauge",
                     "help": "PDU input power in watts"}],
        "version": 2,
        "auth": {"community": "pdu"},
    }
}


def test_snmp_exporter_reads_snmpsim(snmpsim_factory, snmp_exporter_factory) -> None:  # noqa: ANN001
    sim = snmpsim_factory(records={"pdu": PDU_RECORDS})
    got = sim.get("1.3.6.1.2.1.1.1.0")
    assert got.returncode == 0 and '"Harness PDU"' in got.stdout, got
    assert sim.listening() == [("udp", "127.0.0.1", sim.port)]
    exporter = snmp_exporter_factory(config=PDU_MODULE)
    samples = exporter.samples(sim.address, "dcim_pdu")
    assert ("pdu_power_w", {}, 4200.0) in samples
    exporter.close()
    sim.close()


def test_snmpsim_v3_user(snmpsim_factory) -> None:  # noqa: ANN001
    sim = snmpsim_factory(records={"pdu": PDU_RECORDS}, v3_user="dcim",
                          v3_auth_key="authpass123", v3_priv_key="privpass123")
    got = sim.get("1.3.6.1.4.1.99999.1.1.0", v3=True)
    assert got.returncode == 0 and "4200" in got.stdout, got
    wrong = sim.get("1.3.6.1.4.1.99999.1.1.0", community="nope", v3=False, timeout_s=0.5,
                    retries=0)
    assert "4200" not in wrong.stdout
    sim.close()


# --- binary discovery ------------------------------------------------------------------------


def test_missing_binary_names_the_package() -> None:
    binary = servers.Binary("nothing", ("/nonexistent/nothing",), "nothing-pkg")
    with pytest.raises(servers.MissingBinaryError, match="apt-get install nothing-pkg"):
        binary.find()


# --- session servers come back ---------------------------------------------------------------


def test_a_test_may_leave_a_session_server_stopped(mosquitto: Mosquitto) -> None:
    mosquitto.stop()
    assert not mosquitto.is_running()


def test_the_next_test_gets_it_back_on_the_same_port(mosquitto: Mosquitto) -> None:
    assert mosquitto.is_running()
    assert servers.tcp_port_open(mosquitto.port)
