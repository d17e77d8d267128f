"""The dead-letter file: every refused line, with its topic and reason, one JSON object per line.

Entries are buffered and fsynced by ``sync()``, which the collector calls before it acknowledges
the messages they came from, so a refused line is never lost either. Each reason is logged once
(then only counted); the file rotates to ``<name>.1`` past ``max_bytes``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from collector.validate import Reject

log = logging.getLogger(__name__)

TEXT_MAX = 64 * 1024  # a 10 MB garbage payload keeps its first 64 KiB here, and its size


class DeadLetter:
    def __init__(self, path: Path | str, *, max_bytes: int = 256 * 1024**2) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._f = None
        self._dirty = False
        self._logged: set[str] = set()
        self.received = 0  # entries written
        self.sent = 0  # entries fsynced

    def _open(self):  # noqa: ANN202
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        return self._f

    def add(self, reject: Reject, *, topic: str | None, now_ns: int) -> None:
        text = reject.text
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_ns // 10**9)) + f".{now_ns % 10**9 // 10**6:03d}Z",
            "topic": topic,
            "reason": reject.reason,
            "detail": reject.detail,
            "line": reject.line,
            "size": len(text),
            "text": text[:TEXT_MAX],
        }
        f = self._open()
        f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._dirty = True
        self.received += 1
        if reject.reason not in self._logged:
            self._logged.add(reject.reason)
            log.warning("dead-lettered a line (%s): %s; topic %s; further ones of this kind are only counted, "
                        "see %s", reject.reason, reject.detail[:200], topic, self.path)

    def sync(self) -> None:
        """Make every entry so far durable; rotate when the file is past its size."""
        if not self._dirty or self._f is None:
            return
        self._f.flush()
        os.fsync(self._f.fileno())
        self.sent = self.received
        self._dirty = False
        if self._f.tell() > self.max_bytes:
            self._f.close()
            self._f = None
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))

    def close(self) -> None:
        if self._f is not None:
            self.sync()
            if self._f is not None:
                self._f.close()
            self._f = None


def read_dead_letters(path: Path | str) -> list[dict]:
    """Every entry of a dead-letter file (for tests and for people)."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
