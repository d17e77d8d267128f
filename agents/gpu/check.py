"""``scripts/gpu-check``: compare one agent poll on real NVML with ``nvidia-smi --query-gpu`` and print the differences.

The comparison is pure (``parse_smi_csv``, ``agent_values``, ``compare``, ``format_table``) so it is
tested with recorded nvidia-smi CSV and recorded agent line protocol; ``main`` only gathers both.
Readings are taken a moment apart, so live values (power, clocks, utilization) get a tolerance.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dcim.lineprotocol import decode
from dcim.record import Record

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Check:
    smi: str  # nvidia-smi --query-gpu property
    field: str  # schema field
    to_schema: Callable[[str], float]  # nvidia-smi value (nounits) -> schema unit
    abs_tol: float
    rel_tol: float = 0.0


def _pstate(v: str) -> float:
    return float(v.strip().upper().removeprefix("P"))


def _hex(v: str) -> float:
    return float(int(v.strip(), 16))


CHECKS: tuple[Check, ...] = (
    Check("temperature.gpu", "temp_c", float, 2),
    Check("temperature.memory", "mem_temp_c", float, 2),
    Check("power.draw", "power_w", float, 10, 0.05),
    Check("power.limit", "power_limit_w", float, 0.5),
    Check("power.default_limit", "power_limit_default_w", float, 0.5),
    Check("clocks.sm", "sm_clock_mhz", float, 30, 0.05),
    Check("clocks.mem", "mem_clock_mhz", float, 30, 0.05),
    Check("utilization.gpu", "util_pct", float, 10),
    Check("utilization.memory", "mem_util_pct", float, 10),
    Check("memory.used", "mem_used_bytes", lambda v: float(v) * MIB, 64 * MIB, 0.01),
    Check("memory.free", "mem_free_bytes", lambda v: float(v) * MIB, 64 * MIB, 0.01),
    Check("memory.reserved", "mem_reserved_bytes", lambda v: float(v) * MIB, 1 * MIB),
    Check("fan.speed", "fan_pct", float, 5),
    Check("pstate", "pstate", _pstate, 0),
    Check("clocks_event_reasons.active", "clock_event_mask", _hex, 0),
)

SMI_COLUMNS: tuple[str, ...] = ("index", "uuid", *(c.smi for c in CHECKS))
_MISSING = {"[N/A]", "N/A", "[Not Supported]", "Not Supported", "[Unknown Error]", ""}


@dataclass(frozen=True, slots=True)
class Row:
    gpu: str
    field: str
    smi: float | None
    agent: float | None
    ok: bool
    note: str

    @property
    def diff(self) -> float | None:
        return None if self.smi is None or self.agent is None else self.agent - self.smi


def smi_command(columns: Iterable[str] = SMI_COLUMNS) -> list[str]:
    return ["nvidia-smi", f"--query-gpu={','.join(columns)}", "--format=csv,noheader,nounits"]


def parse_smi_csv(text: str, columns: Iterable[str] = SMI_COLUMNS) -> dict[str, dict[str, str | None]]:
    """nvidia-smi CSV (noheader, nounits) -> {gpu index: {property: raw text or None when N/A}}."""
    cols = list(columns)
    out: dict[str, dict[str, str | None]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(cols):
            msg = f"nvidia-smi line has {len(cells)} values, expected {len(cols)}: {line!r}"
            raise ValueError(msg)
        row = {c: (None if v in _MISSING else v) for c, v in zip(cols, cells)}
        out[str(row["index"])] = row
    return out


def agent_values(records: Iterable[Record]) -> dict[str, dict]:
    """Agent line protocol records -> {gpu index: fields of its gpu record}."""
    return {r.tags["gpu"]: dict(r.fields) for r in records if r.measurement == "gpu"}


def compare(smi: dict[str, dict[str, str | None]], agent: dict[str, dict]) -> list[Row]:
    rows: list[Row] = []
    for gpu in sorted(set(smi) | set(agent), key=lambda g: int(g)):
        s, a = smi.get(gpu), agent.get(gpu)
        if s is None or a is None:
            rows.append(Row(gpu, "*", None, None, False, "GPU missing from " + ("nvidia-smi" if s is None else "agent")))
            continue
        for c in CHECKS:
            raw = s.get(c.smi)
            sv = c.to_schema(raw) if raw is not None else None
            av = a.get(c.field)
            av = float(av) if av is not None else None
            if sv is None and av is None:
                rows.append(Row(gpu, c.field, None, None, True, "not supported by either"))
            elif av is None:
                rows.append(Row(gpu, c.field, sv, None, False, "agent omitted a value nvidia-smi shows"))
            elif sv is None:
                rows.append(Row(gpu, c.field, None, av, False, "agent sent a value nvidia-smi calls N/A"))
            else:
                tol = max(c.abs_tol, c.rel_tol * abs(sv))
                ok = abs(av - sv) <= tol
                rows.append(Row(gpu, c.field, sv, av, ok, "" if ok else f"differs by more than {tol:g}"))
    return rows


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if abs(v) >= 1000 or v == int(v) else f"{v:.2f}"


def format_table(rows: list[Row]) -> str:
    head = ("gpu", "field", "nvidia-smi", "agent", "diff", "ok", "note")
    body = [(r.gpu, r.field, _fmt(r.smi), _fmt(r.agent), _fmt(r.diff), "ok" if r.ok else "DIFF", r.note) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in (head, *body)]
    bad = sum(not r.ok for r in rows)
    lines.append(f"{len(rows)} checks, {bad} differences")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gpu-check", description=__doc__.splitlines()[0])
    ap.add_argument("--smi-csv", help="recorded `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` output")
    ap.add_argument("--agent-lp", help="recorded `dcim agent gpu --once --format lp` output")
    ap.add_argument("--print-query", action="store_true", help="print the nvidia-smi command and exit")
    args = ap.parse_args(argv)
    if args.print_query:
        print(" ".join(smi_command()))
        return 0
    if args.agent_lp:
        with open(args.agent_lp, encoding="utf-8") as f:
            agent = agent_values(decode(f.read()))
    else:
        agent = agent_values(_poll_real_nvml())
    if args.smi_csv:
        with open(args.smi_csv, encoding="utf-8") as f:
            smi_text = f.read()
    else:
        smi_text = subprocess.run(smi_command(), check=True, capture_output=True, text=True, timeout=60).stdout
    rows = compare(parse_smi_csv(smi_text), agent)
    print(format_table(rows))
    return 0 if all(r.ok for r in rows) else 1


def _poll_real_nvml() -> list[Record]:
    import pynvml
    from prometheus_client import CollectorRegistry

    from agents.gpu.agent import GpuAgent

    agent = GpuAgent(pynvml, tags={"site": "check", "node": "local"}, registry=CollectorRegistry(), xid_events=False)
    agent.start()
    try:
        return agent.poll()
    finally:
        agent.close()


if __name__ == "__main__":
    sys.exit(main())
