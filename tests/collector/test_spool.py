"""The disk spool: durable appends, in-order draining, crash recovery, and a hard size cap."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from dcim.collector.spool import Spool
from dcim.errors import SpoolFull


def batch(i: int) -> bytes:
    return f"gpu,node=n1 power_w={i} {i}\n".encode()


def drain(spool: Spool) -> list[bytes]:
    out = []
    while (item := spool.peek()) is not None:
        out.append(item[0])
        spool.pop()
    return out


def test_fifo_across_segments_and_deletes_what_is_drained(tmp_path):
    s = Spool(tmp_path, max_bytes=10**6, segment_bytes=100)
    for i in range(20):
        s.append(batch(i), 1)
    assert s.segments > 3 and s.batches == 20 and s.lines == 20
    assert drain(s) == [batch(i) for i in range(20)]
    assert s.empty() and s.bytes == 0
    assert not list(tmp_path.glob("*.seg"))


def test_reopen_resumes_at_the_cursor(tmp_path):
    s = Spool(tmp_path, max_bytes=10**6, segment_bytes=120)
    for i in range(10):
        s.append(batch(i), 1)
    for _ in range(4):
        s.peek()
        s.pop()
    s.close()
    again = Spool(tmp_path, max_bytes=10**6, segment_bytes=120)
    assert again.batches == 6
    again.append(batch(10), 1)
    assert drain(again) == [batch(i) for i in range(4, 11)]


def test_peek_without_pop_resends_after_restart(tmp_path):
    s = Spool(tmp_path, max_bytes=10**6)
    s.append(batch(1), 1)
    assert s.peek()[0] == batch(1)
    s.close()  # crash between the sink write and pop: the batch comes again (an overwrite)
    assert drain(Spool(tmp_path, max_bytes=10**6)) == [batch(1)]


def test_torn_tail_is_cut(tmp_path):
    s = Spool(tmp_path, max_bytes=10**6)
    s.append(batch(1), 1)
    s.close()
    seg = next(tmp_path.glob("*.seg"))
    with open(seg, "ab") as f:
        f.write(b"\x00\x00\x01\x00garbage")  # an append that never returned
    again = Spool(tmp_path, max_bytes=10**6)
    assert again.batches == 1
    again.append(batch(2), 1)
    assert drain(again) == [batch(1), batch(2)]


def test_cap_refuses_instead_of_dropping(tmp_path):
    s = Spool(tmp_path, max_bytes=200, warn_ratio=0.5)
    n = 0
    with pytest.raises(SpoolFull):
        while True:
            s.append(batch(n), 1)
            n += 1
            assert n < 100
    assert s.bytes <= 200 and s.near_full
    assert drain(s) == [batch(i) for i in range(n)]  # everything accepted is still there
    s.append(batch(99), 1)


def test_kill_9_loses_nothing_that_append_returned_for(tmp_path):
    script = textwrap.dedent(f"""
        from dcim.collector.spool import Spool
        s = Spool({str(tmp_path)!r}, max_bytes=10**9, segment_bytes=4096)
        i = 0
        while True:
            s.append(f"gpu power_w={{i}} {{i}}\\n".encode(), 1)
            print(i, flush=True)
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    acked = -1
    for line in proc.stdout:
        acked = int(line)
        if acked >= 300:
            break
    proc.kill()
    proc.wait()
    got = [int(b.split()[-1]) for b in drain(Spool(tmp_path, max_bytes=10**9))]
    assert got[: acked + 1] == list(range(acked + 1))
    assert got == list(range(len(got)))


def test_damaged_batch_in_the_middle_is_skipped_and_counted(tmp_path):
    from dcim.collector.metrics import CollectorMetrics

    s = Spool(tmp_path, max_bytes=10**6, segment_bytes=10**6)
    for i in range(3):
        s.append(batch(i), 1)
    s.close()
    seg = next(tmp_path.glob("*.seg"))
    data = bytearray(seg.read_bytes())
    data[-len(batch(2)) - 20] ^= 0xFF  # flip a byte inside the second batch's body
    seg.write_bytes(bytes(data))
    again = Spool(tmp_path, max_bytes=10**6)
    metrics = CollectorMetrics()
    got = []
    while (item := again.peek()) is not None:
        got.append(item[0])
        again.pop()
    metrics.update_spool(again)
    assert got == [batch(0), batch(2)]  # the one after it is kept
    assert again.corrupt == 1
    assert metrics.registry.get_sample_value("dcim_collector_dropped_total") >= 1
