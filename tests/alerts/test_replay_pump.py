"""Record the simulated pump failure and replay it through the real engine: the alerts fire when the
data says they should, the GPU alerts under the failing loop are inhibited, replays are identical."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dcim.alerts.recording import RecordingReader
from dcim.app.cli import cli

SITE_YAML = """\
site: dc1
rooms:
  - name: hall1
    rows:
      - name: A
        racks: [{name: A01, nodes: 1}, {name: A02, nodes: 1}]
      - name: B
        racks: [{name: B01, nodes: 1}, {name: B02, nodes: 1}]
loops:
  - {name: loop-a, cdu: cdu-a, racks: [A01, A02], nominal_flow_lpm: 110}
  - {name: loop-b, cdu: cdu-b, racks: [B01, B02], nominal_flow_lpm: 110}
"""

FLOW_FOR_S = 20
GPU_FOR_S = 30


def rules_yaml(flow_threshold: float, gpu_threshold: float) -> str:
    return f"""\
rules:
  - name: CoolantFlowLow
    kind: threshold
    severity: page
    measurement: coolant_loop
    field: flow_lpm
    op: "<"
    threshold: {flow_threshold}
    for: {FLOW_FOR_S}s
    inhibits: ["GpuHot*"]
  - name: GpuHot
    kind: threshold
    severity: warning
    measurement: gpu
    field: temp_c
    op: ">"
    threshold: {gpu_threshold}
    for: {GPU_FOR_S}s
"""


@pytest.fixture(scope="module")
def pump(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An 8-minute pump-degradation recording of a small hall (2 loops, 32 GPUs), made through the CLI."""
    d = tmp_path_factory.mktemp("pump")
    site = d / "site.yaml"
    site.write_text(SITE_YAML)
    rec = d / "pump.lp.gz"
    res = CliRunner().invoke(cli, ["record", "--scenario", "pump-degradation", "--duration", "8m",
                                   "--site", str(site), "--measurement", "gpu,coolant_loop", "-o", str(rec)])
    assert res.exit_code == 0, res.output
    records = RecordingReader(rec).records()
    flows = [(r.time_ns, r.fields["flow_lpm"]) for r in records
             if r.measurement == "coolant_loop" and r.tags["loop"] == "loop-a"]
    temps: dict[tuple, list] = {}
    for r in records:
        if r.measurement == "gpu":
            temps.setdefault((r.tags["rack"], r.tags["node"], r.tags["gpu"]), []).append((r.time_ns, r.fields["temp_c"]))
    max_b = max(v for k, s in temps.items() if k[0].startswith("B") for _, v in s)
    max_a = max(v for k, s in temps.items() if k[0].startswith("A") for _, v in s)
    assert max_a > max_b + 2, "the scenario must heat row A (loop-a) and not row B"
    # thresholds from the data: flow at half of its start, GPUs between row B's peak and row A's
    flow_thr = round(flows[0][1] * 0.5, 1)
    gpu_thr = round((max_a + max_b) / 2, 1)
    rules = d / "rules"
    rules.mkdir()
    (rules / "pump.yaml").write_text(rules_yaml(flow_thr, gpu_thr))
    timeline = replay_json(rec, "--rules", str(rules))
    return {"dir": d, "rec": rec, "rules": rules, "flows": flows, "temps": temps, "flow_thr": flow_thr,
            "gpu_thr": gpu_thr, "timeline": timeline}


def replay_json(rec: Path, *args: str) -> list[dict]:
    res = CliRunner().invoke(cli, ["replay", str(rec), "--format", "json", *args])
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines()]


def expected_spans(series: list[tuple[int, float]], below: bool, thr: float, for_s: int) -> list[tuple[int, int]]:
    """(pending, firing) times of a plain threshold rule with `for`, from 1-s samples (1-s evaluations)."""
    out = []
    start = None
    for t, v in series:
        bad = v < thr if below else v > thr
        if bad and start is None:
            start = t
        elif not bad:
            start = None
        if start is not None and t - start == for_s * 10**9:
            out.append((start, t))
    return out


def test_pump_failure_alerts_fire_when_the_data_says(pump: dict) -> None:
    timeline = pump["timeline"]
    loop = [t for t in timeline if t["rule"] == "CoolantFlowLow"]
    (pending, firing), = expected_spans(pump["flows"], True, pump["flow_thr"], FLOW_FOR_S)
    assert [(t["state"], t["time_ns"]) for t in loop[:2]] == [("pending", pending), ("firing", firing)]
    assert loop[0]["labels"]["loop"] == "loop-a"
    recovered = next(t for t, v in pump["flows"] if t > firing and v >= pump["flow_thr"])
    assert loop[2]["state"] == "resolved" and loop[2]["time_ns"] == recovered
    assert all(t["labels"]["loop"] == "loop-a" for t in loop)

    gpu_fired: dict[tuple, int] = {}  # first firing per GPU (later ones depend on flap suppression)
    for t in timeline:
        if t["rule"] == "GpuHot" and t["state"] == "firing":
            gpu_fired.setdefault((t["labels"]["rack"], t["labels"]["node"], t["labels"]["gpu"]), t["time_ns"])
    expected = {}
    for key, series in pump["temps"].items():
        spans = expected_spans(series, False, pump["gpu_thr"], GPU_FOR_S)
        if spans:
            expected[key] = spans[0][1]
    assert expected, "some row-A GPU must cross the threshold for the test to mean anything"
    assert gpu_fired == expected
    assert all(k[0].startswith("A") for k in gpu_fired)


def test_gpu_alerts_under_the_failing_loop_are_inhibited(pump: dict) -> None:
    timeline = pump["timeline"]
    loop_active = []
    state = None
    for t in timeline:
        if t["rule"] == "CoolantFlowLow":
            if t["state"] in ("pending", "firing") and state is None:
                state = t["time_ns"]
            elif t["state"] in ("resolved", "inactive") and state is not None:
                loop_active.append((state, t["time_ns"]))
                state = None
    loop_fp = next(t["fingerprint"] for t in timeline if t["rule"] == "CoolantFlowLow")
    gpu = [t for t in timeline if t["rule"] == "GpuHot" and t["state"] in ("pending", "firing")]
    assert gpu
    for t in gpu:
        under_loop = any(a <= t["time_ns"] < b for a, b in loop_active)
        assert t["inhibited"] == under_loop, t
        if under_loop:
            assert t["inhibited_by"] == [loop_fp]
    assert any(t["inhibited"] for t in gpu)


def test_two_replays_give_byte_identical_timelines(pump: dict) -> None:
    runs = []
    for fmt in ("text", "text"):
        res = CliRunner().invoke(cli, ["replay", str(pump["rec"]), "--rules", str(pump["rules"]), "--format", fmt])
        assert res.exit_code == 0, res.output
        runs.append(res.stdout_bytes)
    assert runs[0] == runs[1]
    assert b"CoolantFlowLow" in runs[0] and b"inhibited by CoolantFlowLow" in runs[0]
    assert runs[0].count(b"\n") == len(pump["timeline"])
    again = replay_json(pump["rec"], "--rules", str(pump["rules"]))
    assert again == pump["timeline"]


def test_the_shipped_rule_pack_pages_for_the_loop_and_inhibits_the_gpus(pump: dict) -> None:
    from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rules

    rule = next(r for r in load_rules([DEFAULT_RULES_DIR]) if r.name == "LoopFlowLow")
    assert rule.kind == "ratio" and rule.op == "<" and rule.rating == "loop.nominal_flow_lpm"
    timeline = replay_json(pump["rec"])  # no --rules: the shipped pack
    nominal = 110.0  # SITE_YAML
    pct = [(t, 100.0 * v / nominal) for t, v in pump["flows"]]
    start = next(t for t, p in pct if p < rule.threshold)
    clear_at = rule.clear if rule.clear is not None else rule.threshold
    fire = start + int(rule.for_ * 1e9)
    assert all(p < clear_at for t, p in pct if start <= t <= fire)  # held below the clear level meanwhile
    loop = [t for t in timeline if t["rule"] == "LoopFlowLow"]
    assert [(t["state"], t["time_ns"]) for t in loop[:2]] == [("pending", start), ("firing", fire)]
    assert {t["labels"]["loop"] for t in loop} == {"loop-a"}
    end = next(t["time_ns"] for t in loop if t["state"] == "resolved")
    explained = [t for t in timeline if t["state"] == "firing" and "gpu" in t["labels"]
                 and rule.matches_inhibit(t["rule"]) and start <= t["time_ns"] < end]
    assert explained, "row-A GPUs must heat up enough to alert while the loop is short of flow"
    assert all(t["inhibited"] and t["labels"]["row"] == "A" for t in explained)
