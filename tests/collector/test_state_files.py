"""The collector's state (spool, dead-letter file, embedded store) is private: folders 0700, files 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dcim.collector.deadletter import DeadLetter
from dcim.collector.spool import Spool
from dcim.collector.store import EmbeddedStore
from dcim.collector.validate import Reject
from dcim.record import Record


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_state_folders_are_0700_and_files_0600(tmp_path: Path) -> None:
    old = os.umask(0o002)  # a permissive umask must not widen them
    try:
        spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
        spool.append(b"gpu,node=n1 power_w=1 1\n", 1)
        spool.peek()
        spool.pop()
        spool.append(b"gpu,node=n1 power_w=2 2\n", 1)
        spool.close()
        dl = DeadLetter(tmp_path / "dl" / "dead.jsonl")
        dl.add(Reject("parse_error", "x", "bad"), topic="t", now_ns=0)
        assert dl.sync()
        dl.close()
        store = EmbeddedStore(tmp_path / "store")
        store.write([Record("gpu", {"node": "n1"}, {"power_w": 1.0}, 1)])
        store.close()
    finally:
        os.umask(old)
    folders = [tmp_path / "spool", tmp_path / "dl", tmp_path / "store"]
    folders += [p for p in (tmp_path / "store").rglob("*") if p.is_dir()]
    files = [p for f in (tmp_path / "spool", tmp_path / "dl", tmp_path / "store") for p in f.rglob("*") if p.is_file()]
    assert len(files) >= 4
    assert {str(p): oct(_mode(p)) for p in folders if _mode(p) != 0o700} == {}
    assert {str(p): oct(_mode(p)) for p in files if _mode(p) != 0o600} == {}
