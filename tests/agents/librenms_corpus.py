"""Acceptance on real device walks: serve LibreNMS's recorded walks with snmpsim, poll each with
``--profile auto`` and compare every reading with the one LibreNMS took from the same walk.

``python -m tests.agents.librenms_corpus [stem ...]`` prints the per-device table (``--json`` for
the full result, ``--markdown`` for the table in docs/snmp.md, ``--misses`` for what is missing).
The corpus (walks and LibreNMS's readings, LibreNMS's licence) lives beside the clone in
``../shared/librenms-snmp``; nothing of it is copied into the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dcim.agents.snmp.poller import Device, Poller
from dcim.agents.snmp.profile import Source, load_profiles
from dcim.docblock import DocBlock
from dcim import schema

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "librenms-snmp"

#: LibreNMS sensor classes the acceptance counts, and the unit LibreNMS reports them in
CLASSES = ("power", "current", "voltage", "power_consumed", "temperature", "humidity", "frequency", "load",
           "runtime", "charge")

@dataclass(frozen=True)
class Excluded:
    """A LibreNMS reading that is not a value to compare with: why, and what we report from that OID
    instead (None: nothing, the value is omitted), which the acceptance test checks too."""

    reason: str
    ours: float | None


#: (stem, LibreNMS sensor OID) -> why LibreNMS's own reading is excluded
EXCLUDED: dict[tuple[str, str], Excluded] = {
    ("apc_ap7900b", "1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1"): Excluded(
        "the walk holds the phase current twice, sampled at different instants: legacy rPDULoadStatusLoad "
        "2.8 A (LibreNMS) and rPDU2PhaseStatusCurrent 2.7 A (reported: rPDU2 is the device's current table)", None),
}
_UPS = "1.3.6.1.2.1.33.1"
_INROW = "1.3.6.1.4.1.318.1.1.27.1.4.1.2.1.3.1"
for _oid, _why in [
    (f"{_UPS}.3.3.1.3.1", "an input voltage of 2360 V on a 230 V UPS: this Delta card reports upsInputVoltage in "
                          "0.1 V, which LibreNMS reads as whole volts (reported: 236.0 V)"),
    (f"{_UPS}.4.4.1.2.1", "an output voltage of 2300 V on a 230 V UPS: 0.1 V read as whole volts (reported: 230.0 V)"),
    (f"{_UPS}.5.3.1.2.1", "a bypass voltage of 2350 V on a 230 V UPS: 0.1 V read as whole volts (reported: 235.0 V)"),
]:
    EXCLUDED[("deltaups_rfc1628string", _oid)] = Excluded(_why, float(_why.rsplit("reported: ", 1)[1].split()[0]))
for _oid in (f"{_UPS}.3.3.1.2.1", f"{_UPS}.4.2.0", f"{_UPS}.5.1.0"):
    EXCLUDED[("huaweiups_ups2000", _oid)] = Excluded(
        "a mains frequency of 5.0 Hz: LibreNMS divides this card's 0.1 Hz value (500) by 100 (reported: 50.0 Hz)", 50.0)
EXCLUDED[("huaweiups_ups2000", f"{_UPS}.2.3.0")] = Excluded(
    "a runtime of 4294967295 minutes (8,000 years): 2^32-1 is this card's 'unknown', not a reading "
    "(omitted and listed in unsupported_fields)", None)
for _oid in (f"{_UPS}.3.3.1.4.1", f"{_UPS}.3.3.1.4.2", f"{_UPS}.3.3.1.4.3", f"{_UPS}.2.6.0"):
    EXCLUDED[("netmanplus_204", _oid)] = Excluded(
        "a negative current of -0.1 A: the card answers -1 (not available) and LibreNMS divides it by 10 "
        "(omitted and listed in unsupported_fields)", None)
for _oid, _w in ((f"{_UPS}.4.4.1.4.1", -4), (f"{_UPS}.4.4.1.4.3", -26)):
    EXCLUDED[("generex-ups_cs141", _oid)] = Excluded(
        f"a negative output power of {_w} W: upsOutputPower is a NonNegativeInteger in UPS-MIB (RFC 1628), "
        "so the value is outside the MIB's range (omitted and listed in unsupported_fields)", None)
for _row, _kw in ((24, 11.0), (25, 10.8), (7, 38.2), (8, 38.1)):
    EXCLUDED[("apc_inrow-dx", f"{_INROW}.{_row}")] = Excluded(
        f"LibreNMS files this 0.1 kW reading under its watt-class power sensor: {_kw} is kW, not W "
        f"(the row's unit column says kW; reported: {_kw * 1000:g} W)", _kw * 1000)
for _row in (34, 36, 40):
    EXCLUDED[("apc_inrow-dx", f"{_INROW}.{_row}")] = Excluded(
        "the walk has no value for this rack-inlet probe (not fitted: its row holds only a label and a unit); "
        "LibreNMS shows 0 degC", None)

#: LibreNMS reads some quantities from a different (older or parallel) table than the profile that
#: wins detection; the same quantity then has two OIDs. Expected column OID -> the columns our
#: profiles read the same quantity from (matched by class and value, never by value alone).
ALIASES: dict[str, tuple[str, ...]] = {
    # PowerNet-MIB rPDULoadStatusLoad (legacy rPDU, phases then banks) == rPDU2 phase / bank current
    "1.3.6.1.4.1.318.1.1.12.2.3.1.1.2": ("1.3.6.1.4.1.318.1.1.26.6.3.1.5", "1.3.6.1.4.1.318.1.1.26.8.3.1.5"),
}

#: absolute tolerance per LibreNMS unit step: LibreNMS stores the divided value as a float
TOLERANCE = 0.011


def corpus_missing_reason(corpus: Path = CORPUS) -> str | None:
    """None when the corpus is there; otherwise why not (a plain clone has no ../shared)."""
    for sub in ("snmprec", "expected"):
        if not (corpus / sub).is_dir():
            return f"real-device corpus not found: {corpus / sub} (it lives beside the clone in ../shared)"
    return None


def require_corpus(corpus: Path = CORPUS) -> None:
    """In a test: skip with the reason when the corpus is missing (a plain clone), fail under CI=true."""
    import os

    import pytest

    reason = corpus_missing_reason(corpus)
    if reason is None:
        return
    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail(f"CI=true and the real-device corpus is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def stems(corpus: Path = CORPUS) -> list[str]:
    return sorted(p.stem for p in (corpus / "snmprec").glob("*.snmprec"))


def field_class(measurement: str, name: str) -> tuple[str, float] | None:
    """LibreNMS sensor class of one of our fields, and the factor from our SI unit to LibreNMS's."""
    unit = schema.measurement(measurement).fields[name].unit
    if unit in ("W", "VA"):
        return "power", 1.0
    if unit == "A":
        return "current", 1.0
    if unit == "V":
        return "voltage", 1.0
    if unit == "J":
        return "power_consumed", 1 / 3.6e6  # LibreNMS: kWh
    if unit == "degC":
        return "temperature", 1.0
    if unit == "Hz":
        return "frequency", 1.0
    if unit == "s" and ("runtime" in name or "on_battery" in name):
        return "runtime", 1 / 60  # LibreNMS: minutes
    if unit == "%":
        for key, cls in (("humid", "humidity"), ("charge", "charge"), ("load", "load")):
            if key in name:
                return cls, 1.0
        return "percent", 1.0
    return None


@dataclass
class Reading:
    cls: str
    descr: str
    oid: str
    expected: float
    got: float | None = None
    via: str = ""  # "oid", "alias", "" (missing)
    ours: str = ""  # measurement.field{tags} that carries it
    excluded: str = ""

    @property
    def wrong(self) -> bool:
        return self.got is not None and not _close(self.got, self.expected)


@dataclass
class DeviceResult:
    stem: str
    family: str
    sys_object_id: str
    profile: str | None
    error: str | None
    readings: list[Reading] = field(default_factory=list)
    reported: int = 0  # values we report in total (all classes)
    unsupported: set[str] = field(default_factory=set)  # the health record's unsupported_fields

    @property
    def counted(self) -> list[Reading]:
        return [r for r in self.readings if not r.excluded]

    @property
    def matched(self) -> int:
        return sum(1 for r in self.counted if r.got is not None)

    @property
    def wrong(self) -> list[Reading]:
        return [r for r in self.counted if r.wrong]

    @property
    def missing(self) -> list[Reading]:
        return [r for r in self.counted if r.got is None]

    @property
    def coverage_pct(self) -> float:
        n = len(self.counted)
        return 100.0 * (self.matched - len(self.wrong)) / n if n else 100.0

    @property
    def detected(self) -> bool:
        return self.profile is not None and self.error is None


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE + 1e-6 * abs(b)


def _expected(corpus: Path, stem: str) -> dict[str, Any]:
    return json.loads((corpus / "expected" / f"{stem}.json").read_text())


def _family(corpus: Path) -> dict[str, str]:
    try:
        devices = json.loads((corpus / "devices.json").read_text())["devices"]
    except (OSError, KeyError, ValueError):
        return {}
    return {d["stem"]: d.get("family", "") for d in devices}


def compare(stem: str, expected: dict[str, Any], sources: Sequence[Source]) -> list[Reading]:
    """Each of LibreNMS's readings of a counted class against the value we read from the same OID."""
    by_oid: dict[str, Source] = {}
    for s in sources:
        by_oid.setdefault(s.oid, s)
    claimed: set[int] = set()
    out: list[Reading] = []
    pending: list[tuple[Reading, tuple[str, ...]]] = []
    for sensor in expected["sensors"]:
        cls = sensor["class"]
        if cls not in CLASSES or sensor.get("value") is None:
            continue
        oid = str(sensor["oid"]).lstrip(".")
        r = Reading(cls, str(sensor.get("descr", "")), oid, float(sensor["value"]))
        ex = EXCLUDED.get((stem, oid))
        r.excluded = ex.reason if ex else ""
        out.append(r)
        src = by_oid.get(oid)
        if src is not None:
            _take(r, src, "oid")
            claimed.add(id(src))
            continue
        for col, alts in ALIASES.items():
            if oid.startswith(col + "."):
                pending.append((r, alts))
    # aliases after every exact match, so an alias never takes a value another reading owns
    for r, alts in pending:
        for s in sources:
            if id(s) in claimed or not any(s.oid.startswith(a + ".") for a in alts):
                continue
            fc = field_class(s.measurement, s.field)
            if fc is None or fc[0] != r.cls or not _close(float(s.value) * fc[1], r.expected):
                continue
            _take(r, s, "alias")
            claimed.add(id(s))
            break
    return out


def _take(r: Reading, s: Source, via: str) -> None:
    fc = field_class(s.measurement, s.field)
    tags = ",".join(f"{k}={v}" for k, v in sorted(s.tags.items()) if k not in ("site", "rack", "pdu", "ups", "cdu",
                                                                               "loop", "switch"))
    r.ours = f"{s.measurement}.{s.field}" + (f"{{{tags}}}" if tags else "")
    r.via = via
    if fc is None or isinstance(s.value, (bool, str)):
        r.got = float("nan")  # a reading we carry as a state / text: never equal to a number
        return
    r.got = float(s.value) * fc[1]
    if fc[0] != r.cls:
        r.ours += f" (class {fc[0]})"
        r.got = float("nan")


async def _poll(port: int, names: Sequence[str]) -> dict[str, Any]:
    devices = [Device(stem, "127.0.0.1", port, community=stem, profile="auto", timeout_s=5.0, retries=1)
               for stem in names]
    async with Poller(devices, load_profiles(), max_in_flight=8, sources=True, host="corpus") as poller:
        polls = await poller.poll_all()
    return {p.device: p for p in polls}


def run(names: Iterable[str] | None = None, *, corpus: Path = CORPUS, port: int | None = None) -> list[DeviceResult]:
    """Serve the corpus with snmpsim (or use one already serving it on ``port``), poll, compare."""
    reason = corpus_missing_reason(corpus)
    if reason:
        raise FileNotFoundError(reason)
    wanted = list(names) if names else stems(corpus)
    unknown = sorted(set(wanted) - set(stems(corpus)))
    if unknown:
        raise ValueError(f"not in the corpus: {', '.join(unknown)}")
    if port is None:
        from tests.servers import SnmpSim

        with tempfile.TemporaryDirectory(prefix="dcim-corpus-") as tmp:
            sim = SnmpSim(Path(tmp), data_dir=corpus / "snmprec")
            try:
                sim.start()
                polls = asyncio.run(_poll(sim.port, wanted))
            finally:
                sim.close()
    else:
        polls = asyncio.run(_poll(port, wanted))
    family = _family(corpus)
    results = []
    for stem in wanted:
        exp = _expected(corpus, stem)
        p = polls[stem]
        res = DeviceResult(stem, family.get(stem, ""), str(exp.get("sysObjectID") or "").lstrip("."),
                           p.profile if p.ok else None, p.error)
        res.readings = compare(stem, exp, p.sources or [])
        res.reported = sum(len(r.fields) for r in p.records)
        res.unsupported = {u for u in str(p.health.fields.get("unsupported_fields", "")).split(",") if u}
        results.append(res)
    return results


def as_json(results: Sequence[DeviceResult]) -> dict[str, Any]:
    """Every reading of every device, and the totals (``--json``)."""
    devices = [{**asdict(r), "unsupported": sorted(r.unsupported), "coverage_pct": r.coverage_pct} for r in results]
    return {"totals": totals(results), "devices": devices}


def totals(results: Sequence[DeviceResult]) -> dict[str, Any]:
    counted = sum(len(r.counted) for r in results)
    matched_right = sum(r.matched - len(r.wrong) for r in results)
    return {
        "devices": len(results),
        "detected": sum(r.detected for r in results),
        "readings": counted,
        "reported": matched_right,
        "wrong": sum(len(r.wrong) for r in results),
        "excluded": sum(len(r.readings) - len(r.counted) for r in results),
        "coverage_pct": round(100.0 * matched_right / counted, 1) if counted else 100.0,
    }


def table(results: Sequence[DeviceResult], *, markdown: bool = False) -> str:
    head = ["device (walk)", "family", "profile", "LibreNMS readings", "reported right", "wrong", "coverage"]
    rows = []
    for r in results:
        rows.append([r.stem, r.family, r.profile or f"NOT DETECTED: {r.error}", str(len(r.counted)),
                     str(r.matched - len(r.wrong)), str(len(r.wrong)), f"{r.coverage_pct:.0f} %"])
    t = totals(results)
    rows.append(["total", "", f"{t['detected']}/{t['devices']} detected", str(t["readings"]), str(t["reported"]),
                 str(t["wrong"]), f"{t['coverage_pct']} %"])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    widths[2] = min(widths[2], 60)
    return "\n".join("  ".join(c[:60].ljust(w) for c, w in zip(row, widths)) for row in [head, *rows])


DOC = DocBlock("corpus", "python -m tests.agents.librenms_corpus --write-docs docs/snmp.md")


def docs_markdown(results: Sequence[DeviceResult]) -> str:
    """The per-device table and the excluded LibreNMS readings, as docs/snmp.md shows them."""
    out = [table(results, markdown=True), "",
           "LibreNMS readings not compared (each with what the poller reports from that OID instead):", ""]
    for r in results:
        for x in r.readings:
            if x.excluded:
                ours = "nothing" if x.got is None else f"{x.got:g}"
                out.append(f"- `{r.stem}` {x.cls} {x.descr!r} (`{x.oid}`): LibreNMS {x.expected:g}, ours {ours}. "
                           f"{x.excluded[:1].upper()}{x.excluded[1:]}.")
    return "\n".join(out)


def write_docs(doc: Path, results: Sequence[DeviceResult]) -> bool:
    """Replace the generated corpus block of ``doc``; True when it changed."""
    return DOC.rewrite(doc, docs_markdown(results))


def docs_block(doc: Path) -> str:
    return DOC.current(doc)


def misses(results: Sequence[DeviceResult]) -> str:
    out = []
    for r in results:
        for x in r.wrong:
            out.append(f"{r.stem}: WRONG {x.cls} {x.descr!r} {x.oid}: LibreNMS {x.expected}, ours {x.got} ({x.ours})")
        for x in r.missing:
            out.append(f"{r.stem}: missing {x.cls} {x.descr!r} {x.oid} = {x.expected}")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.agents.librenms_corpus", description=__doc__.split("\n")[0])
    ap.add_argument("stems", nargs="*", help="walks to poll (default: all)")
    ap.add_argument("--json", action="store_true", help="print every reading as JSON")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--misses", action="store_true", help="also list every wrong and missing reading")
    ap.add_argument("--port", type=int, default=None, help="use an snmpsim already serving the corpus here")
    ap.add_argument("--write-docs", type=Path, default=None, metavar="DOC",
                    help="rewrite the generated corpus block of DOC (docs/snmp.md) from this run")
    args = ap.parse_args(argv)
    reason = corpus_missing_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    results = run(args.stems or None, port=args.port)
    if args.json:
        print(json.dumps(as_json(results), indent=1))
        return 0
    if args.write_docs is not None:
        if args.stems:
            ap.error("--write-docs needs the whole corpus (no stems)")
        print("updated" if write_docs(args.write_docs, results) else "unchanged")
        return 0
    print(table(results, markdown=args.markdown))
    if args.misses:
        print(misses(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
