"""What-if: two rule sets over one recording; earlier/later firing, alerts only in one set, notifications."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from dcim.alerts.recording import Header, RecordingReader, write_recording
from dcim.alerts.replay import replay
from dcim.alerts.whatif import compare, episodes, format_whatif, incidents
from dcim.app.cli import cli
from dcim.record import Record
from tests.alerts.test_replay_standin import StandInEngine, StandInRule, gpu, loop

T0 = 1_767_225_600 * 10**9


def ramp(short: range = range(0)) -> list[Record]:
    """One GPU heating 0.5 °C/s from 60 °C for 60 s then cooling; another staying at 50 °C; a loop
    whose flow is 600 L/min except in ``short``, where it is 100."""
    out = []
    for t in range(120):
        temp = 60 + 0.5 * t if t <= 60 else 90 - 0.5 * (t - 60)
        out.append(gpu(t, temp))
        out.append(gpu(t, 50.0, gpu_="1"))
        out.append(loop(t, 100.0 if t in short else 600.0))
    return out


def run(rules: list[StandInRule], records: list[Record]) -> list:
    return replay([records], StandInEngine(rules)).transitions


def test_lower_threshold_fires_earlier_by_what_the_data_says() -> None:
    data = ramp()
    a = run([StandInRule("Hot", "gpu", "temp_c", 85.0, for_s=5)], data)
    b = run([StandInRule("Hot", "gpu", "temp_c", 80.0, for_s=5)], data)
    w = compare(a, b, a_name="a", b_name="b")
    first_above = {thr: next(r.time_ns for r in data if r.tags.get("gpu") == "0" and r.fields["temp_c"] > thr)
                   for thr in (80.0, 85.0)}
    assert len(w.shifts) == 1
    assert w.shifts[0].delta_s == (first_above[80.0] - first_above[85.0]) / 1e9 == -10.0
    (inc,) = w.incidents
    assert (inc.detected_ns("b") - inc.detected_ns("a")) / 1e9 == -10.0
    assert w.only_a == [] and w.only_b == []
    assert w.notifications_a == w.notifications_b == 2  # firing and resolved, once each
    text = format_whatif(w)
    assert "10s earlier with B" in text and "notifications: A 2  B 2" in text


def test_alerts_only_in_one_set_and_inhibited_counts() -> None:
    data = ramp(short=range(30, 70))
    hot = StandInRule("Hot", "gpu", "temp_c", 80.0, for_s=0)
    a = run([hot], data)
    b = run([hot, StandInRule("FlowLow", "coolant_loop", "flow_lpm", -200.0, by=("loop",), inhibits=("Hot",))],
            [Record(r.measurement, r.tags, {**r.fields, "flow_lpm": -r.fields["flow_lpm"]}
                    if "flow_lpm" in r.fields else r.fields, r.time_ns) for r in data])
    w = compare(a, b)
    assert [e.rule for e in w.only_b] == ["FlowLow"] and w.only_a == []
    assert len(w.inhibited_a) == 0 and [e.rule for e in w.inhibited_b] == ["Hot"]
    assert w.inhibited_b[0].inhibited_by == ["FlowLow loop=loop-a"]
    # B pages for the loop (and its resolve) instead of the GPU; A pages for the GPU
    assert w.notifications_a == 2
    assert w.notifications_b == 2
    d = w.to_dict()
    assert d["inhibited"] == {"a": 0, "b": 1} and d["only_b"][0]["rule"] == "FlowLow"


def test_episodes_and_incidents_group_by_time_overlap() -> None:
    rules = [StandInRule("Hot", "gpu", "temp_c", 80.0, for_s=2)]
    data = [gpu(t, 90.0 if 10 <= t < 20 or 50 <= t < 55 else 70.0) for t in range(70)]
    data += [gpu(t, 90.0 if 15 <= t < 25 else 70.0, gpu_="1") for t in range(70)]
    data.sort(key=lambda r: r.time_ns)
    eps = episodes(run(rules, data))
    assert [(e.labels["gpu"], e.start_ns // 10**9, e.firing_ns // 10**9, e.end_ns // 10**9) for e in eps] == [
        ("0", 10, 12, 20), ("1", 15, 17, 25), ("0", 50, 52, 55)]
    incs = incidents(eps)
    assert [(i.start_ns // 10**9, i.end_ns // 10**9, len(i.episodes)) for i in incs] == [(10, 25, 2), (50, 55, 1)]
    assert incs[0].detected_ns() == 12 * 10**9


def test_compare_on_the_command_line_with_the_real_engine(tmp_path: Path) -> None:
    rec = tmp_path / "ramp.lp.gz"
    data = [Record(r.measurement, {**r.tags, "room": "hall1", "row": "A"}, r.fields, T0 + r.time_ns) for r in ramp()]
    write_recording(rec, data, Header(source="test ramp", topology="embedded"))
    sets = {}
    for name, thr in (("a", 85), ("b", 80)):
        d = tmp_path / name
        d.mkdir()
        (d / "r.yaml").write_text(f"""rules:
  - name: GpuHot
    kind: threshold
    measurement: gpu
    field: temp_c
    op: ">"
    threshold: {thr}
    for: 5s
""")
        sets[name] = d
    res = CliRunner().invoke(cli, ["replay", str(rec), "--rules", str(sets["a"]), "--compare", str(sets["b"]),
                                   "--format", "json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    whatif = lines[-1]["whatif"]
    # first sample above the threshold, plus the 5 s `for`, in each set: the difference is the data's
    first = {thr: next(r.time_ns for r in data if r.tags.get("gpu") == "0" and r.fields["temp_c"] > thr)
             for thr in (80, 85)}
    assert [s["delta_s"] for s in whatif["shifts"]] == [(first[80] - first[85]) / 1e9]
    assert whatif["incidents"][0]["detect_delta_s"] == (first[80] - first[85]) / 1e9
    fired = [x for x in lines[:-1] if x["state"] == "firing"]
    assert [x["time_ns"] for x in fired] == [first[85] + 5 * 10**9]
    text = CliRunner().invoke(cli, ["replay", str(rec), "--rules", str(sets["a"]), "--compare", str(sets["b"])])
    assert text.exit_code == 0 and "10s earlier with B" in text.stdout
    assert RecordingReader(rec).header.source == "test ramp"


def test_incidents_split_by_row_and_skip_pending_blips() -> None:
    rules = [StandInRule("Hot", "gpu", "temp_c", 80.0, for_s=3, by=("row", "rack", "node", "gpu"))]

    def g(t: int, temp: float, row: str, gpu_: str) -> Record:
        r = gpu(t, temp, rack=f"{row}01", node=f"{row}01-n01", gpu_=gpu_)
        r.tags["row"] = row
        return r

    data = []
    for t in range(60):
        data.append(g(t, 90.0 if 10 <= t < 30 else 70.0, "A", "0"))
        data.append(g(t, 90.0 if 15 <= t < 35 else 70.0, "B", "0"))  # same time, other row
        data.append(g(t, 90.0 if t in (40, 41) else 70.0, "A", "1"))  # pending for 2 s only
    data.sort(key=lambda r: r.time_ns)
    eps = episodes(run(rules, data))
    assert len(eps) == 3
    incs = incidents(eps)
    assert [(i.number, i.episodes[0].labels["row"], len(i.episodes)) for i in incs] == [(1, "A", 1), (2, "B", 1)]


def test_notifications_count_what_the_webhook_would_page() -> None:
    from tests.alerts.test_replay_standin import StandInTransition as T

    lbl = {"rack": "A01", "gpu": "0"}
    ts = [
        T(1, "Hot", "warning", lbl, "pending", "firing", 90.0, True, ["loop"], fingerprint="h"),  # inhibited: no page
        T(5, "Hot", "warning", lbl, "firing", "firing", 91.0, False, [], fingerprint="h"),  # inhibition lifts: page
        T(9, "Hot", "warning", lbl, "firing", "resolved", 70.0, False, [], fingerprint="h"),  # its resolution: page
        T(2, "Cold", "warning", lbl, "pending", "firing", 1.0, True, ["loop"], fingerprint="c"),
        T(8, "Cold", "warning", lbl, "firing", "resolved", 5.0, False, [], fingerprint="c"),  # never paged: silent
    ]
    ts.sort(key=lambda t: t.time_ns)
    w = compare(ts, [])
    assert (w.notifications_a, w.notifications_b) == (2, 0)
    eps = {e.rule: e for e in episodes(ts)}
    assert eps["Hot"].notifications() == 2 and not eps["Hot"].inhibited
    assert eps["Cold"].notifications() == 0 and eps["Cold"].inhibited
