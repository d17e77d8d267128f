"""Actions in `dcim replay`: the timeline (text and JSON), what-if drains, the incident report, the alert_action record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dcim.alerts.actions import Planner, Policy
from dcim.alerts.actions_driver import ACTION_MEASUREMENT
from dcim.alerts.engine import Engine
from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rules
from dcim.alerts.recording import Header, write_recording
from dcim import schema
from dcim.app.cli import cli
from dcim.config import named_site
from dcim.record import Record

T0 = 1_767_225_600 * 10**9
NS = 10**9
PLACE = {"site": "dc1", "room": "hall1", "row": "A", "rack": "A02"}


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    recs = []
    for s in range(60):
        for gpu in ("4", "5"):
            lost = gpu == "5" and 10 <= s < 40
            recs.append(Record("gpu", {**PLACE, "node": "A02-n03", "gpu": gpu}, {"lost": lost}, T0 + s * NS))
    rec = tmp_path / "lost.lp.gz"
    write_recording(rec, recs, Header(source="actions test", topology="embedded"))
    return rec


@pytest.fixture
def rules_without_drain(tmp_path: Path) -> Path:
    out = tmp_path / "rules-b"
    shutil.copytree(DEFAULT_RULES_DIR, out, ignore=shutil.ignore_patterns("tests", "__*"))
    gpu = out / "gpu.yaml"
    text = gpu.read_text()
    block = "    actions:\n      - {do: drain, scope: node}\n"
    assert text.count(block) == 1
    gpu.write_text(text.replace(block, ""))
    return out


def test_timeline_shows_the_drain_after_the_alert_and_the_resume_after_the_resolve(recording):
    res = CliRunner().invoke(cli, ["replay", str(recording)])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stdout.splitlines() if "GpuLost" in ln]
    assert lines == [
        "2026-01-01T00:00:10Z  firing    GpuLost  row=A rack=A02 loop=loop-a node=A02-n03 gpu=5  value=1",
        "2026-01-01T00:00:10Z ACTION   drain   A02-n03    planned [GpuLost node=A02-n03]",
        "2026-01-01T00:00:40Z  resolved  GpuLost  row=A rack=A02 loop=loop-a node=A02-n03 gpu=5  value=0",
        "2026-01-01T00:00:40Z ACTION   resume  A02-n03    planned [GpuLost node=A02-n03]",
    ]


def test_json_timeline_carries_the_action_payload(recording):
    res = CliRunner().invoke(cli, ["replay", str(recording), "--format", "json"])
    assert res.exit_code == 0, res.output
    docs = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert all("rule" in d for d in docs)  # still one transition a line
    with_acts = [d for d in docs if "actions" in d]
    assert [(d["rule"], d["state"]) for d in with_acts] == [("GpuLost", "firing"), ("GpuLost", "resolved")]
    acts = [a for d in with_acts for a in d["actions"]]
    assert [(a["action"], a["node"], a["alert"]["name"], a["alert"]["state"], a["status"]) for a in acts] == [
        ("drain", "A02-n03", "GpuLost", "firing", "planned"), ("resume", "A02-n03", "GpuLost", "resolved", "planned")]
    assert acts[0]["time_ns"] == with_acts[0]["time_ns"] == T0 + 10 * NS
    assert acts[0]["alert"]["fingerprint"] == with_acts[0]["fingerprint"]


def test_what_if_shows_what_a_rule_change_would_have_drained(recording, rules_without_drain):
    res = CliRunner().invoke(cli, ["replay", str(recording), "--compare", str(rules_without_drain)])
    assert res.exit_code == 0, res.output
    text = res.stdout[res.stdout.index("what-if: drains"):]
    assert "1 nodes out, 30 node-s" in text.splitlines()[1]
    assert "0 nodes out, 0 node-s" in text.splitlines()[2]
    assert "only A drains A02-n03 (GpuLost)" in text
    res = CliRunner().invoke(cli, ["replay", str(recording), "--compare", str(rules_without_drain), "--format", "json"])
    last = json.loads(res.stdout.splitlines()[-1])["whatif_actions"]
    assert last["only_a"] == ["A02-n03"] and last["only_b"] == [] and last["a"]["node_s"] == 30.0


def test_incident_report_lists_the_actions(recording, tmp_path):
    out = tmp_path / "report.html"
    res = CliRunner().invoke(cli, ["replay", str(recording), "--report", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "<h2>Remediation actions</h2>" in page
    assert "1 nodes taken out, 1 resumed, 0 suppressed by the share limit, 0 held" in page
    assert page.count("<td>A02-n03</td>") == 2


def test_action_records_pass_the_schema():
    site = named_site("h100-hall")
    rules = load_rules([DEFAULT_RULES_DIR])
    engine = Engine(rules, site=site)
    planner = Planner(rules, site, Policy())
    ts = []
    for s in range(5):
        ts += engine.process([Record("gpu", {**PLACE, "node": "A02-n03", "gpu": "5"}, {"lost": s >= 2}, T0 + s * NS)])
    (a,) = planner.plan(ts)
    rec = a.to_record()
    assert rec.measurement == ACTION_MEASUREMENT
    assert schema.validate(rec) == []
    assert rec.tags == {"alertname": "GpuLost", "action": "drain", "node": "A02-n03", "status": "planned",
                        "site": "dc1", "room": "hall1", "row": "A", "rack": "A02", "loop": "loop-a"}
