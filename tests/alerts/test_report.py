"""The HTML incident report: self-contained, with the incident's signals plotted and its spans shaded."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from dcim.alerts.recording import Header, RecordingReader, write_recording
from dcim.alerts.replay import replay
from dcim.alerts.report import panels_for, write_report
from dcim.alerts.whatif import compare, episodes, incidents
from tests.alerts.test_replay_standin import StandInEngine, StandInRule, gpu, loop

RULES = [
    StandInRule("FlowLow", "coolant_loop", "flow_lpm", -400.0, severity="page", by=("loop",), inhibits=("Hot",)),
    StandInRule("Hot", "gpu", "temp_c", 80.0, for_s=3),
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_recording(tmp_path: Path) -> Path:
    out = []
    for t in range(300):
        temp = 70 + t / 5 if t <= 100 else max(70.0, 90 - (t - 100) / 5)
        out.append(gpu(t, temp))
        out.append(gpu(t, 60.0 + (t % 7) / 10, gpu_="1"))
        out.append(loop(t, -300.0 if 40 <= t <= 150 else -600.0))
        out.append(loop(t, -600.0, name="loop-b"))
    p = tmp_path / "incident.lp.gz"
    write_recording(p, out, Header(source="unit test", topology="embedded"))
    return p


def build(tmp_path: Path, *, with_compare: bool = False) -> tuple[Path, list[Path], str]:
    rec = make_recording(tmp_path)
    reader = RecordingReader(rec)
    result = replay(reader.batches(), StandInEngine(RULES))
    whatif = None
    if with_compare:
        lower = [RULES[0], StandInRule("Hot", "gpu", "temp_c", 75.0, for_s=3)]
        other = replay(RecordingReader(rec).batches(), StandInEngine(lower))
        whatif = compare(result.transitions, other.transitions, a_name="rules", b_name="lower",
                         horizon_ns=result.stats.last_ns)
    out = tmp_path / "report.html"
    pngs = write_report(out, header=reader.header, recording=str(rec), rules_name="stand-in", rules=RULES,
                        stats=result.stats, transitions=result.transitions,
                        batches=lambda: RecordingReader(rec).batches(), whatif=whatif)
    return out, pngs, out.read_text()


def test_report_is_self_contained_with_plots_and_timeline(tmp_path: Path) -> None:
    out, pngs, page = build(tmp_path)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page  # nothing to run, nothing to fail
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(imgs) == len(pngs) == 1
    assert base64.b64decode(imgs[0]) == pngs[0].read_bytes()
    assert pngs[0].read_bytes().startswith(PNG_MAGIC) and pngs[0].parent == out.parent
    assert "Incident 1: FlowLow" in page  # the loop alert fired first and leads the incident
    for text in ("Summary", "Alert timeline", "inhibited by FlowLow loop=loop-a", "unit test"):
        assert text in page
    assert page.count('<tr class="firing">') == 2


def test_incident_panels_follow_the_rules(tmp_path: Path) -> None:
    rec = make_recording(tmp_path)
    result = replay(RecordingReader(rec).batches(), StandInEngine(RULES))
    (inc,) = incidents(episodes(result.transitions))
    panels = panels_for(inc, {r.name: r for r in RULES})
    got = {(p.measurement, p.fields) for p in panels}
    assert got == {("coolant_loop", ("supply_temp_c", "return_temp_c")), ("coolant_loop", ("flow_lpm",)),
                   ("gpu", ("temp_c",))}
    gpu_panel = next(p for p in panels if p.measurement == "gpu")
    assert gpu_panel.matches == [{"rack": "A01", "node": "A01-n01", "gpu": "0"}]  # the alerting GPU only


def test_report_with_compare_has_the_whatif_section(tmp_path: Path) -> None:
    _, pngs, page = build(tmp_path, with_compare=True)
    assert "What-if" in page and "earlier with B" in page
    assert len(pngs) == 1


def test_plot_shows_data_not_a_blank_canvas(tmp_path: Path) -> None:
    import io

    from matplotlib.image import imread

    _, pngs, _ = build(tmp_path)
    img = imread(io.BytesIO(pngs[0].read_bytes()), format="png")
    red = (img[..., 0] > 0.8) & (img[..., 1] < 0.85) & (img[..., 2] < 0.85)  # the shaded firing spans
    assert img.std() > 0.05
    assert red.mean() > 0.01


def test_inhibited_alerts_fold_into_one_row_per_rule_and_cause(tmp_path: Path) -> None:
    from dcim.alerts.report import _episode_table
    from dcim.alerts.whatif import Episode

    def ep(gpu_: str, inhibited: bool) -> Episode:
        e = Episode(("Hot", (("gpu", gpu_), ("rack", "A01"))), "warning", 10, firing_ns=20, end_ns=30 + int(gpu_),
                    notified_ns=None if inhibited else 20, inhibited=inhibited)
        e.inhibited_by = ["FlowLow loop=loop-a"] if inhibited else []
        return e

    table = _episode_table([ep("0", False)] + [ep(str(i), True) for i in range(1, 40)])
    assert table.count("<tr") == 1 + 1 + 1  # header, the notified alert, one folded row for 39
    assert "39 alerts" in table and "inhibited by FlowLow loop=loop-a" in table
    assert "1970-01-01T00:00:00.000000069Z" in table  # the folded row ends with the last of them
