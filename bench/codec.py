"""Line-protocol codec speed against influxdb-client's Point.to_line_protocol(), measured in the same run.

Prints one JSON line. Goals: encode_ratio_vs_influxdb_client >= 10, decode_ratio_vs_influxdb_client_encode >= 3.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from influxdb_client import Point, WritePrecision  # noqa: E402

from dcim.lineprotocol.encode import encode  # noqa: E402

from dcim.lineprotocol.decode import decode  # noqa: E402
from dcim.record import Record  # noqa: E402

FIELDS = ("temp_c", "mem_temp_c", "power_w", "energy_j", "sm_clock_mhz", "mem_clock_mhz", "util_pct", "mem_util_pct")


def make_points(n: int, seed: int = 1) -> list[Record]:
    """n GPU points: 5 tags, 8 float fields, 1 s apart per GPU (a 1,024-GPU hall)."""
    rng = random.Random(seed)
    t0 = 1_767_225_600_000_000_000
    out = []
    for i in range(n):
        gpu = i % 1024
        rack = gpu // 32
        tags = {"site": "dc1", "room": "hall1", "rack": f"R{rack:02d}", "node": f"R{rack:02d}-n{gpu // 8 % 4 + 1:02d}",
                "gpu": str(gpu % 8)}
        fields = {name: round(rng.uniform(20, 700), 3) for name in FIELDS}
        out.append(Record("gpu", tags, fields, t0 + (i // 1024) * 1_000_000_000))
    return out


def best_of(repeats: int, fn) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    records = make_points(args.points)
    points = [
        Point("gpu").time(r.time_ns, WritePrecision.NS) for r in records
    ]
    for p, r in zip(points, records):
        for k, v in r.tags.items():
            p.tag(k, v)
        for k, v in r.fields.items():
            p.field(k, v)

    text = encode(records)
    ours_s = best_of(args.repeats, lambda: encode(records))
    theirs_s = best_of(args.repeats, lambda: "\n".join(p.to_line_protocol() for p in points))
    decode_s = best_of(args.repeats, lambda: decode(text))

    # the floor of any pure-Python codec: formatting (repr) and parsing (float) the field values alone
    values = [v for r in records for v in r.fields.values()]
    texts = [repr(v) for v in values]
    repr_floor_s = best_of(args.repeats, lambda: [v.__repr__() for v in values])
    parse_floor_s = best_of(args.repeats, lambda: list(map(float, texts)))

    # correctness in the same run: both encoders describe the same points
    theirs_sample = [p.to_line_protocol() for p in points[:1000]]
    assert decode("\n".join(theirs_sample)) == decode(text)[:1000]

    n = args.points
    print(json.dumps({
        "bench": "codec",
        "points": n,
        "tags_per_point": 5,
        "fields_per_point": 8,
        "encode_points_per_s": round(n / ours_s),
        "decode_points_per_s": round(n / decode_s),
        "influxdb_client_encode_points_per_s": round(n / theirs_s),
        "encode_ratio_vs_influxdb_client": round(theirs_s / ours_s, 2),
        "decode_ratio_vs_influxdb_client_encode": round(theirs_s / decode_s, 2),
        "float_repr_floor_points_per_s": round(n / repr_floor_s),
        "float_parse_floor_points_per_s": round(n / parse_floor_s),
        "encode_ratio_ceiling_float_repr": round(theirs_s / repr_floor_s, 2),
        "decode_ratio_ceiling_float_parse": round(theirs_s / parse_floor_s, 2),
        "bytes": len(text),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
