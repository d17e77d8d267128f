"""The dead-letter file: every refused line, with its topic and reason, one JSON object per line.

Entries are held in memory and written and fsynced by ``sync()``, which the collector calls before
it acknowledges the messages they came from, so a refused line is never lost either. When the file
system refuses the write (a full disk), ``sync()`` returns False, keeps the entries and counts the
error; the collector keeps those messages unacknowledged and tries again, and the process goes on.
Each reason is logged once (then only counted); the file rotates to ``<name>.1`` past ``max_bytes``,
and the entries of the ``.1`` file it replaces are counted as discarded on ``/metrics``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from dcim.collector.validate import Reject
from dcim.files import owner_only

log = logging.getLogger(__name__)

TEXT_MAX = 64 * 1024  # a 10 MB garbage payload keeps its first 64 KiB here, and its size


class DeadLetter:
    def __init__(self, path: Path | str, *, max_bytes: int = 256 * 1024**2, metrics: Any = None) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.metrics = metrics  # CollectorMetrics, or None
        self._f = None
        self._pending: list[str] = []
        self._logged: set[str] = set()
        self._error_logged = False
        self.received = 0  # entries taken
        self.sent = 0  # entries fsynced
        self.errors = 0  # writes the file system refused
        self.rotations = 0

    def _open(self):  # noqa: ANN202
        if self._f is None:
            # refused lines can hold anything a device sent: a new folder 0700, the file 0600
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._f = open(self.path, "a", encoding="utf-8", opener=owner_only)  # noqa: SIM115
            os.chmod(self.path, 0o600)
        return self._f

    def add(self, reject: Reject, *, topic: str | None, now_ns: int, size: int | None = None) -> None:
        """Take one refused line (or payload); ``size`` is the size of what was refused when the
        text kept is only its beginning."""
        text = reject.text
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_ns // 10**9)) + f".{now_ns % 10**9 // 10**6:03d}Z",
            "topic": topic,
            "reason": reject.reason,
            "detail": reject.detail,
            "line": reject.line,
            "size": size if size is not None else len(text),
            "text": text[:TEXT_MAX],
        }
        self._pending.append(json.dumps(entry, ensure_ascii=False) + "\n")
        self.received += 1
        if self.metrics is not None:
            self.metrics.dead_letter_pending.set(len(self._pending))
        if reject.reason not in self._logged:
            self._logged.add(reject.reason)
            log.warning("dead-lettered a line (%s): %s; topic %s; further ones of this kind are only counted, "
                        "see %s", reject.reason, reject.detail[:200], topic, self.path)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def sync(self) -> bool:
        """Make every entry so far durable; rotate when the file is past its size. False (entries
        kept, error counted) when the file system refuses."""
        if not self._pending:
            return True
        start = None
        try:
            f = self._open()
            start = f.tell()
            f.write("".join(self._pending))
            f.flush()
            os.fsync(f.fileno())
        except OSError as exc:
            self._failed(exc, start)
            return False
        self.sent += len(self._pending)
        self._pending.clear()
        if self.metrics is not None:
            self.metrics.dead_letter_pending.set(0)
        if self._error_logged:
            log.warning("dead-letter file %s is writable again", self.path)
            self._error_logged = False
        if self._f.tell() > self.max_bytes:
            self._rotate()
        return True

    def _failed(self, exc: OSError, start: int | None) -> None:
        self.errors += 1
        if self.metrics is not None:
            self.metrics.dead_letter_errors.inc()
        if not self._error_logged:
            self._error_logged = True
            log.error("cannot write the dead-letter file %s (%s); holding %d entries and the messages they "
                      "came from unacknowledged, and trying again", self.path, exc, len(self._pending))
        f, self._f = self._f, None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass  # what stayed buffered is cut off below
        if start is not None:
            try:
                os.truncate(self.path, start)  # no half entry left behind
            except OSError:
                log.exception("cannot cut a partial entry off %s", self.path)

    def _rotate(self) -> None:
        self._f.close()
        self._f = None
        old = self.path.with_name(self.path.name + ".1")
        lost = 0
        try:
            with open(old, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    lost += chunk.count(b"\n")
        except FileNotFoundError:
            pass
        try:
            os.replace(self.path, old)
        except OSError as exc:
            log.error("cannot rotate the dead-letter file %s (%s); it keeps growing", self.path, exc)
            return
        self.rotations += 1
        if self.metrics is not None:
            self.metrics.dead_letter_rotations.inc()
            self.metrics.dead_letter_discarded.inc(lost)
        if lost:
            log.warning("rotated the dead-letter file %s; %d entries of the older %s were deleted",
                        self.path, lost, old.name)

    def close(self) -> None:
        self.sync()
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
            self._f = None


def read_dead_letters(path: Path | str) -> list[dict]:
    """Every entry of a dead-letter file (for tests and for people)."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
