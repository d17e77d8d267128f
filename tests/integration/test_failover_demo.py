"""`dcim demo --scenario gpu-lost` shows the drain: the board line, the scheduler summary, the store, the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcim.alerts.recording import RecordingReader
from dcim.config import named_site
from dcim.app.demo import run_demo
from dcim.app.pipeline import PipelineOptions
from dcim.simulators.scenarios import load_scenario

FAST = 100_000.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("gpu-lost")
    lines: list[str] = []
    # GPU 3 of A03-n02 falls off the bus at 2m; 150 s covers the alert (10 s GPU polls) and its drain.
    run = run_demo(named_site("h100-hall"), load_scenario("gpu-lost"), PipelineOptions(out_dir=folder / "run"), speed=FAST,
                   duration_s=150.0, echo=lines.append)
    return run, lines


def test_the_demo_drains_the_node_of_the_lost_gpu(demo):
    run, lines = demo
    drain = [ln for ln in lines if " DRAIN " in ln]
    assert len(drain) == 1
    assert "DRAIN A03-n02 for GpuLost (node A03-n02): scheduler IDLE -> IDLE+DRAIN" in drain[0]
    firing = next(ln for ln in lines if "FIRING [critical] GpuLost" in ln)
    assert drain[0].split()[0] == firing.split()[0]  # the same evaluation
    assert run.pipeline.scheduler.states == {"A03-n02": "IDLE+DRAIN"}
    assert "  scheduler: 1 drains, 0 resumes; 1 nodes drained at the end" in lines


def test_the_drain_is_stored_recorded_and_reported(demo):
    run, _lines = demo
    assert run.result.counts["alert_action"] == 2  # planned, and the scheduler's "done"
    actions = [r for b in RecordingReader(run.result.recording).batches() for r in b
               if r.measurement == "alert_action"]
    assert sorted(r.tags["status"] for r in actions) == ["done", "planned"]
    assert {(r.tags["action"], r.tags["node"], r.tags["alertname"]) for r in actions} == {
        ("drain", "A03-n02", "GpuLost")}
    page = Path(run.result.report).read_text()
    assert "<h2>Remediation actions</h2>" in page and "<td>A03-n02</td>" in page
