"""The embedded store: records kept in plain line-protocol files, for running with no server.

Layout (documented in docs/collector.md, "Embedded store"):

    <root>/FORMAT                          "dcim-embedded-store 1" and a pointer to the docs
    <root>/<measurement>/<YYYYMMDDTHH>.lp  the points of that measurement whose timestamp falls
                                           in that UTC hour, in arrival order, one line each
    <root>/<measurement>/<YYYYMMDDTHH>.lp.gz   the same, compressed by ``compact()``

The directory tree is the index: measurement folders, and one file per hour named by its start.
A batch is appended and fsynced before ``write`` returns. A kill -9 can leave at most one torn
last line; readers ignore a last line without its newline and the next writer cuts it off.
``query`` merges duplicates the way InfluxDB does (same series and timestamp: fields merged,
the later write wins), so an at-least-once redelivery never shows twice. ``zcat``/``cat`` on a
segment gives line protocol that ``dcim.lineprotocol.decode`` (or InfluxDB) reads back. The
collector's sink writes the lines as they arrived (``write_lines``), never encoding them again.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import heapq
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from dcim.errors import ConfigError
from dcim.files import fsync_dir, owner_only
from dcim.lineprotocol.decode import decode_line, decode_report, measurement_and_time
from dcim.lineprotocol.encode import encode_record
from dcim.record import Record

HOUR_NS = 3600 * 1_000_000_000
FORMAT_LINE = "dcim-embedded-store 1\n"
_SAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_SEGMENT = re.compile(r"^(\d{8}T\d{2})\.lp(\.gz)?$")


def _dir_name(measurement: str) -> str:
    """A measurement as a folder name: anything but [A-Za-z0-9_.-] is %XX-escaped."""
    name = _SAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), measurement)
    return "%2E" + name[1:] if name.startswith(".") else name


def _measurement_of(dir_name: str) -> str:
    from urllib.parse import unquote

    return unquote(dir_name)


def _hour_name(hour: int) -> str:
    t = time.gmtime(hour * 3600)
    return f"{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}T{t.tm_hour:02d}"


def _hour_of(name: str) -> int:
    import calendar

    t = time.strptime(name, "%Y%m%dT%H")
    return calendar.timegm(t) // 3600


class EmbeddedStore:
    """File-based record store. One writer at a time (a lock file says so); any number of readers.

    ``clock`` gives the time (ns) for records that carry none.
    """

    def __init__(self, path: Path | str, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.path = Path(path)
        self.clock = clock
        self._files: dict[tuple[str, int], object] = {}
        self._lock_fd: int | None = None
        self.received = 0
        self.sent = 0
        self.rejected = 0
        self.dropped = 0

    # --- writing ----------------------------------------------------------------------------

    def _open_writer(self) -> None:
        if self._lock_fd is not None:
            return
        # the store's folders 0700 and files 0600: the data is the site's, not every local user's
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)
        fmt = self.path / "FORMAT"
        if not fmt.exists():
            with open(fmt, "w", opener=owner_only) as f:
                f.write(FORMAT_LINE + "see docs/collector.md, section 'Embedded store'\n")
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            msg = f"embedded store {self.path} is in use by another writer (collector)"
            raise ConfigError(msg) from exc
        self._lock_fd = fd

    def _segment(self, measurement: str, hour: int):  # noqa: ANN202
        key = (measurement, hour)
        f = self._files.get(key)
        if f is not None:
            return f
        folder = self.path / _dir_name(measurement)
        new_dir = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        seg = folder / f"{_hour_name(hour)}.lp"
        new_file = not seg.exists()
        f = open(seg, "ab+", opener=owner_only)  # noqa: SIM115 - kept open across batches, closed in close()
        if not new_file:
            _repair_tail(f)
        if new_dir:
            fsync_dir(self.path)
        if new_file:
            fsync_dir(folder)
        if len(self._files) >= 64:  # old hours stop getting points; don't hold their handles
            for k in list(self._files)[:32]:
                self._files.pop(k).close()
        self._files[key] = f
        return f

    def write(self, records: Iterable[Record]) -> int:
        """Append records and fsync every file touched before returning; the number written.

        A record that line protocol cannot carry raises LineProtocolError before anything of the
        batch is written.
        """
        chunks: dict[tuple[str, int], list[str]] = {}
        n = self._file_records(chunks, records)
        return self._append(chunks, n)

    def write_lines(self, lines: Iterable[str]) -> int:
        """Append validated lines as they arrived (each filed by its measurement and timestamp, read
        from its text) and fsync as ``write`` does; the number written.

        A line whose measurement or timestamp the text alone does not give (escapes, no timestamp)
        is decoded and written from its record; one that is not line protocol raises
        LineProtocolError before anything of the batch is written.
        """
        chunks: dict[tuple[str, int], list[str]] = {}
        n = 0
        for line in lines:
            if not line or line[0] == "#":
                continue
            found = measurement_and_time(line)
            if found is None:
                self._file_records(chunks, [decode_line(line)])
            else:
                chunks.setdefault((found[0], found[1] // HOUR_NS), []).append(line)
            n += 1
        return self._append(chunks, n)

    def _file_records(self, chunks: dict[tuple[str, int], list[str]], records: Iterable[Record]) -> int:
        now = None
        n = 0
        for r in records:
            ts = r.time_ns
            if ts is None:
                if now is None:
                    now = self.clock()
                ts = now
                r = Record(r.measurement, r.tags, r.fields, ts)
            chunks.setdefault((r.measurement, ts // HOUR_NS), []).append(encode_record(r))
            n += 1
        return n

    def _append(self, chunks: dict[tuple[str, int], list[str]], n: int) -> int:
        self._open_writer()
        self.received += n
        touched = []
        for (meas, hour), lines in chunks.items():
            f = self._segment(meas, hour)
            f.write(("\n".join(lines) + "\n").encode())
            touched.append(f)
        for f in touched:
            f.flush()
            os.fsync(f.fileno())
        self.sent += n
        return n

    def close(self) -> None:
        for f in self._files.values():
            with contextlib.suppress(OSError):
                f.close()
        self._files.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> EmbeddedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def compact(self, before_ns: int | None = None) -> int:
        """Gzip the plain segments of hours that ended before ``before_ns`` (default: now - 1 h).

        The gzip file is written and fsynced before the plain one is removed, so a crash leaves
        one or both (the reader prefers the plain one then); the number of segments compressed.
        """
        self._open_writer()
        limit_hour = ((before_ns if before_ns is not None else self.clock() - HOUR_NS)) // HOUR_NS
        done = 0
        for key in [k for k in self._files if k[1] < limit_hour]:
            self._files.pop(key).close()
        for folder in self._folders():
            for seg in sorted(folder.glob("*.lp")):
                m = _SEGMENT.match(seg.name)
                if not m or _hour_of(m.group(1)) >= limit_hour:
                    continue
                gz = seg.with_name(seg.name + ".gz")
                tmp = seg.with_name(seg.name + ".gz.tmp")
                data = _complete_lines(seg.read_bytes())
                with open(tmp, "wb", opener=owner_only) as raw:
                    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as z:
                        z.write(data)
                    raw.flush()
                    os.fsync(raw.fileno())
                os.replace(tmp, gz)
                fsync_dir(folder)
                seg.unlink()
                fsync_dir(folder)
                done += 1
        return done

    # --- reading ----------------------------------------------------------------------------

    def _folders(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.iterdir() if p.is_dir() and not p.name.startswith("."))

    def measurements(self) -> list[str]:
        """The measurements that have at least one segment, sorted."""
        out = []
        for folder in self._folders():
            if any(_SEGMENT.match(p.name) for p in folder.iterdir()):
                out.append(_measurement_of(folder.name))
        return sorted(out)

    def segments(self, measurement: str) -> list[tuple[int, Path]]:
        """(hour since the epoch, file) of a measurement's segments, oldest first."""
        folder = self.path / _dir_name(measurement)
        if not folder.is_dir():
            return []
        found: dict[int, Path] = {}
        for p in folder.iterdir():
            m = _SEGMENT.match(p.name)
            if not m:
                continue
            hour = _hour_of(m.group(1))
            if hour not in found or not m.group(2):  # a plain file wins over its half-made .gz
                found[hour] = p
        return sorted(found.items())

    def query(
        self,
        measurement: str | None = None,
        *,
        tags: dict[str, str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> Iterator[Record]:
        """Records in time order; ``start_ns`` inclusive, ``end_ns`` exclusive; tags match exactly.

        Without a measurement, all measurements merge into one time-ordered stream (ties in
        measurement-name order). Duplicates (same series and time) merge, later write winning.
        """
        if measurement is None:
            streams = [self._query_one(m, tags, start_ns, end_ns) for m in self.measurements()]
            return heapq.merge(*streams, key=lambda r: r.time_ns)
        return self._query_one(measurement, tags, start_ns, end_ns)

    def _query_one(self, measurement: str, tags: dict[str, str] | None, start_ns: int | None,
                   end_ns: int | None) -> Iterator[Record]:
        want = tuple((tags or {}).items())
        for hour, seg in self.segments(measurement):
            if start_ns is not None and (hour + 1) * HOUR_NS <= start_ns:
                continue
            if end_ns is not None and hour * HOUR_NS >= end_ns:
                break
            data = _read_segment(seg)
            merged: dict[tuple, Record] = {}
            records = decode_report(data.decode("utf-8", "replace")).records  # a bad line costs only itself
            for r in records:
                t = r.time_ns
                if t is None or (start_ns is not None and t < start_ns) or (end_ns is not None and t >= end_ns):
                    continue
                if want and any(r.tags.get(k) != v for k, v in want):
                    continue
                key = (tuple(sorted(r.tags.items())), t)
                old = merged.get(key)
                if old is None:
                    merged[key] = r
                else:
                    old.fields.update(r.fields)
            yield from sorted(merged.values(), key=lambda r: r.time_ns)


def _complete_lines(data: bytes) -> bytes:
    """Everything up to and including the last newline: a torn last line is not data yet."""
    cut = data.rfind(b"\n")
    return data[: cut + 1] if cut >= 0 else b""


def _read_segment(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return _complete_lines(f.read())
        return _complete_lines(path.read_bytes())
    except FileNotFoundError:  # compacted between listing and reading
        gz = path.with_name(path.name + ".gz")
        return _read_segment(gz) if gz.exists() else b""


def _repair_tail(f) -> None:  # noqa: ANN001
    """Cut a torn last line (a write cut short by kill -9) before appending after it."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return
    pos = size
    while pos > 0:
        step = min(65536, pos)
        f.seek(pos - step)
        chunk = f.read(step)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            f.truncate(pos - step + cut + 1)
            break
        pos -= step
    else:
        f.truncate(0)
    f.flush()
    os.fsync(f.fileno())
    f.seek(0, os.SEEK_END)
