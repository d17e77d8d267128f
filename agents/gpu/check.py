"""``scripts/gpu-check``: compare the GPU agent on real NVML, field by field and on /metrics, with nvidia-smi.

Gathering (``main``) and comparing (``compare``) are apart, so the comparison is tested offline on
recorded nvidia-smi output (``--query-gpu`` CSV, ``-q -x`` XML, ``nvlink -gt d``) of several drivers.
Live values are bracketed: nvidia-smi is read before and after the agent's polls, and a live
value passes when it lies between the two readings widened by its tolerance (``Check.abs_tol``,
``Check.rel_tol``); a throttle-reason bit passes when either nvidia-smi reading has it the same.
Answers in brackets (``[N/A]``, ``[Not Supported]``, ``[Insufficient Permissions]``,
``[GPU requires reset]``, ...) are "not available", never a crash: the row says which.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from dcim.agents.gpu.metrics import DCGM
from dcim.errors import DeviceError
from dcim.lineprotocol.decode import decode
from dcim.record import Record

MIB = 1024 * 1024
KIB = 1024


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # nvidia-smi property (CSV) or element path (XML: "xml:temperature/gpu_temp_slow_threshold")
    field: str  # schema field of the agent
    to_schema: Callable[[str], float]  # nvidia-smi text -> schema unit
    abs_tol: float = 0.0
    rel_tol: float = 0.0
    live: bool = False  # changes between reads: bracket nvidia-smi's before and after readings
    aliases: tuple[str, ...] = ()  # older nvidia-smi spellings of the same property


def _num(v: str) -> float:
    return float(v.split()[0])


def _mib(v: str) -> float:
    return _num(v) * MIB


def _pstate(v: str) -> float:
    return float(v.strip().upper().removeprefix("P"))


def _hex(v: str) -> float:
    return float(int(v.strip(), 16))


def _yes(v: str) -> float:
    return 1.0 if v.strip().lower() in ("yes", "1", "true", "active") else 0.0


CSV_CHECKS: tuple[Check, ...] = (
    Check("temperature.gpu", "temp_c", _num, 2, live=True),
    Check("temperature.memory", "mem_temp_c", _num, 2, live=True),
    Check("power.draw", "power_w", _num, 10, 0.05, live=True),
    # the limit the driver enforces (nvidia-smi's power.limit is the management limit, which a
    # lower board or chassis cap can override); nvmlDeviceGetEnforcedPowerLimit answers the same
    Check("enforced.power.limit", "power_limit_w", _num, 0.5),
    Check("power.default_limit", "power_limit_default_w", _num, 0.5),
    Check("clocks.sm", "sm_clock_mhz", _num, 30, 0.05, live=True),
    Check("clocks.mem", "mem_clock_mhz", _num, 30, 0.05, live=True),
    Check("utilization.gpu", "util_pct", _num, 10, live=True),
    Check("utilization.memory", "mem_util_pct", _num, 10, live=True),
    Check("memory.used", "mem_used_bytes", _mib, 64 * MIB, 0.01, live=True),
    Check("memory.free", "mem_free_bytes", _mib, 64 * MIB, 0.01, live=True),
    Check("memory.reserved", "mem_reserved_bytes", _mib, 1 * MIB),
    Check("fan.speed", "fan_pct", _num, 5, live=True),
    Check("pstate", "pstate", _pstate, 0, live=True),
    Check("clocks_event_reasons.active", "clock_event_mask", _hex, live=True,
          aliases=("clocks_throttle_reasons.active",)),
    Check("ecc.errors.corrected.volatile.total", "ecc_sbe_volatile_total", _num, live=True),
    Check("ecc.errors.uncorrected.volatile.total", "ecc_dbe_volatile_total", _num, live=True),
    Check("ecc.errors.corrected.aggregate.total", "ecc_sbe_aggregate_total", _num, live=True),
    Check("ecc.errors.uncorrected.aggregate.total", "ecc_dbe_aggregate_total", _num, live=True),
    Check("retired_pages.single_bit_ecc.count", "retired_pages_sbe", _num, live=True),
    Check("retired_pages.double_bit.count", "retired_pages_dbe", _num, live=True),
    Check("retired_pages.pending", "retired_pages_pending", _yes, live=True),
)

XML_CHECKS: tuple[Check, ...] = (
    Check("xml:temperature/gpu_temp_max_threshold", "temp_shutdown_c", _num, 0.5),
    Check("xml:temperature/gpu_temp_slow_threshold", "temp_slowdown_c", _num, 0.5),
    Check("xml:temperature/gpu_temp_max_gpu_threshold", "temp_max_operating_c", _num, 0.5),
    Check("xml:temperature/gpu_temp_max_mem_threshold", "mem_temp_max_c", _num, 0.5),
    Check("xml:utilization/encoder_util", "enc_util_pct", _num, 10, live=True),
    Check("xml:utilization/decoder_util", "dec_util_pct", _num, 10, live=True),
    Check("xml:remapped_rows/remapped_row_corr", "remapped_rows_correctable", _num),
    Check("xml:remapped_rows/remapped_row_unc", "remapped_rows_uncorrectable", _num),
    Check("xml:remapped_rows/remapped_row_pending", "remapped_rows_pending", _yes),
    Check("xml:remapped_rows/remapped_row_failure", "remapped_rows_failure", _yes),
    Check("xml:pci/replay_counter", "pcie_replay_total", _num),
)

#: NVLink data counters from ``nvidia-smi nvlink -gt d`` (KiB per link), summed per GPU.
NVLINK_CHECKS: tuple[Check, ...] = (
    Check("nvlink:tx", "nvlink_tx_bytes_total", float, 64 * MIB, 0.02, live=True),
    Check("nvlink:rx", "nvlink_rx_bytes_total", float, 64 * MIB, 0.02, live=True),
)

#: The energy counter's slope over the agent's polls against nvidia-smi's power draw.
ENERGY_ABS_TOL_W, ENERGY_REL_TOL = 15.0, 0.10

SMI_COLUMNS: tuple[str, ...] = ("index", "uuid", *(c.name for c in CSV_CHECKS))

#: throttle-reason bits (NVML nvmlClocksEventReason*) named in the report
_REASON_BITS = {0x1: "gpu_idle", 0x2: "clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown", 0x10: "sync_boost",
                0x20: "sw_thermal", 0x40: "hw_thermal", 0x80: "hw_power_brake", 0x100: "display_clocks"}


@dataclass(frozen=True, slots=True)
class Row:
    gpu: str
    check: str  # the nvidia-smi property, or "energy slope", or "metrics:<name>"
    field: str
    smi: float | None
    agent: float | None
    ok: bool
    status: str  # ok | DIFF | n/a
    note: str = ""

    @property
    def diff(self) -> float | None:
        return None if self.smi is None or self.agent is None else self.agent - self.smi


# --- parsing nvidia-smi ----------------------------------------------------------------------

_BRACKET = re.compile(r"^\[(.*)\]$")
#: nvidia-smi's header prints a property's canonical name, not the short one queried
HEADER_NAMES = {"clocks.current.sm": "clocks.sm", "clocks.current.memory": "clocks.mem"}


def not_available(raw: str | None) -> str | None:
    """The reason a nvidia-smi answer holds no value (``N/A``, ``Insufficient Permissions``, ...), else None."""
    if raw is None:
        return "missing"
    text = raw.strip()
    m = _BRACKET.match(text)
    if m:
        return m.group(1)
    if text in ("", "N/A", "Not Supported", "Unknown Error"):
        return text or "empty"
    return None


def parse_smi_csv(text: str) -> dict[str, dict[str, str]]:
    """``nvidia-smi --query-gpu=... --format=csv,nounits`` (with its header) -> {uuid: {property: text}}.

    The header names the columns (``power.draw [W]``: the unit is dropped), so recordings of
    drivers that spell a property differently parse alike.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError("nvidia-smi printed no CSV")
    cols = [re.sub(r"\s*\[.*\]$", "", c.strip()) for c in lines[0].split(",")]
    cols = [HEADER_NAMES.get(c, c) for c in cols]
    if "uuid" not in cols:
        raise ValueError(f"nvidia-smi CSV header has no uuid column: {lines[0]!r}")
    out: dict[str, dict[str, str]] = {}
    for n, line in enumerate(lines[1:], start=2):
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(cols):
            raise ValueError(f"nvidia-smi CSV line {n} has {len(cells)} values, the header {len(cols)}: {line!r}")
        row = dict(zip(cols, cells))
        for c in CSV_CHECKS:  # an older driver's spelling answers for the current name
            for alias in c.aliases:
                if alias in row and c.name not in row:
                    row[c.name] = row[alias]
        out[row["uuid"]] = row
    return out


def parse_smi_xml(text: str) -> dict[str, dict[str, str]]:
    """``nvidia-smi -q -x`` -> {uuid: {"xml:<path>": text}} for the paths XML_CHECKS read."""
    root = ET.fromstring(text)
    out: dict[str, dict[str, str]] = {}
    for gpu in root.findall("gpu"):
        uuid = (gpu.findtext("uuid") or "").strip()
        vals: dict[str, str] = {"index": (gpu.findtext("minor_number") or "").strip()}
        for c in XML_CHECKS:
            path = c.name.removeprefix("xml:")
            el = gpu.find(path)
            if el is None:
                parent = gpu.find(path.rsplit("/", 1)[0])
                # e.g. <remapped_rows>N/A</remapped_rows>: the whole group is not available
                vals[c.name] = (parent.text or "").strip() if parent is not None and len(parent) == 0 else "[missing]"
            else:
                vals[c.name] = (el.text or "").strip()
        out[uuid] = vals
    return out


_NVLINK_GPU = re.compile(r"^GPU \d+: .*\(UUID: (?P<uuid>[^)]+)\)")
_NVLINK_LINE = re.compile(r"Link (?P<link>\d+): Data (?P<dir>Tx|Rx): (?P<value>\d+) KiB")


def parse_nvlink(text: str) -> dict[str, dict[str, float]]:
    """``nvidia-smi nvlink -gt d`` -> {uuid: {"nvlink:tx": bytes, "nvlink:rx": bytes}}, summed over links."""
    out: dict[str, dict[str, float]] = {}
    current: dict[str, float] | None = None
    for line in text.splitlines():
        m = _NVLINK_GPU.match(line.strip())
        if m:
            current = out.setdefault(m.group("uuid"), {"nvlink:tx": 0.0, "nvlink:rx": 0.0})
            continue
        m = _NVLINK_LINE.search(line)
        if m and current is not None:
            current["nvlink:" + m.group("dir").lower()] += float(m.group("value")) * KIB
    return out


def parse_metrics(text: str) -> dict[str, dict[str, float]]:
    """Prometheus text -> {UUID label: {DCGM metric name: value}} for the DCGM_FI_* samples."""
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if not line.startswith("DCGM_FI_") or "{" not in line:
            continue
        name, rest = line.split("{", 1)
        labels, value = rest.rsplit("} ", 1)
        m = re.search(r'UUID="([^"]*)"', labels)
        if m:
            out.setdefault(m.group(1), {})[name] = float(value)
    return out


def agent_polls(records: Iterable[Record]) -> list[dict[str, dict]]:
    """Agent line protocol -> one {uuid: fields (with ``time_s``)} per poll, in time order."""
    polls: dict[int, dict[str, dict]] = {}
    for r in records:
        if r.measurement == "gpu":
            polls.setdefault(r.time_ns, {})[r.tags["uuid"]] = {**r.fields, "time_s": r.time_ns / 1e9,
                                                                 "index": r.tags["gpu"]}
    return [polls[t] for t in sorted(polls)]


# --- comparing ----------------------------------------------------------------------------------


@dataclass
class Inputs:
    """Everything one check compares; any part may be missing."""

    smi_before: dict[str, dict[str, str]]
    agent: list[dict[str, dict]]  # agent polls, oldest first
    smi_after: dict[str, dict[str, str]] | None = None
    xml: dict[str, dict[str, str]] = field(default_factory=dict)
    nvlink: dict[str, dict[str, float]] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] | None = None


def _row(gpu: str, check: Check | str, fname: str, reads: list[str | None], av: Any, conv: Callable[[str], float],
         abs_tol: float, rel_tol: float, mask: bool = False) -> Row:
    name = check if isinstance(check, str) else check.name
    reasons = [not_available(r) for r in reads]
    vals = [conv(r) for r, why in zip(reads, reasons) if why is None and r is not None]
    agent = None if av is None else float(av)
    if not vals:
        why = next((w for w in reasons if w), "missing")
        if agent is None:
            return Row(gpu, name, fname, None, None, True, "n/a", f"not available: nvidia-smi [{why}], agent none")
        if why.lower() in ("n/a", "not supported"):
            return Row(gpu, name, fname, None, agent, False, "DIFF", f"agent sent a value nvidia-smi calls [{why}]")
        # Not in this driver's output, or a permission or reset state that hides nvidia-smi's value
        # (not a wrong one): nothing to compare.
        return Row(gpu, name, fname, None, agent, True, "n/a", f"not available from nvidia-smi: [{why}]")
    smi = vals[0]
    if agent is None:
        return Row(gpu, name, fname, smi, None, False, "DIFF", "agent omitted a value nvidia-smi shows")
    if mask:
        a = int(agent)
        bad = [bit for bit in _REASON_BITS if all(bool(a & bit) != bool(int(v) & bit) for v in vals)]
        if bad:
            names = ",".join(_REASON_BITS[b] for b in bad)
            return Row(gpu, name, fname, smi, agent, False, "DIFF", f"reasons differ from both nvidia-smi reads: {names}")
        return Row(gpu, name, fname, smi, agent, True, "ok")
    lo, hi = min(vals), max(vals)
    tol = max(abs_tol, rel_tol * max(abs(lo), abs(hi)))
    if lo - tol <= agent <= hi + tol:
        return Row(gpu, name, fname, smi, agent, True, "ok")
    return Row(gpu, name, fname, smi, agent, False, "DIFF", f"outside nvidia-smi's [{lo:g}, {hi:g}] ± {tol:g}")


def compare(inp: Inputs) -> list[Row]:
    """Every check for every GPU either side knows of, matched by UUID."""
    rows: list[Row] = []
    last = inp.agent[-1] if inp.agent else {}
    uuids = sorted(set(inp.smi_before) | set(last),
                   key=lambda u: int((inp.smi_before.get(u) or last.get(u) or {}).get("index", 0)))
    for uuid in uuids:
        s1, a = inp.smi_before.get(uuid), last.get(uuid)
        s2 = (inp.smi_after or {}).get(uuid)
        gpu = str((s1 or a or {}).get("index", "?"))
        if s1 is None or a is None:
            rows.append(Row(gpu, "*", "*", None, None, False, "DIFF",
                            "GPU missing from " + ("nvidia-smi" if s1 is None else "the agent")))
            continue
        if a.get("lost"):
            rows.append(Row(gpu, "*", "lost", None, 1.0, False, "DIFF", "the agent reports this GPU lost"))
            continue
        for c in CSV_CHECKS:
            reads = [s1.get(c.name)] + ([s2.get(c.name)] if s2 and c.live else [])
            rows.append(_row(gpu, c, c.field, reads, a.get(c.field), c.to_schema, c.abs_tol, c.rel_tol,
                             mask=c.field == "clock_event_mask"))
        x = inp.xml.get(uuid)
        if x is not None:
            for c in XML_CHECKS:
                rows.append(_row(gpu, c, c.field, [x.get(c.name)], a.get(c.field), c.to_schema, c.abs_tol, c.rel_tol))
        n = inp.nvlink.get(uuid)
        if n is not None:
            for c in NVLINK_CHECKS:
                rows.append(_row(gpu, c, c.field, [str(n[c.name])], a.get(c.field), float, c.abs_tol, c.rel_tol))
        rows.append(_energy_row(gpu, uuid, inp))
        if inp.metrics is not None:
            rows.extend(_metric_rows(gpu, uuid, s1, s2, x or {}, inp.metrics.get(uuid, {})))
    return rows


def _energy_row(gpu: str, uuid: str, inp: Inputs) -> Row:
    polls = [p[uuid] for p in inp.agent if uuid in p and "energy_j" in p[uuid]]
    power_reads = [s.get(uuid, {}).get("power.draw") for s in (inp.smi_before, inp.smi_after or {})]
    if len(polls) < 2 or polls[-1]["time_s"] <= polls[0]["time_s"]:
        return Row(gpu, "energy slope", "energy_j", None, None, True, "n/a",
                   "not available: needs two agent polls with energy_j")
    slope = (polls[-1]["energy_j"] - polls[0]["energy_j"]) / (polls[-1]["time_s"] - polls[0]["time_s"])
    row = _row(gpu, "energy slope", "energy_j", power_reads, slope, _num, ENERGY_ABS_TOL_W, ENERGY_REL_TOL)
    return Row(row.gpu, row.check, row.field, row.smi, row.agent, row.ok, row.status,
               (row.note + "; " if row.note else "") + "W from the energy counter vs nvidia-smi power.draw")


def _metric_rows(gpu: str, uuid: str, s1: Mapping[str, str], s2: Mapping[str, str] | None,
                 x: Mapping[str, str], metrics: Mapping[str, float]) -> list[Row]:
    rows = []
    for c in (*CSV_CHECKS, *XML_CHECKS):
        spec = DCGM.get(c.field)
        if spec is None:
            continue
        name, factor = spec.name, spec.factor
        src = x if c.name.startswith("xml:") else s1
        reads = [src.get(c.name)] + ([s2.get(c.name)] if s2 and c.live and not c.name.startswith("xml:") else [])
        value = metrics.get(name)
        rows.append(_row(gpu, f"metrics:{name}", c.field, reads, None if value is None else value / factor,
                         c.to_schema, c.abs_tol, c.rel_tol, mask=c.field == "clock_event_mask"))
    return rows


# --- output ---------------------------------------------------------------------------------------


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if abs(v) >= 1000 or v == int(v) else f"{v:.2f}"


def format_table(rows: list[Row]) -> str:
    head = ("gpu", "check", "field", "nvidia-smi", "agent", "diff", "status", "note")
    body = [(r.gpu, r.check, r.field, _fmt(r.smi), _fmt(r.agent), _fmt(r.diff), r.status, r.note) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in (head, *body)]
    lines.append(summary_line(rows))
    return "\n".join(lines)


def summary_line(rows: list[Row]) -> str:
    bad = sum(r.status == "DIFF" for r in rows)
    na = sum(r.status == "n/a" for r in rows)
    return f"{len(rows)} checks, {bad} differences, {na} not available"


def report(rows: list[Row], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON report: what was compared with what, every row, and the totals."""
    return {**meta, "summary": {"checks": len(rows), "differences": sum(r.status == "DIFF" for r in rows),
                                "not_available": sum(r.status == "n/a" for r in rows)},
            "rows": [asdict(r) | {"diff": r.diff} for r in rows]}


# --- gathering on a real node -------------------------------------------------------------------


def smi_query(columns: Iterable[str] = SMI_COLUMNS, run: Callable[[list[str]], str] | None = None) -> str:
    """Run ``nvidia-smi --query-gpu``; a property this driver does not know is swapped for its older
    spelling or left out (nvidia-smi refuses the whole query otherwise)."""
    cols = list(columns)
    run = run or _run
    for _ in range(len(cols)):
        try:
            return run(["nvidia-smi", f"--query-gpu={','.join(cols)}", "--format=csv,nounits"])
        except subprocess.CalledProcessError as exc:
            m = re.search(r'Field "([^"]+)" is not a valid field', (exc.stdout or "") + (exc.stderr or ""))
            if not m or m.group(1) not in cols:
                raise
            bad = m.group(1)
            alias = next((a for c in CSV_CHECKS if c.name == bad for a in c.aliases if a not in cols), None)
            cols[cols.index(bad):cols.index(bad) + 1] = [alias] if alias else []
    raise RuntimeError("nvidia-smi refused every query")


def _run(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout


def _poll_real_nvml(polls: int, interval_s: float) -> tuple[list[Record], str]:
    import pynvml
    from prometheus_client import CollectorRegistry

    from dcim.agents.gpu.agent import GpuAgent
    from dcim.agents.gpu.metrics import render

    reg = CollectorRegistry()
    agent = GpuAgent(pynvml, tags={"site": "check", "node": "local"}, registry=reg, xid_events=False)
    agent.start()
    records: list[Record] = []
    try:
        for i in range(polls):
            if i:
                time.sleep(interval_s)
            records.extend(agent.poll())
        return records, render(reg).decode()
    finally:
        agent.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gpu-check", description=__doc__.splitlines()[0])
    ap.add_argument("--smi-csv", help="recorded `nvidia-smi --query-gpu=... --format=csv,nounits` (read before)")
    ap.add_argument("--smi-csv-after", help="the same, read after the agent's polls (brackets live values)")
    ap.add_argument("--smi-xml", help="recorded `nvidia-smi -q -x`")
    ap.add_argument("--nvlink", help="recorded `nvidia-smi nvlink -gt d`")
    ap.add_argument("--agent-lp", help="recorded `dcim agent gpu --once --format lp` output (one or more polls)")
    ap.add_argument("--metrics", help="recorded /metrics text; with --metrics-url, fetched from a running agent")
    ap.add_argument("--metrics-url", help="a running agent's /metrics (default: the check's own poll, rendered)")
    ap.add_argument("--polls", type=int, default=2, help="agent polls on real NVML (two give the energy slope)")
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between those polls")
    ap.add_argument("--json", dest="json_path", help="write the JSON report here ('-' for stdout)")
    ap.add_argument("--print-query", action="store_true", help="print the nvidia-smi command and exit")
    args = ap.parse_args(argv)
    if args.print_query:
        print(f"nvidia-smi --query-gpu={','.join(SMI_COLUMNS)} --format=csv,nounits")
        return 0

    def read(path: str | None) -> str | None:
        if path is None:
            return None
        with open(path, encoding="utf-8") as f:
            return f.read()

    recorded = args.agent_lp is not None
    try:
        smi_before = read(args.smi_csv) if recorded else smi_query()
        if recorded:
            records, own_metrics = list(decode(read(args.agent_lp) or "")), None
        else:
            records, own_metrics = _poll_real_nvml(max(1, args.polls), args.interval)
        smi_after = read(args.smi_csv_after) if recorded else smi_query()
        xml = read(args.smi_xml) if recorded else _optional(["nvidia-smi", "-q", "-x"])
        nvlink = read(args.nvlink) if recorded else _optional(["nvidia-smi", "nvlink", "-gt", "d"])
        metrics_text = read(args.metrics)
        if args.metrics_url:
            metrics_text = urllib.request.urlopen(args.metrics_url, timeout=10).read().decode()
        elif metrics_text is None:
            metrics_text = own_metrics
    except (OSError, subprocess.SubprocessError, ValueError, DeviceError) as exc:
        print(f"gpu-check: error: {exc}", file=sys.stderr)
        return 2
    inp = Inputs(parse_smi_csv(smi_before or ""), agent_polls(records),
                 parse_smi_csv(smi_after) if smi_after else None,
                 parse_smi_xml(xml) if xml else {}, parse_nvlink(nvlink) if nvlink else {},
                 parse_metrics(metrics_text) if metrics_text is not None else None)
    rows = compare(inp)
    print(format_table(rows))
    if args.json_path:
        data = json.dumps(report(rows, {"source": "recorded" if recorded else "live",
                                        "metrics": args.metrics_url or ("recorded" if args.metrics else "own poll")}),
                          indent=2)
        if args.json_path == "-":
            print(data)
        else:
            with open(args.json_path, "w", encoding="utf-8") as f:
                f.write(data + "\n")
    return 0 if all(r.status != "DIFF" for r in rows) else 1


def _optional(cmd: list[str]) -> str | None:
    """Output of an nvidia-smi view that some GPUs lack (no NVLink): None instead of a failure."""
    try:
        return _run(cmd)
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
