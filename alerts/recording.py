"""Recordings: time-ordered gzip line protocol with a ``#`` comment header (or the columnar twin).

A recording is what InfluxDB imports (its reader skips ``#`` lines), so a file can go straight back
into a database, yet it carries enough metadata to be replayed on its own::

    # dcim-recording v1
    # source: simulator scenario=pump-degradation seed=42
    # start_ns: 1795000000000000000
    # end_ns: 1795000600000000000
    # topology: embedded
    gpu,site=dc1,... temp_c=61.2,... 1795000000000000000

The sources that fill recordings live in ``alerts.recording_sources`` (the embedded store's, which
needs the collector, in ``dcim.app.record`` with the ``dcim record`` command). Reading streams the file
in chunks, so an hour of a 1,024-GPU hall never sits in memory at once.
Bad input (truncated gzip, bad lines, a missing header, time going backwards) raises
RecordingError naming the file line; with ``skip_bad`` the good part is read and every problem
is kept in ``reader.problems``.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from operator import gt, itemgetter, ne
from pathlib import Path
from typing import Any, NamedTuple

from dcim.errors import DcimError, RecordingError
from dcim.lineprotocol.encode import encode
from dcim.lineprotocol.decode import decode_report
from dcim.record import Record, UInt

MAGIC = "# dcim-recording v1"
VERSION = 1
#: Measurements a recording leaves out by default: the engine writes transitions, it does not read them.
DERIVED_MEASUREMENTS = frozenset({"alert"})

_CHUNK_BYTES = 4 << 20
_HEADER_KEY = re.compile(r"^#\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s?(.*)$")


# --- times and durations ----------------------------------------------------------------------


def format_time(time_ns: int) -> str:
    """RFC 3339 in UTC with nanoseconds trimmed to what is there: 2026-11-27T10:00:05Z, ...05.25Z."""
    sec, frac = divmod(time_ns, 1_000_000_000)
    text = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def parse_time(text: str) -> int:
    """RFC 3339 (``2026-11-27T10:00:00Z``) or an integer (seconds if < 1e12, else nanoseconds) -> ns."""
    t = text.strip()
    if re.fullmatch(r"-?\d+", t):
        n = int(t)
        return n * 1_000_000_000 if abs(n) < 10**12 else n
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?", t)
    if not m:
        msg = f"not a time: {text!r} (use RFC 3339 like 2026-11-27T10:00:00Z, or unix seconds)"
        raise DcimError(msg)
    base, frac, tz = m.groups()
    try:
        dt = datetime.fromisoformat(base + (tz if tz and tz != "Z" else "+00:00"))
    except ValueError as exc:
        msg = f"not a time: {text!r} ({exc})"
        raise DcimError(msg) from exc
    return int(dt.timestamp()) * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration_s(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1h30m``, ``500ms`` -> seconds."""
    t = text.strip()
    try:
        return float(t)
    except ValueError:
        pass
    parts = _DURATION.findall(t)
    if not parts or "".join(n + u for n, u in parts) != t:
        msg = f"not a duration: {text!r} (use e.g. 90s, 10m, 1h)"
        raise DcimError(msg)
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


# --- header -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Header:
    """What a recording says about itself. ``topology`` is a site file path, ``embedded`` or
    ``generated:racks=N``; replay uses it to build the same topology the engine saw live."""

    source: str = "unknown"
    start_ns: int | None = None
    end_ns: int | None = None
    topology: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    present: bool = True  # False when the file had no header (read with skip_bad)

    def lines(self) -> list[str]:
        out = [MAGIC, f"# source: {self.source}"]
        if self.start_ns is not None:
            out.append(f"# start_ns: {self.start_ns}")
            out.append(f"# start: {format_time(self.start_ns)}")
        if self.end_ns is not None:
            out.append(f"# end_ns: {self.end_ns}")
            out.append(f"# end: {format_time(self.end_ns)}")
        if self.topology:
            out.append(f"# topology: {self.topology}")
        for k in sorted(self.extra):
            out.append(f"# {k}: {self.extra[k]}")
        return out

    @classmethod
    def parse(cls, comment_lines: list[str], *, file: str | None = None) -> Header:
        """The header from the file's leading comment lines; the first must be the magic line."""
        if not comment_lines or not comment_lines[0].strip().startswith("# dcim-recording"):
            msg = f"missing header: the first line must be {MAGIC!r} (use --skip-bad to read it anyway)"
            raise RecordingError(msg, file=file, line=1)
        version = comment_lines[0].split("dcim-recording", 1)[1].strip()
        if version != f"v{VERSION}":
            msg = f"unsupported recording version {version!r}; this build reads v{VERSION}"
            raise RecordingError(msg, file=file, line=1)
        h = cls()
        for lineno, text in enumerate(comment_lines[1:], 2):
            m = _HEADER_KEY.match(text)
            if not m:
                continue  # free-text comments (InfluxDB exports have '# DML' and such)
            key, value = m.group(1), m.group(2).strip()
            if key == "source":
                h.source = value
            elif key in ("start_ns", "end_ns"):
                try:
                    setattr(h, key, int(value))
                except ValueError:
                    msg = f"header {key!r} must be an integer, got {value!r}"
                    raise RecordingError(msg, file=file, line=lineno) from None
            elif key == "topology":
                h.topology = value
            elif key not in ("start", "end"):
                h.extra[key] = value
        return h


# --- writing ----------------------------------------------------------------------------------


def canonical(records: Iterable[Record], *, file: str | None = None,
              exclude: frozenset[str] = DERIVED_MEASUREMENTS) -> list[Record]:
    """Records in the canonical order (time, measurement, tags), duplicates reduced to their last copy.

    The order makes two recordings of the same data the same file whichever source they came
    from (MQTT arrival order, InfluxDB series order). A duplicate point (same measurement, tags
    and time, as at-least-once delivery makes) keeps its last copy, as InfluxDB does.
    """
    recs = [r for r in records if r.measurement not in exclude]
    for r in recs:
        if r.time_ns is None:
            msg = f"a {r.measurement!r} record has no timestamp; a recording needs event time"
            raise RecordingError(msg, file=file)
    keyed = sorted(((r.time_ns, r.measurement, tuple(sorted(r.tags.items()))), i) for i, r in enumerate(recs))
    deduped: list[Record] = []
    for j, (key, i) in enumerate(keyed):
        if j + 1 < len(keyed) and keyed[j + 1][0] == key:
            continue  # a later copy of the same point follows
        deduped.append(recs[i])
    return deduped


#: What a recording writer writes unless told otherwise: the columnar format, whose blocks decode in
#: C, so a replay runs several times faster than from line protocol (docs/replay.md, bench/replay.py).
#: Line protocol (``lp``) is for interchange: InfluxDB imports it as it is.
DEFAULT_FORMAT = "columnar"


def format_for(path: str | Path) -> str:
    """The format a recording written to ``path`` gets when none is given: ``lp`` when its name says
    line protocol (``*.lp``, ``*.lp.gz``), so no file name lies about its content; else ``DEFAULT_FORMAT``."""
    return "lp" if Path(path).name.endswith((".lp", ".lp.gz")) else DEFAULT_FORMAT


def write_recording(path: str | Path, records: Iterable[Record], header: Header, *,
                    exclude: frozenset[str] = DERIVED_MEASUREMENTS, fmt: str | None = None) -> int:
    """Write records in the canonical order (see ``canonical``); returns the count written.

    ``fmt`` is ``columnar`` or ``lp`` (gzip line protocol); None: ``format_for(path)``, columnar
    unless the name ends in ``.lp.gz``. The gzip member carries no name or mtime, so the same
    records and header give the same bytes.
    """
    if fmt is None:
        fmt = format_for(path)
    recs = canonical(records, file=str(path), exclude=exclude)
    if recs:
        if header.start_ns is None:
            header.start_ns = recs[0].time_ns
        if header.end_ns is None:
            header.end_ns = recs[-1].time_ns
    header.extra["records"] = str(len(recs))
    if fmt == "columnar":
        return write_columnar(path, [recs], header)
    if fmt != "lp":
        msg = f"unknown recording format {fmt!r} (use lp or columnar)"
        raise RecordingError(msg)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(("\n".join(header.lines()) + "\n").encode())
        step = 20_000
        for i in range(0, len(recs), step):
            gz.write(encode(recs[i : i + step]).encode())
    return len(recs)


# --- the columnar format ----------------------------------------------------------------------
#
# Gzip JSON lines: the first line is {"dcim_recording": "columnar-v1", "header": {...}}; each later
# line is a block {"s": [new series templates], "r": [rows]}. A template is
# [index, measurement, tags, field names, field types] and a row is [index, time_ns, values...].
# json.loads runs in C, so a block decodes several times faster than the same line protocol.
# Types (f float, i int, u unsigned, b bool, s str) keep every value exact: the conversion to and
# from line protocol is lossless (tests/alerts/test_recording.py).

COLUMNAR_MAGIC = "columnar-v1"
_TYPE_CODE = {float: "f", int: "i", UInt: "u", bool: "b", str: "s"}
_BLOCK_ROWS = 20_000


def write_columnar(path: str | Path, batches: Iterable[list[Record]], header: Header) -> int:
    """Write time-ordered batches in the columnar format, in the order given; returns the count."""
    templates: dict[tuple, int] = {}
    n = 0
    head = {"source": header.source, "start_ns": header.start_ns, "end_ns": header.end_ns,
            "topology": header.topology, "extra": dict(sorted(header.extra.items()))}
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(json.dumps({"dcim_recording": COLUMNAR_MAGIC, "header": head}, sort_keys=True).encode() + b"\n")
        new: list[list] = []
        rows: list[list] = []

        def flush() -> None:
            gz.write(json.dumps({"s": new, "r": rows}, separators=(",", ":"), allow_nan=False).encode() + b"\n")
            new.clear()
            rows.clear()

        for batch in batches:
            for r in batch:
                if r.time_ns is None:
                    msg = f"a {r.measurement!r} record has no timestamp; a recording needs event time"
                    raise RecordingError(msg, file=str(path))
                names = tuple(r.fields)
                try:
                    types = "".join(_TYPE_CODE[type(v)] for v in r.fields.values())
                except KeyError:
                    types = "".join(_TYPE_CODE[_base_type(v)] for v in r.fields.values())
                key = (r.measurement, tuple(r.tags.items()), names, types)
                idx = templates.get(key)
                if idx is None:
                    idx = templates[key] = len(templates)
                    new.append([idx, r.measurement, r.tags, list(names), types])
                rows.append([idx, r.time_ns, *r.fields.values()])
                n += 1
                if len(rows) >= _BLOCK_ROWS:
                    flush()
        if rows or new:
            flush()
    return n


def _base_type(v: object) -> type:
    for t in (bool, UInt, int, float, str):
        if isinstance(v, t):
            return t
    msg = f"field value {v!r} of type {type(v).__name__} cannot be recorded"
    raise RecordingError(msg)


class Series(NamedTuple):
    """One series template of a columnar recording: what every row that names it shares."""

    measurement: str
    tags: dict[str, str]
    names: list[str]
    uints: list[int]  # positions of the unsigned values (UInt, not int)
    types: str
    ident: tuple  # (measurement, tag items, field names, types): hashable, equal for equal templates


class Block:
    """One block of a columnar recording as it is stored: ``rows`` of ``[series, time_ns, values...]``.

    The engine ingests a block without a ``Record`` per row (``Engine.process_block``);
    ``records()`` gives the same records ``RecordingReader.batches()`` gives. Rows are checked when
    the block is read (value counts, integer times, time order), unsigned values are ``UInt``.
    """

    __slots__ = ("rows", "series", "times")

    def __init__(self, series: dict[int, Series], rows: list[list], times: list[int]) -> None:
        self.series = series
        self.rows = rows
        self.times = times

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def field_values(self) -> int:
        return sum(map(len, self.rows)) - 2 * len(self.rows)

    def records(self) -> list[Record]:
        series = self.series
        out: list[Record] = []
        append = out.append
        for row in self.rows:
            s = series[row[0]]
            append(Record(s.measurement, dict(s.tags), dict(zip(s.names, row[2:])), row[1]))
        return out


def _decode_columnar_block(line: bytes, templates: dict[int, Series]) -> Block:
    """One block of the columnar format; ValueError, KeyError or TypeError when it is not one."""
    block = json.loads(line)
    for idx, meas, tags, names, types in block["s"]:
        templates[idx] = Series(meas, tags, names, [i + 2 for i, c in enumerate(types) if c == "u"], types,
                                (meas, tuple(tags.items()), tuple(names), types))
    rows = block["r"]
    # the checks run over whole columns in C; a block that fails them is walked row by row for the
    # first problem, so the message is the one a row-by-row reader gives
    try:
        width = {idx: len(s.names) + 2 for idx, s in templates.items()}
        ok = not any(map(ne, map(len, rows), map(width.__getitem__, map(itemgetter(0), rows))))
        times = list(map(itemgetter(1), rows))
        ok = ok and set(map(type, times)) <= {int}
    except (KeyError, TypeError, IndexError):
        ok = False
    if not ok:
        _check_rows(rows, templates)
        raise ValueError("a row does not match its series")  # unreachable: _check_rows raised
    if any(templates[i].uints for i in {row[0] for row in rows}):
        for row in rows:
            for i in templates[row[0]].uints:
                row[i] = UInt(row[i])
    return Block(dict(templates), rows, times)


def _check_rows(rows: list, templates: dict[int, Series]) -> None:
    for row in rows:
        s = templates[row[0]]
        if len(row) - 2 != len(s.names):
            raise ValueError("a row has more or fewer values than its series has fields")
        for i in s.uints:
            UInt(row[i])
        if type(row[1]) is not int:
            raise TypeError("time_ns must be an integer")


# --- reading ----------------------------------------------------------------------------------


class RecordingReader:
    """Reads a recording: the header at once, the records in time-ordered batches on demand.

    Each call to ``batches()`` reads the file again from the start, so a replay and a report can
    make two passes without holding the records. Plain (not gzipped) line protocol is read too.
    """

    def __init__(self, path: str | Path, *, skip_bad: bool = False, chunk_bytes: int = _CHUNK_BYTES) -> None:
        self.path = Path(path)
        self.skip_bad = skip_bad
        self.chunk_bytes = chunk_bytes
        self.problems: list[RecordingError] = []
        self.lines_read = 0
        try:
            with open(self.path, "rb") as f:
                self._gzipped = f.read(2) == b"\x1f\x8b"
        except OSError as exc:
            msg = f"cannot read recording: {exc.strerror}"
            raise RecordingError(msg, file=str(path)) from exc
        self.header = self._read_header()
        self._header_problems = list(self.problems)

    # the file as text chunks that end on a line boundary, with truncation and corruption named
    def _chunks(self) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            if not self._gzipped:
                tail = b""
                while block := f.read(self.chunk_bytes):
                    block = tail + block
                    cut = block.rfind(b"\n") + 1
                    if cut:
                        yield block[:cut]
                    tail = block[cut:]
                if tail:
                    yield tail
                return
            d = zlib.decompressobj(wbits=31)
            tail = b""
            lines = 0
            failure: str | None = None
            while True:
                block = f.read(self.chunk_bytes)
                if not block:
                    if not d.eof:
                        failure = "the gzip stream is truncated (the file ends inside the compressed data)"
                    break
                try:
                    out = d.decompress(block)
                    while d.eof and d.unused_data:  # concatenated gzip members, as `cat a.gz b.gz` makes
                        rest = d.unused_data
                        d = zlib.decompressobj(wbits=31)
                        out += d.decompress(rest)
                except zlib.error as exc:
                    failure = f"the gzip data is corrupt ({exc})"
                    break
                data = tail + out
                cut = data.rfind(b"\n") + 1
                if cut:
                    chunk = data[:cut]
                    lines += chunk.count(b"\n")
                    yield chunk
                tail = data[cut:]
            if failure is not None:
                # the partial last line is dropped: it cannot be told apart from a complete one
                err = RecordingError(
                    f"{failure}; {lines} complete lines before it" + ("" if self.skip_bad else
                    " (use --skip-bad to replay them)"), file=str(self.path), line=lines + 1)
                if not self.skip_bad:
                    raise err
                self.problems.append(err)
                return
            if tail:
                yield tail

    def _read_header(self) -> Header:
        # the first chunk may itself be damaged; batches() reports that, not the header read
        comments: list[str] = []
        before = list(self.problems)
        self.columnar = False
        for chunk in self._chunks():
            if chunk[:1] == b"{":
                self.problems = before
                return self._columnar_header(chunk.split(b"\n", 1)[0])
            text = chunk.decode("utf-8", errors="replace")
            done = False
            for line in text.split("\n"):
                if line.startswith("#"):
                    comments.append(line)
                elif line.strip() or comments:
                    done = bool(line.strip())
                    if done:
                        break
            if done or len(text) > 1 << 16:
                break
        self.problems = before
        try:
            return Header.parse(comments, file=str(self.path))
        except RecordingError as err:
            if not self.skip_bad:
                raise
            self.problems.append(err)
            return Header(present=False)

    def _columnar_header(self, line: bytes) -> Header:
        try:
            obj = json.loads(line)
            if obj.get("dcim_recording") != COLUMNAR_MAGIC:
                msg = f"unsupported columnar recording {obj.get('dcim_recording')!r}; this build reads {COLUMNAR_MAGIC}"
                raise RecordingError(msg, file=str(self.path), line=1)
            h = obj["header"]
            self.columnar = True
            return Header(source=h["source"], start_ns=h["start_ns"], end_ns=h["end_ns"], topology=h["topology"],
                          extra=dict(h["extra"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            msg = f"missing or broken columnar header ({exc})"
            raise RecordingError(msg, file=str(self.path), line=1) from None

    def _columnar_blocks(self) -> Iterator[Block]:
        templates: dict[int, Series] = {}
        last_ns: int | None = None
        lineno = 0
        for chunk in self._chunks():
            for line in chunk.split(b"\n"):
                if not line:
                    continue
                lineno += 1
                if lineno == 1:
                    continue  # the header, read already
                try:
                    block = _decode_columnar_block(line, templates)
                    times = block.times
                    if times and (last_ns is not None and times[0] < last_ns
                                  or any(map(gt, times, islice(times, 1, None)))):
                        raise ValueError("time goes backwards; a recording must be in time order")
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    reason = f"bad columnar block: {exc}"
                    if not self.skip_bad:
                        msg = f"{reason} (use --skip-bad to replay the good blocks)"
                        raise RecordingError(msg, file=str(self.path), line=lineno) from None
                    self.problems.append(RecordingError(reason, file=str(self.path), line=lineno))
                    continue
                if block.rows:
                    last_ns = block.times[-1]
                    self.lines_read = lineno
                    yield block

    def blocks(self, *, decode_processes: int = 0) -> Iterator[list[Record] | Block]:
        """Like ``batches()``, but a columnar recording comes as ``Block``s, without a ``Record`` per
        row: what a replay feeds the engine (``alerts.replay.replay`` takes both).

        ``decode_processes`` > 0 decodes line protocol in that many worker processes while the
        caller consumes what is decoded (blocks as well); 0 decodes in this process."""
        self.problems = list(self._header_problems)
        if self.columnar:
            yield from self._columnar_blocks()
        elif decode_processes > 0:
            yield from self._parallel_blocks(decode_processes)
        else:
            yield from self.batches()

    def batches(self) -> Iterator[list[Record]]:
        """Records in time order, one list per chunk of the file. Problems raise or are kept."""
        self.problems = list(self._header_problems)  # a second pass reports its own problems again
        if self.columnar:
            for block in self._columnar_blocks():
                yield block.records()
            return
        base = 0
        last_ns: int | None = None
        for chunk in self._chunks():
            good, problems, last_ns = _decode_lp_chunk(chunk, last_ns)
            self._report(problems, base)
            base += chunk.count(b"\n")
            self.lines_read = base
            if good:
                yield good

    def _report(self, problems: list[tuple[int, int | None, str]], base: int) -> None:
        """Raise the first problem of a chunk, or keep them all with ``skip_bad``; lines count from ``base``."""
        for line, col, reason in sorted(problems, key=lambda p: p[0]):
            where = f"column {col}: " if col else ""
            if not self.skip_bad:
                msg = f"{where}{reason} (use --skip-bad to replay the good lines)"
                raise RecordingError(msg, file=str(self.path), line=line + base)
            self.problems.append(RecordingError(f"{where}{reason}", file=str(self.path), line=line + base))

    def _parallel_blocks(self, processes: int) -> Iterator[Block]:
        """Line protocol decoded by ``processes`` worker processes, chunk by chunk, while the caller
        works on the blocks already decoded: the same records, problems and errors, in the same
        order, as ``batches()``. At most two chunks per worker are in flight."""
        import multiprocessing

        base = 0
        last_ns: int | None = None
        chunks = self._chunks()
        # (chunk, pending result) or (None, the error or problems the chunk reader raised or kept)
        pending: deque = deque()

        def submit(pool: Any) -> bool:
            kept = len(self.problems)
            try:
                chunk = next(chunks)
            except StopIteration:
                if len(self.problems) > kept:  # skip_bad: a damaged end, reported after the chunks before it
                    pending.append((None, self.problems[kept:]))
                    del self.problems[kept:]
                return False
            except RecordingError as err:
                pending.append((None, err))
                return False
            pending.append((chunk, pool.apply_async(_decode_lp_job, (chunk,))))
            return True

        # fork: the workers need nothing but the codec, and a script without a __main__ guard
        # (which spawn would run again in every worker) works too
        methods = multiprocessing.get_all_start_methods()
        pool = multiprocessing.get_context("fork" if "fork" in methods else "spawn").Pool(processes)
        try:
            more = True
            for _ in range(2 * processes):
                more = more and submit(pool)
            while pending:
                chunk, job = pending.popleft()
                if chunk is None:
                    if isinstance(job, RecordingError):
                        raise job
                    self.problems.extend(job)
                    continue
                series_list, rows, times, problems, first_ns, chunk_last_ns = job.get()
                if more:
                    more = submit(pool)
                if first_ns is not None and last_ns is not None and first_ns < last_ns:
                    # time goes back across the chunk boundary: decode it here, knowing where time stood
                    good, problems, last_ns = _decode_lp_chunk(chunk, last_ns)
                    block = _records_block(good)
                else:
                    block = Block({idx: Series(meas, tags, names, [], "", (meas, tuple(tags.items()), tuple(names), ""))
                                   for idx, meas, tags, names in series_list}, rows, times)
                    if chunk_last_ns is not None:
                        last_ns = chunk_last_ns
                self._report(problems, base)
                base += chunk.count(b"\n")
                self.lines_read = base
                if block.rows:
                    yield block
            pool.close()
            pool.join()
        finally:
            pool.terminate()

    def records(self) -> list[Record]:
        """Every record at once (small recordings and tests)."""
        return [r for batch in self.batches() for r in batch]


# --- line protocol chunks (here or in worker processes) ---------------------------------------


def _decode_lp_chunk(chunk: bytes, last_ns: int | None) -> tuple[list[Record], list[tuple[int, int | None, str]], int | None]:
    """The good records of a chunk in time order, its problems (line in chunk, column, reason), and
    the time reached; ``last_ns`` is where time stood before the chunk."""
    # the codec caches series keys (escaped ones too) and field layouts across chunks
    result = decode_report(chunk)
    problems = [(e.line or 0, e.column, e.reason) for e in result.errors]
    good: list[Record] = []
    for r in result.records:
        t = r.time_ns
        if t is None or (last_ns is not None and t < last_ns):
            problems.append(_order_problem(chunk, r, last_ns))
            continue
        last_ns = t
        good.append(r)
    return good, problems, last_ns


def _records_block(records: list[Record]) -> Block:
    """Records as a block of rows; a series is a measurement, its tags and its field names."""
    index: dict[tuple, int] = {}
    series: dict[int, Series] = {}
    rows: list[list] = []
    for r in records:
        ident = (r.measurement, tuple(r.tags.items()), tuple(r.fields), "")
        idx = index.get(ident)
        if idx is None:
            idx = index[ident] = len(index)
            series[idx] = Series(r.measurement, r.tags, list(r.fields), [], "", ident)
        rows.append([idx, r.time_ns, *r.fields.values()])
    return Block(series, rows, [r.time_ns for r in records])


def _decode_lp_job(chunk: bytes) -> tuple:
    """A worker's part of ``RecordingReader.blocks(decode_processes=N)``: a chunk decoded as if time
    stood nowhere before it (the reader decodes it again when the chunk goes back in time), as rows
    to send back, which pickle far faster than records."""
    good, problems, last_ns = _decode_lp_chunk(chunk, None)
    block = _records_block(good)
    series_list = [(idx, s.measurement, s.tags, s.names) for idx, s in block.series.items()]
    return series_list, block.rows, block.times, problems, block.times[0] if block.times else None, last_ns


def _order_problem(chunk: bytes, record: Record, last_ns: int | None) -> tuple[int, None, str]:
    """Name the line of a record that has no time or goes back in time (rare: search for it)."""
    stamp = f" {record.time_ns}".encode() if record.time_ns is not None else None
    lineno = 0
    for i, line in enumerate(chunk.split(b"\n"), 1):
        if line.startswith(record.measurement.encode()) and (
            re.search(rb" -?\d+$", line) is None if stamp is None else line.endswith(stamp)
        ):
            lineno = i
            break
    if record.time_ns is None:
        reason = "the point has no timestamp; a recording needs event time"
    else:
        reason = (f"time goes backwards ({format_time(record.time_ns)} after "
                  f"{format_time(last_ns or 0)}); a recording must be in time order")
    return lineno, None, reason


def read_recording(path: str | Path, *, skip_bad: bool = False) -> tuple[Header, list[Record], list[RecordingError]]:
    """Header, records and problems of a small recording in one call."""
    reader = RecordingReader(path, skip_bad=skip_bad)
    records = reader.records()
    return reader.header, records, reader.problems


# --- topology ---------------------------------------------------------------------------------


def resolve_topology(topology: str | None):  # noqa: ANN201
    """The SiteConfig a header's ``topology`` names: a file, ``embedded`` or ``generated:racks=N``."""
    from dcim.config import default_site, load_site

    if not topology or topology == "embedded":
        return default_site()
    if topology.startswith("generated:"):
        from dcim.sites import make_site

        opts = dict(kv.split("=", 1) for kv in topology.split(":", 1)[1].split(",") if "=" in kv)
        return make_site(**{k: int(v) for k, v in opts.items()})
    return load_site(topology)
