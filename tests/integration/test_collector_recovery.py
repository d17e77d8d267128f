"""Ingest recovers by itself, without a restart, from what used to stop it for good: a batch larger
than the spool's cap during an InfluxDB outage, a full disk under the spool, a spool at its cap
after a kill -9, and a dead-letter file that cannot be written. Each against real Mosquitto and
InfluxDB 1.6.7; the full disks are small tmpfs mounts (the test needs root to mount them)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import servers
import yaml

from dcim.collector.deadletter import read_dead_letters
from dcim.config import CollectorConfig, InfluxConfig
from dcim.lineprotocol.encode import encode_record
from dcim.record import Record
from tests.collector.helpers import (
    T0,
    Message,
    Publisher,
    all_records,
    expected_rows,
    gpu_messages,
    influx_count,
    influx_records,
    metric,
    running,
    uid,
    wait_for,
)
from tests.integration.test_collector_crash import CollectorProcess

pytestmark = pytest.mark.integration
TAGS = ("site", "rack", "node", "gpu")


@contextlib.contextmanager
def small_tmpfs(path: Path, size_kib: int) -> Iterator[Path]:
    """A tmpfs of ``size_kib`` at ``path``: a disk that really fills up (ENOSPC from the kernel)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0700", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs for the full-disk case (needs root): {done.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> Path:
    """Fill the file system under ``path`` to the last byte."""
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * chunk)
    return filler


def config(tmp_path: Path, run: str, **kw) -> CollectorConfig:
    base = {"topics": [f"dcim/{run}/#"], "client_id": f"collector-{run}", "spool_path": tmp_path / "spool",
            "dead_letter_path": tmp_path / "dead.jsonl", "linger_ms": 100, "retry_max_s": 0.5}
    return CollectorConfig(**{**base, **kw})


def big_message(prefix: str, lines: int) -> Message:
    """One agent message of ``lines`` points (a node with very many GPUs, say)."""
    recs = [Record("gpu", {"site": prefix.rsplit("/", 1)[-1], "rack": "R9", "node": "big", "gpu": str(g)},
                   {"power_w": 200.0 + g, "temp_c": 50.5, "util_pct": 1.0, "mem_used_bytes": g,
                    "throttle_hw_slowdown": False}, T0 + 10**9) for g in range(lines)]
    return Message(f"{prefix}/R9/big/gpu", "\n".join(encode_record(r) for r in recs).encode(), recs)


async def test_a_batch_larger_than_the_spool_during_an_outage_resumes_by_itself(mosquitto, influxdb_factory, tmp_path):
    influx = influxdb_factory()
    run = uid()
    db = f"c{run}"
    influx.create_database(db)
    cfg = config(tmp_path, run, sink="influx", spool_max_bytes=64 * 1024,
                 influx=InfluxConfig(url=influx.url, api="v1", database=db, timeout_s=2))
    big = big_message(f"dcim/{run}", 3000)  # ~400 KB: six times the spool
    assert len(big.payload) > 6 * cfg.spool_max_bytes
    small = gpu_messages(f"dcim/{run}", 40)
    pub = Publisher(mosquitto.host, mosquitto.port)
    async with running(cfg, mosquitto.url) as c:
        await asyncio.to_thread(influx.stop)
        await asyncio.to_thread(pub.publish, [big, *small])
        await wait_for(lambda: metric(c, "dcim_collector_spool_full") == 1, what="the spool at its cap")
        await asyncio.sleep(2)
        # nothing acknowledged while the batch is neither in InfluxDB nor all in the spool
        assert metric(c, "dcim_collector_messages_acked_total") == 0
        assert metric(c, "dcim_collector_spool_errors_total", kind="full") > 0
        await asyncio.to_thread(influx.start)
        want = len(big.records) + len(all_records(small))
        await wait_for(lambda: influx_count(influx, db) >= want, timeout_s=90, what="every point, no restart")
        await wait_for(lambda: metric(c, "dcim_collector_messages_acked_total") >= 41, what="all acknowledged")
        assert metric(c, "dcim_collector_spool_full") == 0
    pub.close()
    assert influx_records(influx, db, "gpu", TAGS) == expected_rows([*big.records, *all_records(small)], TAGS)


async def test_a_full_disk_under_the_spool_holds_then_resumes_by_itself(mosquitto, influxdb_factory, tmp_path):
    influx = influxdb_factory()
    run = uid()
    db = f"c{run}"
    influx.create_database(db)
    with small_tmpfs(tmp_path / "disk", 96) as disk:
        cfg = config(tmp_path, run, sink="influx", spool_path=disk / "spool", spool_max_bytes=64 * 1024**2,
                     influx=InfluxConfig(url=influx.url, api="v1", database=db, timeout_s=2))
        msgs = gpu_messages(f"dcim/{run}", 400)  # ~500 KB of line protocol for a 96 KiB disk
        pub = Publisher(mosquitto.host, mosquitto.port)
        async with running(cfg, mosquitto.url) as c:
            await asyncio.to_thread(influx.stop)
            sender = asyncio.create_task(asyncio.to_thread(pub.publish, msgs))
            await wait_for(lambda: metric(c, "dcim_collector_spool_errors_total", kind="disk") > 0,
                           what="the disk refusing a spool write")
            acked = metric(c, "dcim_collector_messages_acked_total")
            await asyncio.sleep(2)
            assert metric(c, "dcim_collector_messages_acked_total") == acked  # held, not acknowledged
            assert metric(c, "dcim_collector_spool_full") == 1
            await asyncio.to_thread(influx.start)
            await sender
            await wait_for(lambda: influx_count(influx, db) >= 3200, timeout_s=120, what="every point, no restart")
            await wait_for(lambda: metric(c, "dcim_collector_spool_bytes") == 0, what="spool drained")
        pub.close()
    assert influx_records(influx, db, "gpu", TAGS) == expected_rows(all_records(msgs), TAGS)


def test_a_spool_at_its_cap_after_a_kill_resumes_by_itself(mosquitto, influxdb_factory, tmp_path):
    influx = influxdb_factory()
    run = uid()
    db = f"c{run}"
    influx.create_database(db)
    port = servers.free_tcp_port()
    cfg_path = tmp_path / "collector.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "mqtt": {"url": mosquitto.url},
        "collector": {
            "topics": [f"dcim/{run}/#"], "client_id": f"collector-{run}", "sink": "influx",
            "influx": {"url": influx.url, "api": "v1", "database": db, "timeout_s": 2},
            "spool_path": str(tmp_path / "spool"), "dead_letter_path": str(tmp_path / "dead.jsonl"),
            "spool_max_bytes": 128 * 1024, "linger_ms": 100, "retry_max_s": 0.5,
            "metrics": {"host": "127.0.0.1", "port": port},
        },
    }))
    col = CollectorProcess(cfg_path, port, tmp_path / "collector.log")
    msgs = gpu_messages(f"dcim/{run}", 600)  # ~750 KB: the spool fills at about a sixth
    col.start()
    try:
        influx.stop()
        pub = Publisher(mosquitto.host, mosquitto.port)
        pub.publish(msgs)
        servers.wait_until(lambda: col.value("dcim_collector_spool_full") == 1, timeout_s=60,
                           message="the spool at its cap")
        col.kill()
        col.start()  # starts with a full spool and the broker's backlog
        servers.wait_until(lambda: col.value("dcim_collector_spool_full") == 1, timeout_s=60,
                           message="the spool at its cap again after the restart")
        influx.start()
        servers.wait_until(lambda: influx_count(influx, db) >= 4800, timeout_s=120,
                           message="every point once InfluxDB is back, with no second restart")
        servers.wait_until(lambda: col.value("dcim_collector_spool_bytes") == 0, timeout_s=60, message="drained")
        pub.close()
    finally:
        col.stop()
    assert influx_records(influx, db, "gpu", TAGS) == expected_rows(all_records(msgs), TAGS)


async def test_a_dead_letter_file_on_a_full_disk_holds_the_message_and_the_process_goes_on(
        mosquitto, influxdb, tmp_path):
    run = uid()
    db = f"c{run}"
    influxdb.create_database(db)
    with small_tmpfs(tmp_path / "dl", 64) as disk:
        filler = fill(disk)
        cfg = config(tmp_path, run, sink="influx", dead_letter_path=disk / "dead.jsonl",
                     influx=InfluxConfig(url=influxdb.url, api="v1", database=db, timeout_s=2))
        good = gpu_messages(f"dcim/{run}", 8)
        bad_topic = f"dcim/{run}/R1/n0/gpu"
        pub = Publisher(mosquitto.host, mosquitto.port)
        async with running(cfg, mosquitto.url) as c:
            await asyncio.to_thread(pub.publish_raw, bad_topic, f"gpu,node=n0 power_w=oops {T0}\n".encode())
            await wait_for(lambda: metric(c, "dcim_collector_dead_letter_errors_total") >= 2,
                           what="the dead-letter write refused, and tried again")
            assert metric(c, "dcim_collector_messages_acked_total") == 0  # held
            assert metric(c, "dcim_collector_dead_letter_pending") == 1
            # the process goes on: later messages are written; their acknowledgements wait
            # behind the held one
            await asyncio.to_thread(pub.publish, good)
            await wait_for(lambda: influx_count(influxdb, db) >= 64, what="good points written meanwhile")
            filler.unlink()  # room again
            await wait_for(lambda: metric(c, "dcim_collector_messages_acked_total") >= 9,
                           what="everything acknowledged once the entry is on disk")
            assert metric(c, "dcim_collector_dead_letter_pending") == 0
            entries = read_dead_letters(disk / "dead.jsonl")
        pub.close()
    assert [(e["topic"], e["reason"]) for e in entries] == [(bad_topic, "parse_error")]
