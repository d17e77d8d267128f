"""The embedded store: durable appends, queries by measurement/tags/time, torn tails, compaction."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap

import pytest

from dcim.collector.store import HOUR_NS, EmbeddedStore
from dcim.errors import ConfigError
from dcim.lineprotocol.decode import decode
from dcim.record import Record

T0 = 1_700_000_000 * 1_000_000_000  # 2023-11-14T22:13:20Z


def gpu(node: str, gpu_i: int, t: int, power: float) -> Record:
    return Record("gpu", {"site": "dc1", "node": node, "gpu": str(gpu_i)}, {"power_w": power}, t)


def test_write_then_query_in_time_order(tmp_path):
    store = EmbeddedStore(tmp_path / "s")
    recs = [gpu("n1", 0, T0 + i * 10**9, float(i)) for i in (5, 1, 3)]
    recs.append(Record("pdu", {"site": "dc1", "pdu": "p1"}, {"power_w": 2.5}, T0 + 2 * 10**9))
    assert store.write(recs) == 4
    store.close()

    reader = EmbeddedStore(tmp_path / "s")
    assert reader.measurements() == ["gpu", "pdu"]
    got = list(reader.query("gpu"))
    assert [r.fields["power_w"] for r in got] == [1.0, 3.0, 5.0]
    both = list(reader.query())
    assert [r.measurement for r in both] == ["gpu", "pdu", "gpu", "gpu"]
    assert [r.time_ns for r in both] == sorted(r.time_ns for r in both)


def test_filters_by_tags_and_time_range(tmp_path):
    store = EmbeddedStore(tmp_path)
    store.write([gpu(n, g, T0 + i * 10**9, float(i)) for n in ("n1", "n2") for g in (0, 1) for i in range(10)])
    got = list(store.query("gpu", tags={"node": "n2", "gpu": "1"}, start_ns=T0 + 3 * 10**9, end_ns=T0 + 6 * 10**9))
    assert [(r.tags["node"], r.tags["gpu"], r.fields["power_w"]) for r in got] == [
        ("n2", "1", 3.0), ("n2", "1", 4.0), ("n2", "1", 5.0)]
    assert list(store.query("nothing")) == []
    assert list(store.query("gpu", tags={"node": "n9"})) == []


def test_hour_segments_are_plain_line_protocol(tmp_path):
    store = EmbeddedStore(tmp_path)
    store.write([gpu("n1", 0, T0, 1.0), gpu("n1", 0, T0 + HOUR_NS, 2.0)])
    segs = store.segments("gpu")
    assert len(segs) == 2
    assert segs[0][1].name == "20231114T22.lp" and segs[1][1].name == "20231114T23.lp"
    assert decode(segs[0][1].read_text())[0].fields == {"power_w": 1.0}
    # a range inside the second hour skips the first file
    assert [r.fields["power_w"] for r in store.query("gpu", start_ns=T0 + HOUR_NS)] == [2.0]


def test_duplicates_merge_like_influxdb(tmp_path):
    store = EmbeddedStore(tmp_path)
    store.write([Record("gpu", {"node": "n1"}, {"power_w": 1.0, "temp_c": 50.0}, T0)])
    store.write([Record("gpu", {"node": "n1"}, {"power_w": 2.0}, T0)])
    (r,) = list(store.query("gpu"))
    assert r.fields == {"power_w": 2.0, "temp_c": 50.0}


def test_lines_are_kept_as_they_arrived(tmp_path):
    from dcim.errors import LineProtocolError

    store = EmbeddedStore(tmp_path / "s", clock=lambda: T0 + 7)
    plain = f"gpu,node=n1,site=dc1 power_w=1e2,throttle_hw_slowdown=t {T0}"  # not how encode writes it
    later = f"pdu,pdu=p1 power_w=2 {T0 + HOUR_NS}"
    escaped = r"gpu\ x,node=n\ 2 power_w=3"  # no timestamp, an escape in the measurement: from its record
    assert store.write_lines([plain, later, escaped, ""]) == 3
    with pytest.raises(LineProtocolError):  # not line protocol: nothing of the batch is written
        store.write_lines([plain, "this is not line protocol"])
    store.close()
    seg = (tmp_path / "s" / "gpu").glob("*.lp")
    assert [p.read_text() for p in seg] == [plain + "\n"]
    reader = EmbeddedStore(tmp_path / "s")
    assert [r.fields for r in reader.query("gpu")] == [{"power_w": 100.0, "throttle_hw_slowdown": True}]
    assert [(r.tags, r.time_ns) for r in reader.query("gpu x")] == [({"node": "n 2"}, T0 + 7)]
    assert [r.time_ns for r in reader.query("pdu")] == [T0 + HOUR_NS]


def test_missing_time_takes_the_clock(tmp_path):
    store = EmbeddedStore(tmp_path, clock=lambda: T0 + 42)
    store.write([Record("gpu", {"node": "n1"}, {"power_w": 1.0})])
    assert [r.time_ns for r in store.query("gpu")] == [T0 + 42]


def test_torn_last_line_is_ignored_then_repaired(tmp_path):
    store = EmbeddedStore(tmp_path)
    store.write([gpu("n1", 0, T0, 1.0)])
    store.close()
    seg = store.segments("gpu")[0][1]
    with open(seg, "ab") as f:
        f.write(b"gpu,node=n1,gpu=0 power_w=9")  # a write cut short by kill -9
    assert [r.fields["power_w"] for r in EmbeddedStore(tmp_path).query("gpu")] == [1.0]
    again = EmbeddedStore(tmp_path)
    again.write([gpu("n1", 0, T0 + 1, 2.0)])
    assert seg.read_text().count("\n") == 2
    assert [r.fields["power_w"] for r in again.query("gpu")] == [1.0, 2.0]


def test_a_second_writer_is_refused(tmp_path):
    first = EmbeddedStore(tmp_path)
    first.write([gpu("n1", 0, T0, 1.0)])
    with pytest.raises(ConfigError, match="in use"):
        EmbeddedStore(tmp_path).write([gpu("n1", 0, T0, 1.0)])
    first.close()
    EmbeddedStore(tmp_path).write([gpu("n1", 0, T0 + 1, 1.0)])


def test_compact_gzips_old_hours_and_keeps_them_readable(tmp_path):
    store = EmbeddedStore(tmp_path, clock=lambda: T0 + 5 * HOUR_NS)
    store.write([gpu("n1", 0, T0 + h * HOUR_NS, float(h)) for h in range(5)])
    assert store.compact() == 4  # the current hour stays plain
    names = sorted(p.name for _, p in store.segments("gpu"))
    assert sum(n.endswith(".gz") for n in names) == 4
    gz = next(p for _, p in store.segments("gpu") if p.name.endswith(".gz"))
    assert decode(gzip.decompress(gz.read_bytes()))  # zcat gives line protocol
    assert [r.fields["power_w"] for r in store.query("gpu")] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_measurement_names_are_safe_folder_names(tmp_path):
    store = EmbeddedStore(tmp_path)
    store.write([Record("../odd name/x", {"a": "b"}, {"v": 1.0}, T0)])
    assert store.measurements() == ["../odd name/x"]
    assert all(p.parent == tmp_path for p in tmp_path.iterdir())
    assert [r.measurement for r in store.query("../odd name/x")] == ["../odd name/x"]


def test_survives_kill_9_mid_stream(tmp_path):
    """A writer killed with SIGKILL loses nothing it had returned from write() for."""
    script = textwrap.dedent(f"""
        import sys
        from dcim.collector.store import EmbeddedStore
        from dcim.record import Record
        s = EmbeddedStore({str(tmp_path)!r})
        i = 0
        while True:
            s.write([Record("gpu", {{"node": "n1"}}, {{"seq": float(i)}}, {T0} + i)])
            print(i, flush=True)
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=os.getcwd())
    acked = -1
    for line in proc.stdout:
        acked = int(line)
        if acked >= 200:
            break
    proc.kill()
    proc.wait()
    got = [int(r.fields["seq"]) for r in EmbeddedStore(tmp_path).query("gpu")]
    assert got[: acked + 1] == list(range(acked + 1))
