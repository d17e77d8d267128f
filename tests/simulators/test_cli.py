"""``dcim simulate`` and ``dcim demo`` end to end, in process through dcim.app.cli.main and as a subprocess."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone
import os
import subprocess
import sys

import pytest

from dcim.app.cli import main
from dcim.lineprotocol.decode import decode
from dcim.simulators.cli import parse_start
from dcim.simulators.physics import DEFAULT_START_NS
from dcim.sites import make_site

# the default site, the AI-factory pod: 640 GPUs, 20 PDUs (2 a rack) of 3 phases and 24 outlets with an
# env probe each, 3 loops
LINES_PER_SAMPLE = 640 + 20 + 20 * 3 + 20 * 24 + 20 + 3


def run_main(args, capsys):
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_simulate_writes_every_domain_to_a_file(tmp_path, capsys):
    out = tmp_path / "normal.lp"
    code, _, err = run_main(["simulate", "--duration", "5s", "--out", str(out)], capsys)
    assert code == 0, err
    text = out.read_text()
    records = decode(text)
    assert len(records) == 5 * LINES_PER_SAMPLE
    assert {r.measurement for r in records} == {"gpu", "pdu", "pdu_phase", "pdu_outlet", "env", "coolant_loop"}
    times = sorted({r.time_ns for r in records})
    assert times == [DEFAULT_START_NS + k * 1_000_000_000 for k in range(5)]
    assert "5 samples" in err


def test_same_seed_and_args_give_byte_identical_output_gzip_included(tmp_path, capsys):
    a, b, c = tmp_path / "a.lp.gz", tmp_path / "b.lp.gz", tmp_path / "c.lp.gz"
    args = ["simulate", "--scenario", "gpu-lost", "--duration", "3m", "--step", "20s", "-q"]
    assert run_main([*args, "--out", str(a)], capsys)[0] == 0
    assert run_main([*args, "--out", str(b)], capsys)[0] == 0
    assert run_main([*args, "--seed", "7", "--out", str(c)], capsys)[0] == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress(a.read_bytes()) != gzip.decompress(c.read_bytes())
    text = gzip.decompress(a.read_bytes()).decode()
    assert "lost=true" in text and "gpu_xid," in text


def test_simulate_to_stdout_with_a_start_time(capsys):
    code, out, _ = run_main(["simulate", "--duration", "2s", "--out", "-", "--start", "2030-05-01T12:00:00Z", "-q"], capsys)
    assert code == 0
    records = decode(out)
    assert len(records) == 2 * LINES_PER_SAMPLE
    expected = int(datetime(2030, 5, 1, 12, tzinfo=timezone.utc).timestamp()) * 1_000_000_000
    assert min(r.time_ns for r in records) == expected


def test_list_shows_every_scenario_with_its_description(capsys):
    code, out, _ = run_main(["simulate", "--list"], capsys)
    assert code == 0
    for name in ("normal", "pump-degradation", "gpu-lost", "leak", "stuck-sensor"):
        assert f"{name}\n    " in out
    assert "An operator should see" in out


def test_unknown_scenario_is_a_clear_error_with_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "dcim.app.cli", "simulate", "--scenario", "no-such", "--out", os.devnull],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown scenario 'no-such'")
    assert "Traceback" not in proc.stderr


def test_bad_scenario_file_error_names_file_and_path(tmp_path, capsys):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: broken\ndescription: x\nfaults:\n  - {kind: pump_degradation, loop: loop-a, flow_fraction: 3}\n")
    code, _, err = run_main(["simulate", "--scenario", str(bad), "--out", os.devnull], capsys)
    assert code == 2
    assert str(bad) in err and "faults[0].flow_fraction (line 4)" in err


def test_scenario_naming_a_rack_the_site_lacks_is_refused(tmp_path, capsys):
    site = tmp_path / "tiny.yaml"
    import yaml

    site.write_text(yaml.safe_dump(make_site(1).model_dump(mode="json", include={"site", "rooms", "loops"})))
    code, _, err = run_main(["simulate", "--site", str(site), "--scenario", "phase-overload", "--out", os.devnull], capsys)
    assert code == 2 and "unknown rack 'A02'" in err


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1767225600", DEFAULT_START_NS),
        ("1767225600.5", DEFAULT_START_NS + 500_000_000),
        ("2026-01-01T00:00:00Z", DEFAULT_START_NS),
        ("2026-01-01T01:00:00+01:00", DEFAULT_START_NS),
        ("now", 123),
    ],
)
def test_parse_start(text, ns):
    assert parse_start(text, now_ns=123) == ns


@pytest.mark.parametrize("text", ["yesterday", "2026-01-01T00:00:00", "nan"])
def test_parse_start_refuses(text):
    from dcim.errors import ConfigError

    with pytest.raises(ConfigError):
        parse_start(text)


def _demo_run(duration_s=None):
    # the demo's own loop with its text view and summary (the pipeline behind `dcim demo` has its
    # own integration test); a fake clock makes the pacing instant and checkable
    from dcim.app.demo import Summary, TextView, run
    from dcim.simulators.hall import Hall
    from dcim.simulators.scenarios import load_scenario
    from tests.simulators.helpers import site

    sc = load_scenario("pump-degradation")
    hall = Hall(site(), scenario=sc)
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    lines = []
    summary = Summary(sc)
    wall = run(hall, [TextView(lines.append, every_s=60), summary], duration_s=duration_s or sc.duration, speed=10.0,
               clock=lambda: now[0], sleep=sleep)
    return hall, lines, summary, wall, slept


def test_demo_loop_paces_to_the_speed_and_summarizes():
    hall, lines, summary, wall, slept = _demo_run(300)
    assert hall.t_s == 300
    assert wall == pytest.approx(30.0)  # 300 simulated s at 10x
    assert len(slept) == 300
    assert any("EVENT pump degradation (loop loop-a) begins" in ln for ln in lines)
    text = summary.text(wall)
    assert "demo finished: scenario pump-degradation, 300 simulated s in 30.0 wall s (10x)" in text
    n = int(text.split("most GPUs thermally throttled at once: ")[1].split()[0])
    assert n > 64  # row A throttles during the incident


def test_demo_incident_recovers_by_its_end():
    _, lines, summary, wall, _ = _demo_run()
    assert any("pump degradation (loop loop-a) recovered" in ln for ln in lines)
    text = summary.text(wall)
    assert "at the end: all clear" in text
    assert "lowest flow: loop-a 5" in text  # ~55 L/min at the worst
