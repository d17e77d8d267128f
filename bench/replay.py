"""Replay benchmark: a recording of the 1,024-GPU hall (GPUs, PDUs, loops at 1 s) through the default rule pack.

In the same run it reads the same file without the engine (the floor: gunzip + decode), and prints
one JSON line. The headline ``field_values_per_s`` (goal: at least 1,000,000) and
``ratio_vs_decode_only`` (goal: at least 0.5) are for the recording in the default format, the one
``dcim record`` and the demo write (``default_format``: columnar); ``goal_met`` says whether the
headline reached the goal in this run. The same figures are also under ``columnar_*``, and under
``lp_*`` for the same data as gzip line protocol (the interchange format, ``--format lp``).
``engine_only_*``: the engine alone on records already decoded in memory (the first
``--engine-only-records``, as records and as columnar blocks), which is what the rules cost without
the decoder. All of these run in one process (``processes``: 1). ``parallel_*``: the
line-protocol replay again with ``--decode-processes`` workers decoding beside the engine, with its
wall time and the CPU time of all the processes. Asserts nothing.

    .venv/bin/python bench/replay.py                 # 2 simulated minutes (the default)
    .venv/bin/python bench/replay.py --minutes 60    # the full hour (slow to generate the first time)

The recording is generated once (a pump failure on loop-01, so the rules have work to do) and
cached under the temp dir, keyed by racks, minutes and seed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcim.alerts.engine import Engine  # noqa: E402
from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rules  # noqa: E402
from dcim.alerts.recording import DEFAULT_FORMAT, Block, Header, RecordingReader, write_columnar  # noqa: E402
from dcim.alerts.replay import replay  # noqa: E402


def generate(path: Path, *, racks: int, minutes: float, seed: int) -> None:
    """Write the hall's own line protocol straight into a recording (time-ordered by construction)."""
    from dcim.simulators.hall import Hall
    from dcim.simulators.scenarios import SCENARIO_DIR, parse_scenario
    from dcim.sites import make_site

    site = make_site(racks)
    text = (SCENARIO_DIR / "pump-degradation.yaml").read_text().replace("loop-a", site.loops[0].name)
    hall = Hall(site, seed=seed, scenario=parse_scenario(text))
    steps = int(minutes * 60)
    header = Header(source=f"bench pump-degradation on {site.loops[0].name} seed={seed}",
                    topology=f"generated:racks={racks}")
    header.start_ns = hall.time_ns + 1_000_000_000
    header.end_ns = hall.time_ns + steps * 1_000_000_000
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
        gz.write(("\n".join(header.lines()) + "\n").encode())
        for _ in range(steps):
            hall.advance(1.0)
            gz.write(hall.lines().encode())
    tmp.rename(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=2.0, help="simulated minutes (default 2; the goal is 60)")
    ap.add_argument("--racks", type=int, default=32, help="racks of 32 GPUs (default 32 = 1,024 GPUs)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--rules", default=str(DEFAULT_RULES_DIR), help="rule folder (default: the shipped pack)")
    ap.add_argument("--engine-only-records", type=int, default=120_000,
                    help="records decoded into memory first for the engine-only figure (default 120000)")
    ap.add_argument("--decode-processes", type=int, default=2,
                    help="also replay the line protocol with this many decode worker processes beside the "
                         "engine (parallel_*; default 2, 0 to skip)")
    ap.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "dcim-bench-replay"))
    args = ap.parse_args()

    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"hall-r{args.racks}-m{args.minutes:g}-s{args.seed}.lp.gz"
    gen_s = 0.0
    if not path.exists():
        t0 = time.perf_counter()
        generate(path, racks=args.racks, minutes=args.minutes, seed=args.seed)
        gen_s = time.perf_counter() - t0

    col = path.with_name(path.name.replace(".lp.gz", ".col.gz"))
    if not col.exists():
        reader = RecordingReader(path)
        part = col.with_suffix(".part")
        write_columnar(part, reader.batches(), reader.header)
        part.rename(col)

    from dcim.alerts.recording import resolve_topology

    site = resolve_topology(RecordingReader(path).header.topology)
    rules = load_rules([args.rules])
    out: dict[str, object] = {"bench": "replay", "gpus": sum(n.gpus for r in site.racks() for n in r.nodes),
                              "minutes": args.minutes, "rules": len(rules), "generate_s": round(gen_s, 2)}
    out["cpu_count"] = os.cpu_count()
    out["load_average_1m"] = round(os.getloadavg()[0], 2)  # what else ran on the machine (wall figures)
    files = {"columnar": col, "lp": path}
    out["default_format"] = DEFAULT_FORMAT
    for fmt in (DEFAULT_FORMAT, *(f for f in files if f != DEFAULT_FORMAT)):
        figures = measure(files[fmt], rules, site)
        out.update({f"{fmt}_{k}": v for k, v in figures.items()})
        if fmt == DEFAULT_FORMAT:  # the headline: what a replay of a recording written by default does
            out.update(figures)
    out.update(engine_only(col, rules, site, args.engine_only_records))
    if args.decode_processes:
        out.update(parallel(path, rules, site, args.decode_processes))
    out["processes"] = 1  # the figures above: decode and engine in this one process, one core at a time
    out["goal_field_values_per_s"] = 1_000_000
    out["goal_ratio_vs_decode_only"] = 0.5
    out["goal_met"] = out["field_values_per_s"] >= out["goal_field_values_per_s"]  # type: ignore[operator]
    print(json.dumps(out))


def measure(path: Path, rules: list, site: object) -> dict[str, object]:
    """Decode alone, then replay through a fresh engine; wall and CPU figures, one process on one core.

    Both read the file the way ``dcim replay`` does (``RecordingReader.blocks()``): records for line
    protocol, rows as stored for columnar (``Engine.process_block``)."""
    t0, c0 = time.perf_counter(), time.process_time()
    records = field_values = 0
    for batch in RecordingReader(path).blocks():
        records += len(batch)
        field_values += batch.field_values if isinstance(batch, Block) else sum(len(r.fields) for r in batch)
    decode_s, decode_cpu_s = time.perf_counter() - t0, time.process_time() - c0

    reader = RecordingReader(path)
    engine = Engine(rules, site=site, evaluation_interval_s=site.alerts.evaluation_interval_s)  # type: ignore[attr-defined]
    t0, c0 = time.perf_counter(), time.process_time()
    result = replay(reader.blocks(), engine, end_ns=reader.header.end_ns)
    replay_s, replay_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    return {
        "records": records,
        "field_values": field_values,
        "transitions": len(result.transitions),
        "file_bytes": path.stat().st_size,
        "decode_only_s": round(decode_s, 3),
        "replay_s": round(replay_s, 3),
        "replay_cpu_s": round(replay_cpu_s, 3),
        "decode_field_values_per_s": round(field_values / decode_s),
        "field_values_per_s": round(result.stats.field_values / replay_s),
        "ratio_vs_decode_only": round(decode_s / replay_s, 3),
        # the same two figures in CPU time, steadier than wall time on a shared machine
        "cpu_field_values_per_s": round(result.stats.field_values / replay_cpu_s),
        "cpu_ratio_vs_decode_only": round(decode_cpu_s / replay_cpu_s, 3),
    }


def engine_only(path: Path, rules: list, site: object, limit: int) -> dict[str, object]:
    """The engine alone: the first ``limit`` rows decoded into memory first, then fed in their
    batches, as records (``Engine.process``) and as the columnar blocks (``Engine.process_block``)."""
    blocks, n = [], 0
    for block in RecordingReader(path).blocks():
        blocks.append(block)
        n += len(block)
        if n >= limit:
            break
    batches = [b.records() for b in blocks]
    fv = sum(b.field_values for b in blocks)
    out: dict[str, object] = {"engine_only_records": n}
    for prefix, feed in (("engine_only_", batches), ("engine_only_blocks_", blocks)):
        engine = Engine(rules, site=site, evaluation_interval_s=site.alerts.evaluation_interval_s)  # type: ignore[attr-defined]
        process = engine.process if prefix == "engine_only_" else engine.process_block
        t0, c0 = time.perf_counter(), time.process_time()
        for b in feed:
            process(b)  # type: ignore[arg-type]
        wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        out.update({f"{prefix}field_values_per_s": round(fv / wall_s), f"{prefix}cpu_field_values_per_s": round(fv / cpu_s)})
    return out


def parallel(path: Path, rules: list, site: object, processes: int) -> dict[str, object]:
    """The line-protocol replay with ``processes`` worker processes decoding while this one runs the
    engine: wall time, and CPU time of every process together (this one and the workers)."""
    reader = RecordingReader(path)
    engine = Engine(rules, site=site, evaluation_interval_s=site.alerts.evaluation_interval_s)  # type: ignore[attr-defined]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, c0 = time.perf_counter(), time.process_time()
    result = replay(reader.blocks(decode_processes=processes), engine, end_ns=reader.header.end_ns)
    wall_s, main_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers have exited and been waited for
    workers_cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    fv = result.stats.field_values
    return {
        "parallel_decode_processes": processes,
        "parallel_processes": processes + 1,
        "parallel_transitions": len(result.transitions),
        "parallel_replay_s": round(wall_s, 3),
        "parallel_main_cpu_s": round(main_cpu_s, 3),
        "parallel_workers_cpu_s": round(workers_cpu_s, 3),
        "parallel_field_values_per_s": round(fv / wall_s),
        "parallel_cpu_field_values_per_s": round(fv / (main_cpu_s + workers_cpu_s)),
    }


if __name__ == "__main__":
    main()
