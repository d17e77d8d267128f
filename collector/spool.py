"""The disk spool: batches the sink could not take, kept in fsynced segment files, drained in order.

Layout of ``<spool_path>/``:

    00000000000000000001.seg   batches, each framed as  [u32 length][u32 crc32][u32 lines][body]
    00000000000000000002.seg   (big-endian; body = newline-separated line protocol)
    cursor                     "<segment> <offset>": where the oldest undrained batch starts

``append`` returns only after the batch is on disk (fsync), which is what lets the collector
acknowledge the MQTT messages behind it. ``pop`` moves the cursor (written atomically) past a
batch once the sink has it, and deletes a segment once it is drained. After a kill -9 the torn
tail of the last segment (a batch whose append never returned) is cut off; a batch the sink got
but whose cursor move was lost is sent again, which InfluxDB treats as an overwrite.

The spool holds at most ``max_bytes``; ``append`` past that raises SpoolFull, and a full disk
raises OSError with nothing half-written left behind. Either way the collector keeps the messages
unacknowledged, so the broker holds them instead of anything being dropped. A cursor that cannot
be written (a full disk again) stays in memory and is written with the next move; until then a
restart would send some drained batches again, which the store takes as overwrites.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path

from dcim.errors import SpoolFull
from dcim.files import fsync_dir, owner_only

log = logging.getLogger(__name__)

_HEAD = struct.Struct(">III")
_SUFFIX = ".seg"


class Spool:
    def __init__(self, path: Path | str, *, max_bytes: int, segment_bytes: int = 16 * 1024**2,
                 warn_ratio: float = 0.8) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.warn_ratio = warn_ratio
        # points waiting for the store are as private as the store: folder 0700, files 0600
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)
        self._segments: list[int] = []  # ids, oldest first
        self._sizes: dict[int, int] = {}
        self._cursor = (0, 0)  # (segment id, offset) of the oldest undrained batch
        self._writer = None  # file of the newest segment, opened for append
        self._reader = None
        self._reader_id = -1
        self._peeked: tuple[int, int, int] | None = None  # (segment, next offset, lines)
        self._cursor_dirty = False  # moved in memory, not yet on disk (the write failed)
        self.batches = 0  # undrained batches (exact after open: counted while scanning)
        self.lines = 0
        self.corrupt = 0
        self._recover()

    # --- state ------------------------------------------------------------------------------

    @property
    def bytes(self) -> int:
        """Bytes on disk not yet drained."""
        total = sum(self._sizes.values())
        if self._segments and self._cursor[0] == self._segments[0]:
            total -= self._cursor[1]
        return max(0, total)

    @property
    def segments(self) -> int:
        return len(self._segments)

    def empty(self) -> bool:
        return self.batches == 0

    @property
    def near_full(self) -> bool:
        return self.bytes >= self.warn_ratio * self.max_bytes

    # --- recovery ---------------------------------------------------------------------------

    def _seg_path(self, seg: int) -> Path:
        return self.path / f"{seg:020d}{_SUFFIX}"

    def _recover(self) -> None:
        ids = sorted(int(p.name[: -len(_SUFFIX)]) for p in self.path.glob(f"*{_SUFFIX}")
                     if p.name[: -len(_SUFFIX)].isdigit())
        cursor = self._read_cursor()
        ids = [i for i in ids if i >= cursor[0]] if cursor else ids
        for stale in self.path.glob(f"*{_SUFFIX}"):
            stem = stale.name[: -len(_SUFFIX)]
            if stem.isdigit() and int(stem) not in ids:
                stale.unlink()  # drained before a crash stopped us deleting it
        self._segments = ids
        if ids:
            start = cursor if cursor and cursor[0] == ids[0] else (ids[0], 0)
        else:
            start = (1 if not cursor else cursor[0] + 1, 0)
        self._cursor = start
        for i, seg in enumerate(ids):
            last = i == len(ids) - 1
            first_offset = start[1] if seg == start[0] else 0
            size, batches, lines = self._scan(seg, first_offset, repair=last)
            self._sizes[seg] = size
            self.batches += batches
            self.lines += lines
        if self.batches:
            log.warning("spool %s holds %d batches (%d lines, %d bytes) from before; draining them first",
                        self.path, self.batches, self.lines, self.bytes)

    def _scan(self, seg: int, offset: int, *, repair: bool) -> tuple[int, int, int]:
        """(valid size, batches after offset, lines after offset); cut a torn tail when repair."""
        p = self._seg_path(seg)
        data = p.read_bytes()
        pos = 0
        batches = lines = 0
        while pos + _HEAD.size <= len(data):
            length, crc, n = _HEAD.unpack_from(data, pos)
            end = pos + _HEAD.size + length
            if end > len(data):
                break  # a short write: the torn tail
            if zlib.crc32(memoryview(data)[pos + _HEAD.size : end]) != crc:
                if end == len(data):
                    break  # the last batch, not all of it on disk: the torn tail
                # damaged in the middle (the disk, not us): skip it, keep what follows
                if pos >= offset:
                    self.corrupt += 1
                    log.error("spool segment %s: the batch at byte %d is damaged; skipping it", p.name, pos)
                pos = end
                continue
            if pos >= offset:
                batches += 1
                lines += n
            pos = end
        if pos < len(data):
            if repair:
                log.warning("spool segment %s: cutting a torn tail of %d bytes (a batch never acknowledged)",
                            p.name, len(data) - pos)
                with open(p, "r+b") as f:
                    f.truncate(pos)
                    os.fsync(f.fileno())
            else:
                self.corrupt += 1
                log.error("spool segment %s is damaged at byte %d; the rest of it cannot be read", p.name, pos)
        return pos, batches, lines

    def _read_cursor(self) -> tuple[int, int] | None:
        try:
            seg, off = (self.path / "cursor").read_text().split()
            return int(seg), int(off)
        except (OSError, ValueError):
            return None

    def _write_cursor(self) -> None:
        tmp = self.path / "cursor.tmp"
        with open(tmp, "w", opener=owner_only) as f:
            f.write(f"{self._cursor[0]} {self._cursor[1]}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / "cursor")
        fsync_dir(self.path)

    # --- writing ----------------------------------------------------------------------------

    def append(self, body: bytes, lines: int) -> None:
        """Write one batch durably (fsync) or raise SpoolFull without writing anything."""
        size = _HEAD.size + len(body)
        if self.bytes + size > self.max_bytes:
            raise SpoolFull(f"spool {self.path} is full ({self.bytes} of {self.max_bytes} bytes)")
        if not self._segments or self._sizes[self._segments[-1]] >= self.segment_bytes:
            self._roll()
        seg = self._segments[-1]
        try:
            if self._writer is None:
                self._writer = open(self._seg_path(seg), "ab", opener=owner_only)  # noqa: SIM115
            w = self._writer
            w.write(_HEAD.pack(len(body), zlib.crc32(body), lines))
            w.write(body)
            w.flush()
            os.fsync(w.fileno())
        except OSError:
            self._cut_back(seg)
            raise
        self._sizes[seg] += size
        self.batches += 1
        self.lines += lines

    def _cut_back(self, seg: int) -> None:
        """After a failed append: drop whatever part of it reached the file (a full disk)."""
        w, self._writer = self._writer, None
        if w is not None:
            try:
                w.close()
            except OSError:
                pass  # the buffered rest could not be written either; the truncate below removes it
        try:
            os.truncate(self._seg_path(seg), self._sizes[seg])
        except OSError as exc:
            log.error("spool segment %s: cannot cut off a failed append (%s); it is cut at the next start",
                      seg, exc)

    def _roll(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        seg = (self._segments[-1] + 1) if self._segments else max(self._cursor[0], 1)
        self._seg_path(seg).touch(mode=0o600)
        fsync_dir(self.path)
        self._segments.append(seg)
        self._sizes[seg] = 0
        if len(self._segments) == 1:
            self._cursor = (seg, 0)

    # --- draining ---------------------------------------------------------------------------

    def peek(self) -> tuple[bytes, int] | None:
        """The oldest undrained batch (body, lines), or None when the spool is empty."""
        while self._segments:
            seg, off = self._cursor
            if seg != self._segments[0]:
                seg, off = self._segments[0], 0
                self._cursor = (seg, 0)
            if off >= self._sizes[seg]:
                if len(self._segments) == 1:
                    return None  # the writer's segment, drained up to now
                self._drop_head()
                continue
            if self._reader_id != seg:
                if self._reader is not None:
                    self._reader.close()
                self._reader = open(self._seg_path(seg), "rb")  # noqa: SIM115
                self._reader_id = seg
            r = self._reader
            r.seek(off)
            head = r.read(_HEAD.size)
            length, crc, n = _HEAD.unpack(head)
            body = r.read(length)
            if len(body) != length or zlib.crc32(body) != crc:
                end = off + _HEAD.size + length
                if len(body) == length and end < self._sizes[seg]:
                    self._cursor = (seg, end)  # skip the damaged batch (counted when scanned)
                    continue
                self.corrupt += 1
                log.error("spool segment %s damaged at byte %d; skipping the rest of it", seg, off)
                self._sizes[seg] = off
                continue
            self._peeked = (seg, off + _HEAD.size + length, n)
            return body, n
        return None

    def pop(self) -> None:
        """The sink has the batch ``peek`` returned: move past it (durably)."""
        if self._peeked is None:
            return
        seg, nxt, n = self._peeked
        self._peeked = None
        self._cursor = (seg, nxt)
        self.batches -= 1
        self.lines -= n
        if nxt >= self._sizes[seg] and len(self._segments) > 1:
            self._drop_head()
        elif self.batches == 0 and len(self._segments) == 1:
            # all drained: start afresh so the spool folder does not keep an empty old file
            self._drop_head()
        else:
            self._save_cursor()

    def _save_cursor(self) -> None:
        try:
            self._write_cursor()
        except OSError as exc:
            if not self._cursor_dirty:
                log.error("spool %s: cannot write the cursor (%s); keeping it in memory and trying again at "
                          "the next batch (a restart before then sends some batches twice)", self.path, exc)
            self._cursor_dirty = True
            return
        self._cursor_dirty = False

    def _drop_head(self) -> None:
        seg = self._segments.pop(0)
        self._sizes.pop(seg, None)
        if self._reader_id == seg and self._reader is not None:
            self._reader.close()
            self._reader = None
            self._reader_id = -1
        if not self._segments and self._writer is not None:
            self._writer.close()
            self._writer = None
        nxt = self._segments[0] if self._segments else seg + 1
        self._cursor = (nxt, 0)
        self._save_cursor()  # first: a crash after it must not resend the dropped segment
        try:
            self._seg_path(seg).unlink(missing_ok=True)
            fsync_dir(self.path)
        except OSError as exc:  # a later start deletes a segment before its cursor
            log.error("spool %s: cannot delete drained segment %s (%s)", self.path, seg, exc)

    def close(self) -> None:
        for f in (self._writer, self._reader):
            if f is not None:
                f.close()
        self._writer = self._reader = None
        self._reader_id = -1
