"""Simulator speed: a 1,024-GPU hall (32 racks, 64 PDUs, 8 loops) at 1 s resolution, line protocol to a file.

Prints one JSON line: sim_seconds_per_wall_second (goal: at least 100), records/s, bytes/s, and the
same run through the record encoder (hall.records() + dcim.lineprotocol.encode.encode) for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dcim.lineprotocol.encode import encode  # noqa: E402
from dcim.simulators.hall import Hall  # noqa: E402
from dcim.simulators.scenarios import load_scenario  # noqa: E402
from dcim.sites import make_site  # noqa: E402

GOAL_SIM_S_PER_WALL_S = 100.0


CHUNK_S = 30  # the machine may be shared: a median over chunks says more than one total


def run(hall: Hall, seconds: int, path: Path, *, fast: bool = True) -> tuple[float, int, int, list[float], float]:
    """Advance ``seconds`` 1 s steps writing every domain; returns (wall s, lines, bytes, chunk rates, write s)."""
    lines = size = 0
    write_s = 0.0
    chunks = []
    t = last = time.perf_counter()
    with path.open("w", encoding="utf-8") as out:
        for k in range(seconds):
            hall.advance(1.0)
            text = hall.lines() if fast else encode(hall.records())
            w = time.perf_counter()
            out.write(text)
            write_s += time.perf_counter() - w
            lines += text.count("\n")
            size += len(text)
            if (k + 1) % CHUNK_S == 0:
                now = time.perf_counter()
                chunks.append(CHUNK_S / (now - last))
                last = now
    return time.perf_counter() - t, lines, size, chunks, write_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--racks", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=300, help="simulated seconds for the fast path")
    ap.add_argument("--slow-seconds", type=int, default=20, help="simulated seconds through Record + encode")
    ap.add_argument("--scenario", default="pump-degradation")
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary folder)")
    args = ap.parse_args()

    site = make_site(args.racks)
    sc = load_scenario(args.scenario)
    sc = sc.model_copy(update={"faults": [f.model_copy(update={"loop": "loop-01"}) if hasattr(f, "loop") else f
                                          for f in sc.faults]})
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        out = Path(tmp) / "sim.lp"
        run(Hall(site, seed=1, scenario=sc), 3, out)  # warm up: lookup tables
        hall = Hall(site, seed=1, scenario=sc)
        load_before = os.getloadavg()[0]
        wall, lines, size, chunks, write_s = run(hall, args.seconds, out)
        slow_wall, _, _, _, _ = run(Hall(site, seed=1, scenario=sc), args.slow_seconds, out, fast=False)
        physics_hall = Hall(site, seed=1, scenario=sc)
        t = time.perf_counter()
        for _ in range(args.seconds):
            physics_hall.advance(1.0)
        physics_wall = time.perf_counter() - t
    rate = args.seconds / wall
    print(json.dumps({
        "bench": "simulate",
        "gpus": hall.n_gpus,
        "pdus": hall.n_pdus,
        "outlets": hall.n_outlets,
        "loops": hall.n_loops,
        "step_s": 1.0,
        "sim_seconds": args.seconds,
        "sim_seconds_per_wall_second": round(rate, 1),
        "goal_sim_seconds_per_wall_second": GOAL_SIM_S_PER_WALL_S,
        "ratio_vs_goal": round(rate / GOAL_SIM_S_PER_WALL_S, 2),
        "median_30s_chunk_sim_seconds_per_wall_second": round(statistics.median(chunks), 1) if chunks else None,
        "records_per_second": round(lines / wall),
        "bytes_per_second": round(size / wall),
        "lines_per_sim_second": lines // args.seconds,
        "file_write_share": round(write_s / wall, 2),
        "physics_only_sim_seconds_per_wall_second": round(args.seconds / physics_wall, 1),
        "records_plus_core_encoder_sim_seconds_per_wall_second": round(args.slow_seconds / slow_wall, 1),
        "fast_path_speedup_vs_core_encoder": round(rate / (args.slow_seconds / slow_wall), 1),
        "cpu_count": os.cpu_count(),
        "load_average_1m_before": round(load_before, 2),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }))


if __name__ == "__main__":
    main()
