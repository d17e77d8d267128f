"""The replay loop and the timeline rendering, against the stand-in engine (tests/alerts/test_replay_standin.py)."""

from __future__ import annotations

import json
from pathlib import Path

from dcim.alerts.recording import Header, RecordingReader, write_recording
from dcim.alerts.replay import Pacer, format_json, format_text, replay, transition_record
from tests.alerts.test_replay_standin import StandInEngine, StandInRule, gpu, loop

RULES = [
    StandInRule("FlowLow", "coolant_loop", "flow_lpm", -400.0, for_s=0, severity="page", by=("loop",),
                inhibits=("Hot",)),
    StandInRule("Hot", "gpu", "temp_c", 80.0, for_s=3),
]


def data() -> list:
    """A GPU heating 70 -> 90 and back over 40 s; the loop's (negated) flow 'drops' from t=10 to t=25."""
    out = []
    for t in range(40):
        temp = 70 + t if t <= 20 else 90 - (t - 20)
        out.append(gpu(t, float(temp)))
        out.append(gpu(t, 60.0, gpu_="1"))
        out.append(loop(t, -300.0 if 10 <= t <= 25 else -600.0))  # > -400 means flow below 400
    return out


def record(tmp_path: Path, records: list | None = None) -> Path:
    p = tmp_path / "r.lp.gz"
    write_recording(p, records if records is not None else data(), Header(source="test"))
    return p


def test_replay_gives_the_transitions_at_event_time(tmp_path: Path) -> None:
    reader = RecordingReader(record(tmp_path))
    result = replay(reader.batches(), StandInEngine(RULES))
    got = [(t.time_ns // 10**9, t.rule, t.state, t.inhibited) for t in result.transitions]
    assert got == [
        (10, "FlowLow", "firing", False),
        (11, "Hot", "pending", False),  # temp 81 > 80
        (14, "Hot", "firing", True),  # held 3 s, while the loop alert explains it
        (26, "FlowLow", "resolved", False),
        (30, "Hot", "resolved", False),  # 90 - 10 = 80, no longer above
    ]
    assert result.stats.records == 120
    assert result.stats.field_values == 40 * (1 + 1 + 3)
    assert (result.stats.first_ns, result.stats.last_ns) == (0, 39 * 10**9)


def test_text_and_json_timelines_are_identical_across_replays(tmp_path: Path) -> None:
    p = record(tmp_path)
    outs = []
    for chunk in (1 << 20, 64):  # chunking of the file must not change anything
        result = replay(RecordingReader(p, chunk_bytes=chunk).batches(), StandInEngine(RULES))
        outs.append((format_text(result.transitions), format_json(result.transitions)))
    assert outs[0] == outs[1]
    text, js = outs[0]
    assert text.splitlines()[2] == (
        "1970-01-01T00:00:14Z  firing    Hot  rack=A01 node=A01-n01 gpu=0  value=84  (inhibited by FlowLow loop=loop-a)")
    rows = [json.loads(line) for line in js.splitlines()]
    assert rows[2]["state"] == "firing" and rows[2]["inhibited"] is True
    assert rows[2]["labels"] == {"gpu": "0", "node": "A01-n01", "rack": "A01"}
    assert rows[2]["time"] == "1970-01-01T00:00:14Z" and rows[2]["time_ns"] == 14 * 10**9
    assert list(rows[2]) == sorted(rows[2])


def test_speed_paces_event_time_against_the_injected_clock(tmp_path: Path) -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    pacer = Pacer(10.0, clock=lambda: now[0], sleep=sleep)
    result = replay(RecordingReader(record(tmp_path)).batches(), StandInEngine(RULES), pacer=pacer)
    # 39 s of event time at 10x is 3.9 s of (fake) wall time, one wait per timestamp after the first
    assert abs(sum(slept) - 3.9) < 1e-9
    assert len(slept) == 39
    assert len(result.transitions) == 5


def test_advance_reaches_the_end_of_the_recording(tmp_path: Path) -> None:
    class Recorder(StandInEngine):
        advanced: list[int] = []

        def advance(self, time_ns: int) -> list:
            self.advanced.append(time_ns)
            return []

    eng = Recorder(RULES)
    replay(RecordingReader(record(tmp_path)).batches(), eng, end_ns=45 * 10**9)
    assert eng.advanced == [45 * 10**9]


def test_a_transition_becomes_an_alert_record() -> None:
    eng = StandInEngine(RULES)
    t = eng.process([gpu(0, 99.0), gpu(5, 99.0)])[-1]
    r = transition_record(t)
    assert r.measurement == "alert" and r.tags["alertname"] == "Hot" and r.tags["rack"] == "A01"
    assert r.fields["state"] == "firing" and r.fields["value"] == 99.0 and r.time_ns == 5 * 10**9


def test_empty_recording_replays_to_nothing(tmp_path: Path) -> None:
    result = replay(RecordingReader(record(tmp_path, [])).batches(), StandInEngine(RULES))
    assert result.transitions == [] and result.stats.records == 0
    assert format_text([]) == "" and format_json([]) == ""
