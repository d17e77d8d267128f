"""The router: answers handled by kind (done, bisect-and-dead-letter, split, retry-after, spool)."""

from __future__ import annotations

import pytest
from tests.collector.fakes import ManualClock, ScriptedSink

from dcim.collector.deadletter import DeadLetter, read_dead_letters
from dcim.collector.metrics import CollectorMetrics
from dcim.collector.route import Router
from dcim.collector.spool import Spool
from dcim.errors import BatchTooLarge, SinkRejected, SinkUnavailable


def make(tmp_path, sink, **kw):
    metrics = CollectorMetrics()
    clock = ManualClock()
    router = Router(sink, Spool(tmp_path / "spool", max_bytes=kw.pop("max_bytes", 10**6)),
                    DeadLetter(tmp_path / "dl.jsonl"), metrics, retry_max_s=8, monotonic=clock, **kw)
    return router, metrics, clock


def value(name, metrics, **labels):
    return metrics.registry.get_sample_value(name, labels or None) or 0


LINES = [f"gpu,node=n1 power_w={i} {i}" for i in range(10)]


async def test_accepted_batch_is_counted(tmp_path):
    sink = ScriptedSink()
    router, metrics, _ = make(tmp_path, sink)
    await router.deliver(LINES)
    assert sink.accepted == LINES and len(sink.calls) == 1
    assert value("dcim_collector_points_written_total", metrics, sink="fake") == 10


async def test_400_bisects_down_to_the_bad_lines(tmp_path):
    bad = {LINES[3], LINES[7]}
    sink = ScriptedSink(lambda ls: SinkRejected("400", status=400) if bad & set(ls) else None)
    router, metrics, _ = make(tmp_path, sink)
    await router.deliver(LINES)
    router.dead_letter.sync()
    assert sorted(sink.accepted) == sorted(set(LINES) - bad)
    dead = read_dead_letters(tmp_path / "dl.jsonl")
    assert sorted(d["text"] for d in dead) == sorted(bad)
    assert {d["reason"] for d in dead} == {"sink_rejected"}
    assert value("dcim_collector_rejected_total", metrics, reason="sink_rejected") == 2
    assert value("dcim_collector_sink_errors_total", metrics, sink="fake", status="400") > 0


async def test_413_splits_until_it_fits(tmp_path):
    sink = ScriptedSink(lambda ls: BatchTooLarge("413", status=413) if len(ls) > 3 else None)
    router, metrics, _ = make(tmp_path, sink)
    await router.deliver(LINES)
    assert sink.accepted == LINES  # every line, in order
    accepted_calls = [c for c in sink.calls if len(c) <= 3]
    assert [line for c in accepted_calls for line in c] == LINES
    assert read_dead_letters(tmp_path / "dl.jsonl") == []


async def test_one_line_too_large_is_dead_lettered(tmp_path):
    sink = ScriptedSink(lambda ls: BatchTooLarge("413", status=413) if LINES[5] in ls else None)
    router, _, _ = make(tmp_path, sink)
    await router.deliver(LINES)
    router.dead_letter.sync()
    assert sink.accepted == LINES[:5] + LINES[6:]
    assert [d["text"] for d in read_dead_letters(tmp_path / "dl.jsonl")] == [LINES[5]]


async def test_unavailable_spools_then_drains_in_order(tmp_path):
    down = [True]
    sink = ScriptedSink(lambda ls: SinkUnavailable("refused") if down[0] else None)
    router, metrics, clock = make(tmp_path, sink)
    await router.deliver(LINES[:5])
    assert router.spool.batches == 1 and sink.accepted == []
    await router.deliver(LINES[5:])  # behind the spool, even before a retry is due
    assert router.spool.batches == 2 and len(sink.calls) == 1
    assert value("dcim_collector_spool_bytes", metrics) > 0
    assert value("dcim_collector_sink_up", metrics, sink="fake") == 0
    down[0] = False
    clock.t += 100
    while await router.drain_once():
        pass
    assert sink.accepted == LINES and router.spool.empty()
    assert value("dcim_collector_points_spooled_total", metrics) == 10
    assert value("dcim_collector_sink_up", metrics, sink="fake") == 1
    await router.deliver(["gpu power_w=1 99"])  # straight to the sink again
    assert sink.accepted[-1] == "gpu power_w=1 99"


async def test_retry_after_is_honoured(tmp_path):
    answers = [SinkUnavailable("busy", status=429, retry_after_s=42.0)]
    sink = ScriptedSink(lambda ls: answers.pop(0) if answers else None)
    router, metrics, clock = make(tmp_path, sink)
    await router.deliver(LINES)
    assert router.spool.batches == 1
    assert value("dcim_collector_sink_errors_total", metrics, sink="fake", status="429") == 1
    clock.t += 41.0
    # not yet: a new batch goes behind the spool and the sink is not called
    await router.deliver(["gpu power_w=1 99"])
    assert len(sink.calls) == 1
    assert router._retry_at - clock.t == pytest.approx(1.0)  # noqa: SLF001
    clock.t += 1.5
    assert await router.drain_once()
    assert await router.drain_once()
    assert sink.accepted == LINES + ["gpu power_w=1 99"]


async def test_backoff_grows_and_is_capped(tmp_path):
    sink = ScriptedSink(lambda ls: SinkUnavailable("down", status=503))
    router, _, clock = make(tmp_path, sink)
    await router.deliver(LINES)
    waits = []
    for _ in range(8):
        clock.t = router._retry_at  # noqa: SLF001
        assert not await router.drain_once()
        waits.append(router._retry_at - clock.t)  # noqa: SLF001
    assert waits == sorted(waits) and waits[-1] == 8 and waits[0] == 1.0
    assert router.spool.batches == 1  # nothing dropped


async def test_full_spool_blocks_rather_than_drops(tmp_path):
    import asyncio

    sink = ScriptedSink(lambda ls: SinkUnavailable("down"))
    router, metrics, clock = make(tmp_path, sink, max_bytes=160)
    await router.deliver(LINES[:5])
    task = asyncio.create_task(router.deliver(LINES[5:]))
    await asyncio.sleep(0.05)
    assert not task.done()  # held: its MQTT messages stay unacknowledged with the broker
    assert value("dcim_collector_spool_full", metrics) == 1
    sink.answer = lambda ls: None
    clock.t += 100
    assert await router.drain_once()
    await asyncio.wait_for(task, 5)
    while await router.drain_once():
        pass
    assert sink.accepted == LINES
    assert value("dcim_collector_spool_full", metrics) == 0


async def test_refusals_keep_their_topic_live_and_from_the_spool(tmp_path):
    """A line the store refuses is dead-lettered with the MQTT topic it came on, also after it
    waited in the spool (the topics travel with the spooled batch, not in what the store gets)."""
    topics = [f"dcim/dc1/A01/n{i % 3}/gpu" for i in range(10)]
    bad = {LINES[4]}
    down = [True]

    def answer(ls):
        if down[0]:
            return SinkUnavailable("refused")
        assert not any(line.startswith("#") for line in ls)  # the topics never reach the store
        return SinkRejected("400", status=400) if bad & set(ls) else None

    sink = ScriptedSink(answer)
    router, _, clock = make(tmp_path, sink)
    await router.deliver(LINES, topics)  # spooled
    assert router.spool.batches == 1
    down[0] = False
    clock.t += 60
    assert await router.drain_once()
    await router.deliver(LINES, topics)  # live this time
    router.dead_letter.sync()
    dead = read_dead_letters(tmp_path / "dl.jsonl")
    assert [(d["text"], d["topic"]) for d in dead] == [(LINES[4], topics[4])] * 2


def test_spool_body_round_trip():
    from dcim.collector.route import read_spool_body, spool_body

    topics = ["a/b", "a/b", None, "c"]
    lines = LINES[:4]
    assert read_spool_body(spool_body(lines, topics)) == (lines, "".join(f"{x}\n" for x in lines).encode(), topics)
    old = "".join(f"{x}\n" for x in lines).encode()  # a batch spooled before topics were kept
    assert read_spool_body(old) == (lines, old, None)


def test_rotation_counts_what_it_deletes(tmp_path):
    from dcim.collector.validate import Reject

    metrics = CollectorMetrics()
    dl = DeadLetter(tmp_path / "dl.jsonl", max_bytes=4096, metrics=metrics)
    for i in range(200):
        dl.add(Reject("parse_error", "x", f"line {i} " + "y" * 100), topic="t", now_ns=0)
        assert dl.sync()
    kept = len(read_dead_letters(tmp_path / "dl.jsonl")) + len(read_dead_letters(tmp_path / "dl.jsonl.1"))
    assert dl.rotations > 2
    assert value("dcim_collector_dead_letter_discarded_total", metrics) == 200 - kept > 0
    assert value("dcim_collector_dead_letter_rotations_total", metrics) == dl.rotations
