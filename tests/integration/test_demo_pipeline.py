"""``dcim demo`` end to end: the whole pipeline on the simulated hall, with no servers and with real ones.

A shortened pump incident (loop-a flow falls from 15 s, recovers from 1m45s) keeps each run to
a few hundred simulated seconds played as fast as the machine allows.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from dcim.alerts.engine import Engine
from dcim.alerts.recording import RecordingReader
from dcim.alerts.replay import replay
from dcim.collector.store import EmbeddedStore
from dcim.config import named_site
from dcim.app.demo import run_demo
from dcim.app.pipeline import PipelineOptions, transition_key
from dcim.app.record import records_from_store
from dcim.simulators.scenarios import load_scenario

QUICK_PUMP = """\
name: quick-pump
description: loop-a pump degradation, shortened for tests
duration: 3m
faults:
  - kind: pump_degradation
    loop: loop-a
    flow_fraction: 0.25
    at: 15s
    ramp: 30s
    until: 1m45s
    recover: 15s
    note: loop-a flow falling
"""
FAST = 100_000.0  # as fast as the machine allows
SOURCES = ("gpu", "pdu_phase", "coolant_loop")


def quick_pump(folder: Path):
    path = folder / "quick-pump.yaml"
    path.write_text(QUICK_PUMP)
    return load_scenario(str(path))


def _run(folder: Path, **options):
    lines: list[str] = []
    duration_s = options.pop("duration_s", None)
    run = run_demo(named_site("h100-hall"), quick_pump(folder), PipelineOptions(out_dir=folder / "run", **options),
                   speed=FAST, duration_s=duration_s, echo=lines.append)
    return run, lines


def _row_a(labels: dict[str, str]) -> bool:
    return labels.get("row") == "A" or labels.get("loop") == "loop-a"


# --- no servers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    threads_before = threading.active_count()
    run, lines = _run(tmp_path_factory.mktemp("demo-local"))
    return run, lines, threads_before


def test_records_of_every_source_reach_the_embedded_store(local):
    run, _, _ = local
    pipe = run.pipeline
    records = list(records_from_store(pipe.store_path))
    stored = Counter(r.measurement for r in records)
    for m in SOURCES:
        assert stored[m] > 0, m
        assert stored[m] == pipe.records_sent[m], m  # nothing lost on the way
    per_node = Counter(r.tags["node"] for r in records if r.measurement == "gpu")
    assert len(per_node) == 32 and all(n % 8 == 0 for n in per_node.values())  # each poll reads 8 GPUs
    assert len({r.tags["loop"] for r in records if r.measurement == "coolant_loop"}) == 2
    assert len({(r.tags["rack"], r.tags["pdu"]) for r in records if r.measurement == "pdu_phase"}) == 16
    store = EmbeddedStore(pipe.store_path)
    assert len(list(store.query("alert"))) > 0  # the engine's transitions are written with the data
    assert run.result.counts["gpu"] == stored["gpu"]


def test_the_snmp_devices_serve_the_hall_the_demo_steps(local, tmp_path):
    # the SNMP agents run on a replica of the hall in a child process: what the poller read at a
    # time must be what the hall held at that time
    from dcim.simulators.hall import Hall

    run, _, _ = local
    pipe = run.pipeline
    flows = sorted((r.time_ns, r.fields["flow_lpm"]) for r in records_from_store(pipe.store_path)
                   if r.measurement == "coolant_loop" and r.tags["loop"] == "loop-a")
    hall = Hall(named_site("h100-hall"), seed=pipe.hall.seed, scenario=quick_pump(tmp_path), start_ns=pipe.hall.start_ns)
    checked = 0
    for t_ns, flow in flows:
        while hall.time_ns < t_ns:
            hall.advance(1.0)
        assert hall.time_ns == t_ns
        assert flow == pytest.approx(hall.state.loops["loop-a"].flow_lpm, abs=0.1), t_ns
        checked += 1
    assert checked >= 10


def test_the_loop_alert_fires_and_resolves_and_the_gpu_alerts_beneath_are_inhibited(local):
    run, _, _ = local
    board = run.pipeline.board
    ts = board.transitions
    loop = [t for t in ts if t.rule.startswith("Loop") and t.labels.get("loop") == "loop-a"]
    paged = {t.fingerprint for t in loop if t.state == "firing" and not t.inhibited}
    assert paged, "no loop-a alert paged"
    assert paged <= {t.fingerprint for t in loop if t.state == "resolved"}, "a loop-a alert did not resolve"
    gpu = [t for t in ts if t.rule.startswith("Gpu") and _row_a(t.labels) and t.state == "firing"]
    assert len({t.fingerprint for t in gpu}) >= 32, "the incident should heat row A's GPUs into alerts"
    rule_of = {t.fingerprint: t.rule for t in ts}
    assert all(t.inhibited for t in gpu), [(t.rule, t.labels) for t in gpu if not t.inhibited][:3]
    assert {rule_of[t.inhibited_by] for t in gpu} <= {t.rule for t in loop}  # inhibited by loop-a's alerts
    assert not [t for t in ts if t.state == "firing" and not t.inhibited and not _row_a(t.labels)]
    assert not board.firing, "everything resolves by the end of the scenario"


def test_recording_and_report_are_written_and_the_recording_replays_to_the_same_transitions(local):
    run, _, _ = local
    res = run.result
    assert res.recording.is_file() and res.report.is_file()
    page = res.report.read_text()
    assert page.startswith("<!DOCTYPE html") or "<html" in page[:200]
    assert "loop-a" in page
    reader = RecordingReader(res.recording)
    assert reader.header.extra["evaluation_interval_s"] == "1"  # the site's
    engine = Engine(run.pipeline.rules, site=named_site("h100-hall"), evaluation_interval_s=1.0)
    again = replay(reader.batches(), engine, end_ns=reader.header.end_ns).transitions
    assert again
    assert sorted(map(transition_key, again)) == sorted(map(transition_key, run.pipeline.board.transitions))


def test_the_output_says_what_fired_and_where_the_files_are(local):
    run, lines, _ = local
    text = "\n".join(lines)
    assert "ALERT FIRING [" in text and "ALERT RESOLVED Loop" in text
    assert "demo finished: scenario quick-pump, 180 simulated s" in text
    assert f"recording: {run.result.recording}" in text
    assert f"incident report: {run.result.report}" in text
    assert "inhibited beneath them" in text
    _the_summary_agrees_with_the_board(run, text)


def _the_summary_agrees_with_the_board(run, text: str) -> None:
    board = run.pipeline.board
    paged, held = len(board.firing), len(board.inhibited_now)
    assert f"{paged} still firing, {held} inhibited still active" in text
    at_end = text.split("at the end: ")[1].splitlines()[0]
    if paged or held:
        assert "all clear" not in at_end
    assert (f"{paged} alert{'s' if paged != 1 else ''} still firing" in at_end) == (paged > 0), at_end
    assert (f"{held} inhibited alert{'s' if held != 1 else ''} still active" in at_end) == (held > 0), at_end


@pytest.mark.integration
def test_the_summary_does_not_say_all_clear_while_alerts_fire(with_servers):
    run, lines, _ = with_servers
    assert run.pipeline.board.firing  # the run ends with the loop alert firing
    _the_summary_agrees_with_the_board(run, "\n".join(lines))


def test_the_run_leaves_no_sockets_threads_or_processes(local):
    run, _, threads_before = local
    pipe = run.pipeline
    assert not pipe.snmp.running  # the simulated SNMP devices' process has exited
    assert threading.active_count() <= threads_before + 1  # XID watchers and notifier workers stopped


def test_dcim_demo_on_the_command_line_exits_0(tmp_path, capsys):
    from dcim.app.cli import main

    scenario = tmp_path / "quick-pump.yaml"
    scenario.write_text(QUICK_PUMP)
    try:
        main(["demo", "--no-live", "--speed", "100000", "--duration", "20s", "--scenario", str(scenario),
              "--out", str(tmp_path / "out")])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr().out
    assert code == 0, out
    assert (tmp_path / "out" / "recording.col.gz").is_file()
    assert (tmp_path / "out" / "report.html").is_file()
    assert "incident report:" in out


def test_an_unreachable_influxdb_is_a_clear_error_before_anything_runs(tmp_path, free_tcp_port):
    from dcim.errors import ConfigError

    with pytest.raises(ConfigError, match=f"--influx http://127.0.0.1:{free_tcp_port}"):
        _run(tmp_path, influx_url=f"http://127.0.0.1:{free_tcp_port}", duration_s=5.0)


# --- real servers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_servers(tmp_path_factory, mosquitto, influxdb, alertmanager):
    db = "demo_pipeline"
    influxdb.create_database(db)
    # 75 s: the loop alert is firing when the run ends, so Alertmanager still shows it
    run, lines = _run(tmp_path_factory.mktemp("demo-servers"), mqtt_url=mosquitto.url, influx_url=influxdb.url,
                      influx_db=db, alertmanager_url=alertmanager.url, duration_s=75.0)
    return run, lines, db


@pytest.mark.integration
def test_with_mqtt_the_records_travel_through_the_broker(with_servers):
    run, _, _ = with_servers
    pipe = run.pipeline
    reg = pipe.collector.metrics.registry
    assert reg.get_sample_value("dcim_collector_mqtt_connects_total") >= 1
    received = reg.get_sample_value("dcim_collector_messages_received_total", {"kind": "lineprotocol"})
    assert received >= pipe._published > 0  # noqa: SLF001
    for m in SOURCES:
        assert run.result.counts[m] == pipe.records_sent[m], m


@pytest.mark.integration
def test_with_influx_the_points_land_in_influxdb(with_servers, influxdb):
    run, _, db = with_servers
    for m, field in (("gpu", "temp_c"), ("pdu_phase", "current_a"), ("coolant_loop", "flow_lpm")):
        rows = influxdb.points(f'SELECT count("{field}") FROM "{m}"', db)
        assert rows and rows[0]["count"] == run.pipeline.records_sent[m], m
    alerts = influxdb.points('SELECT count("state") FROM "alert"', db)
    assert alerts and alerts[0]["count"] > 0
    assert not (run.pipeline.store_path / "gpu").exists()  # nothing went to the embedded store


@pytest.mark.integration
def test_with_alertmanager_the_loop_alert_appears_there(with_servers, alertmanager):
    run, _, _ = with_servers
    firing = [t for t in run.pipeline.board.firing.values() if t.labels.get("loop") == "loop-a"]
    assert firing, "the run should end with the loop-a alert firing"
    names = {t.rule for t in firing}
    got = alertmanager.alerts(filters=['loop="loop-a"'])
    assert names <= {a["labels"]["alertname"] for a in got}
    mine = [a for a in got if a["labels"]["alertname"] in names]
    assert all(a["status"]["state"] == "active" for a in mine)


# --- the default site: the AI-factory pod ---------------------------------------------------


def test_the_default_demo_runs_the_pod_of_120_kw_liquid_cooled_racks_and_shows_the_utilization_kpi(tmp_path):
    from dcim.simulators.cli import site_from

    site = site_from(None)  # what `dcim demo` runs without --site
    lines: list[str] = []
    run = run_demo(site, quick_pump(tmp_path), PipelineOptions(out_dir=tmp_path / "run", gpu_interval_s=30.0),
                   speed=FAST, duration_s=120.0, echo=lines.append)
    records = list(records_from_store(run.pipeline.store_path))
    gpus = [r for r in records if r.measurement == "gpu"]
    assert {r.tags["model"] for r in gpus} == {"NVIDIA GB200", "NVIDIA H100 80GB HBM3"}
    assert len({(r.tags["node"], r.tags["gpu"]) for r in gpus}) == 640
    # an NVL72 rack away from the incident (row B) draws 120-130 kW through its two feeds, as its PDUs
    # report it over SNMP (the feeds are polled apart: pair each poll of A with B's nearest)
    for rack in ("B01", "B02", "B03", "B04"):
        feeds = [sorted((r.time_ns, r.fields["power_w"]) for r in records
                        if r.measurement == "pdu" and r.tags["rack"] == rack and r.tags["pdu"] == name)
                 for name in ("pdu-a", "pdu-b")]
        pairs = [a + min(feeds[1], key=lambda tb: abs(tb[0] - t))[1] for t, a in feeds[0]]
        # at full training load; a job's checkpoint or restart dips it for a poll now and then
        assert len(pairs) >= 3 and 120_000 <= max(pairs) <= 130_000, (rack, pairs)
        assert sorted(pairs)[len(pairs) // 2] >= 115_000, (rack, pairs)
    # liquid cooling: three CDU loops, the row CDUs carrying ~400 kW each
    loops = {r.tags["loop"]: r.fields for r in records if r.measurement == "coolant_loop"}
    assert set(loops) == {"loop-a", "loop-b", "loop-c"}
    assert loops["loop-b"]["heat_w"] > 350_000
    text = "\n".join(lines)
    assert "fleet GPU utilization: mean" in text and " util 9" in text  # the KPI, above 90 %
    assert "ALERT FIRING [" in text
