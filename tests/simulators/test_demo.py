"""The demo's loop with a pipeline stage, its views with alerts, and the alert board (no pipeline: see
tests/integration/test_demo_pipeline.py for the whole thing)."""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace

import pytest

from dcim.alerts.state import Transition
from dcim.app.demo import LiveView, Summary, TextView, run_async
from dcim.simulators.hall import Hall
from dcim.app.pipeline import AlertBoard
from dcim.simulators.scenarios import load_scenario
from tests.simulators.helpers import site

T0 = 1_767_225_600 * 1_000_000_000


def _t(rule, state, *, at_s=0.0, inhibited=False, severity="critical", labels=None, fp=None):
    labels = labels or {"row": "A", "loop": "loop-a"}
    return Transition(time_ns=T0 + int(at_s * 1e9), rule=rule, severity=severity, labels=labels, previous="pending",
                      state=state, value=40.0, inhibited=inhibited, inhibited_by="abc" if inhibited else None,
                      summary=f"{rule} summary", fingerprint=fp or rule)


def _incident() -> list[list[Transition]]:
    gpu = {"row": "A", "rack": "A01", "node": "A01-n01", "gpu": "0"}
    return [
        [_t("LoopFlowLow", "firing", at_s=120)],
        [_t("GpuTempNearSlowdown", "firing", at_s=150, inhibited=True, labels=gpu)],
        [replace(_t("LoopFlowLow", "resolved", at_s=400), previous="firing"),
         _t("GpuTempNearSlowdown", "resolved", at_s=410, inhibited=True, labels=gpu)],
    ]


def test_the_board_notes_pages_and_counts_inhibited_alerts():
    board = AlertBoard()
    seen = []
    for batch in _incident():
        board.notify(batch, 0.0)
        seen.append((set(board.firing), len(board.inhibited_now)))
    assert seen == [({"LoopFlowLow"}, 0), ({"LoopFlowLow"}, 1), (set(), 0)]
    assert [text.split()[0] for _, text in board.notes] == ["FIRING", "RESOLVED"]  # the GPU alert never paged
    assert board.notes[0] == (T0 + 120 * 10**9, "FIRING [critical] LoopFlowLow row=A loop=loop-a: LoopFlowLow summary")
    lines = board.summary_lines()
    assert lines[0] == ("  alerts: 1 fired and paged, 1 inhibited beneath them, 1 of the paged resolved, "
                        "0 still firing, 0 inhibited still active")
    assert "    GpuTempNearSlowdown: 0 paged, 1 inhibited, 1 resolved" in lines
    assert "    LoopFlowLow: 1 paged, 0 inhibited, 1 resolved" in lines


def test_text_view_prints_each_notification_once_as_an_alert_line():
    hall = Hall(site(), scenario=load_scenario("pump-degradation"), start_ns=T0)
    board = AlertBoard()
    lines: list[str] = []
    view = TextView(lines.append, every_s=1e9, board=board)
    view.on_step(hall, [])
    board.notify(_incident()[0], 0.0)
    view.on_step(hall, [])
    view.on_step(hall, [])
    alerts = [ln for ln in lines if " ALERT " in ln]
    assert alerts == ["+2m00s ALERT FIRING [critical] LoopFlowLow row=A loop=loop-a: LoopFlowLow summary"]


def test_live_view_shows_firing_alerts_and_the_inhibited_count():
    from rich.console import Console

    sc = load_scenario("pump-degradation")
    hall = Hall(site(), scenario=sc, start_ns=T0)
    board = AlertBoard()
    out = io.StringIO()
    view = LiveView(sc, 10.0, console=Console(file=out, width=160, force_terminal=False), board=board)
    for batch in _incident()[:2]:
        board.notify(batch, 0.0)
    view.on_step(hall, [])
    view.close(hall)
    text = out.getvalue()
    assert "firing alerts: 1" in text and "inhibited beneath them: 1" in text
    assert "LoopFlowLow" in text and "+2m00s ALERT FIRING" in text


def test_the_async_loop_awaits_the_stage_after_each_step_and_paces_to_the_speed():
    sc = load_scenario("pump-degradation")
    hall = Hall(site(), scenario=sc, start_ns=T0)
    now = [0.0]
    stage_at: list[float] = []

    async def sleep(s):
        now[0] += s

    async def stage():
        stage_at.append(hall.t_s)

    summary = Summary(sc)
    wall = asyncio.run(run_async(hall, [summary], duration_s=20, speed=10.0, stage=stage, clock=lambda: now[0],
                                 sleep=sleep))
    assert stage_at == [float(k) for k in range(21)]  # once per step, after the hall moved
    assert wall == pytest.approx(2.0)


def test_the_summary_counts_the_alerts_the_board_still_lists_as_firing():
    # the hall can be back to normal while an alert has not resolved yet: "all clear" would contradict
    # the board's own line under it
    sc = load_scenario("normal")
    hall = Hall(site(), scenario=sc, start_ns=T0)
    board = AlertBoard()
    summary = Summary(sc, board=board)
    summary.on_step(hall, [])
    assert "at the end: all clear" in summary.text(1.0)
    for batch in _incident()[:2]:
        board.notify(batch, 0.0)
    text = summary.text(1.0)
    assert "at the end: 1 alert still firing, 1 inhibited alert still active" in text
    assert "1 still firing, 1 inhibited still active" in board.summary_lines()[0]
    board.notify(_incident()[2], 0.0)
    assert "at the end: all clear" in summary.text(1.0)
    assert "0 still firing, 0 inhibited still active" in board.summary_lines()[0]


def test_the_views_and_summary_show_the_utilization_kpi_and_what_cools_each_rack():
    from rich.console import Console

    from dcim.config import named_site

    sc = load_scenario("normal")
    hall = Hall(named_site("ai-factory-pod"), scenario=sc, start_ns=T0)
    lines: list[str] = []
    out = io.StringIO()
    live = LiveView(sc, 10.0, console=Console(file=out, width=200, force_terminal=False))
    summary = Summary(sc)
    for c in (TextView(lines.append, every_s=1e9), live, summary):
        c.on_step(hall, [])
    live.close(hall)
    util = float(hall.util.mean())
    assert util > 90  # training on every GPU: the KPI's good side
    assert f"util {util:.0f}%" in lines[0]
    text = out.getvalue()
    assert f"fleet GPU utilization {util:.1f} %" in text
    assert "cdu-a (liquid)" in text and "cdu-c (liquid)" in text
    assert f"fleet GPU utilization: mean {util:.1f} %" in summary.text(1.0)
    assert "good at 90 % or more" in summary.text(1.0)
