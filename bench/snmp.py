"""Benchmark: our SNMP poller vs Debian's prometheus-snmp-exporter on the same simulated APC rPDU2 fleet.

Serves N 24-outlet APC rPDU2 PDUs from one snmpsim process (one community per PDU), then, in the
same run, polls every PDU with our poller (``profile: auto``: detected once per device, on the
warm-up poll) and scrapes every PDU through snmp_exporter configured to walk the same columns.
Prints one JSON line; asserts nothing.

    .venv/bin/python bench/snmp.py [--pdus 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dcim.agents.snmp.poller import Device, Poller  # noqa: E402
from dcim.agents.snmp.profile import load_profiles  # noqa: E402
from dcim.simulators.snmp.layouts import apc_rpdu2  # noqa: E402
from dcim.simulators.snmp.snmprec import dumps  # noqa: E402
from dcim.simulators.state import OutletState, PduState, PhaseState  # noqa: E402
from tests.servers import SnmpExporter, SnmpSim  # noqa: E402


def make_pdu(i: int, rng: random.Random) -> PduState:
    outlets = []
    for n in range(1, 25):
        a = rng.uniform(0.0, 6.0)
        outlets.append(OutletState(n, f"L{(n - 1) // 8 + 1}", None, a, a * 230 * 0.98, rng.uniform(0, 5e9)))
    phases = []
    for p in range(3):
        cur = sum(o.current_a for o in outlets[p * 8:(p + 1) * 8])
        phases.append(PhaseState(f"L{p + 1}", 230.0, 63.0, cur, cur * 230 * 0.98, cur * 230, rng.uniform(0, 5e10)))
    power = sum(ph.power_w for ph in phases)
    return PduState(f"p{i:02d}", f"R{i:02d}", "A", "apc", 0.98, outlets, phases, power, power / 0.98, power * 1.1,
                    rng.uniform(0, 1e11), 24.0, 40.0)


def exporter_config(n: int, columns: list[str], walk: str) -> dict:
    """One module per PDU (snmpsim picks the PDU by community). ``walk``: "tables" walks the six
    rPDU2 tables whole (what the generator emits for table names), "columns" only our 25 columns."""
    metrics = [{"name": "c_" + c.replace(".", "_"), "oid": c, "type": "gauge",
                "indexes": [{"labelname": "idx", "type": "gauge"}]} for c in columns]
    walks = list(dict.fromkeys(c.rsplit(".", 2)[0] for c in columns)) if walk == "tables" else columns
    return {f"p{i:02d}": {"walk": walks, "metrics": metrics, "version": 2, "max_repetitions": 25,
                          "retries": 3, "timeout": "5s", "auth": {"community": f"p{i:02d}"}} for i in range(n)}


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(url: str) -> int:
    """One exporter scrape; the SNMP PDUs (varbinds) it reports having received."""
    with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - loopback only
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith("snmp_scrape_pdus_returned"):
            return int(float(line.split()[-1]))
    raise RuntimeError(f"scrape failed: {text[:300]}")


async def poll_rounds(devices: list[Device], rounds: int, backend: str = "fast",
                      detection: dict | None = None) -> tuple[float, float, int, int]:
    """(CPU s, best wall s of one full poll, in-column varbinds and all varbinds received per poll).

    Devices use ``profile: auto``: the warm-up poll detects each device's profile once (sysObjectID
    and sysDescr, then the candidates' probes); the measured polls only walk. ``detection`` receives
    what that cost.
    """
    profiles = load_profiles()
    for d in devices:
        d.backend = backend
    async with Poller(devices, profiles, max_in_flight=64) as poller:
        t0 = time.perf_counter()
        polls = await poller.poll_all()  # warm-up: detection, sockets, profile compile, snmpsim caches
        warm_wall = time.perf_counter() - t0
        bad = [p.error for p in polls if not p.ok]
        if bad:
            raise RuntimeError(f"warm-up poll failed: {bad[:3]}")
        chosen = sorted({p.profile for p in polls})
        polls = await poller.poll_all()  # the row hints of the warm-up poll now plan the streams
        steady_requests = sum(p.requests for p in polls)
        if detection is not None:
            detection.update({"profiles_chosen": chosen,
                              "done_once_per_device": sorted(poller.detected) == sorted(d.name for d in devices),
                              "walk_requests_per_device": round(steady_requests / len(devices), 2),
                              "detection_requests_per_device": round(
                                  sum(x.requests for x in poller.detections.values()) / len(devices), 2),
                              "candidates_probed_per_device": round(
                                  sum(len(x.tried) for x in poller.detections.values()) / len(devices), 2),
                              "first_poll_wall_s": round(warm_wall, 3)})
        cpu0 = time.process_time()
        walls = []
        varbinds = 0
        received = 0
        for _ in range(rounds):
            t0 = time.perf_counter()
            polls = await poller.poll_all()
            walls.append(time.perf_counter() - t0)
            varbinds += sum(p.rows for p in polls)
            received += sum(p.varbinds for p in polls)
        cpu = time.process_time() - cpu0
    return cpu, min(walls), varbinds // rounds, received // rounds


def exporter_rounds(exp: SnmpExporter, sim_port: int, n: int, rounds: int) -> tuple[float, float, int]:
    urls = [f"{exp.url}/snmp?target=127.0.0.1:{sim_port}&module=p{i:02d}" for i in range(n)]
    with ThreadPoolExecutor(max_workers=n) as pool:
        list(pool.map(scrape, urls))  # warm-up
        cpu0 = proc_cpu_s(exp.pid)
        walls = []
        varbinds = 0
        for _ in range(rounds):
            t0 = time.perf_counter()
            varbinds += sum(pool.map(scrape, urls))
            walls.append(time.perf_counter() - t0)
        cpu = proc_cpu_s(exp.pid) - cpu0
    return cpu, min(walls), varbinds // rounds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pdus", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pysnmp-reference", action="store_true", help="also measure the pysnmp v2c path")
    args = ap.parse_args()
    rng = random.Random(7)
    columns = load_profiles()["apc_rpdu2"].columns()
    records = {f"p{i:02d}": dumps(apc_rpdu2(make_pdu(i, rng))) for i in range(args.pdus)}
    with tempfile.TemporaryDirectory(prefix="bench-snmp-") as tmp:
        sim = SnmpSim(Path(tmp) / "snmpsim", records=records)
        exp = SnmpExporter(Path(tmp) / "exporter", config=exporter_config(args.pdus, columns, "tables"))
        exp_cols = SnmpExporter(Path(tmp) / "exporter-columns", config=exporter_config(args.pdus, columns, "columns"))
        try:
            sim.start()
            exp.start()
            exp_cols.start()
            devices = [Device(f"p{i:02d}", port=sim.port, community=f"p{i:02d}", profile="auto",
                              timeout_s=10.0, retries=1) for i in range(args.pdus)]
            detection: dict = {}
            ours_cpu, ours_wall, ours_vb, ours_received = asyncio.run(poll_rounds(devices, args.rounds,
                                                                                  detection=detection))
            if detection["profiles_chosen"] != ["apc_rpdu2"]:
                raise RuntimeError(f"detection chose {detection['profiles_chosen']} for simulated rPDU2 units")
            exp_cpu, exp_wall, exp_vb = exporter_rounds(exp, sim.port, args.pdus, args.rounds)
            col_cpu, col_wall, col_vb = exporter_rounds(exp_cols, sim.port, args.pdus, args.rounds)
            ref = None
            if args.pysnmp_reference:
                ref_cpu, ref_wall, ref_vb, _ = asyncio.run(poll_rounds(devices, 1, "pysnmp"))
                ref = {"cpu_us_per_varbind": round(ref_cpu / ref_vb * 1e6, 1), "poll_wall_s": round(ref_wall, 3)}
        finally:
            exp.close()
            exp_cols.close()
            sim.close()
    ours_us = ours_cpu / (ours_vb * args.rounds) * 1e6
    exp_us = exp_cpu / (exp_vb * args.rounds) * 1e6 if exp_cpu > 0 else float("nan")
    cpu_per_pdu_poll_s = ours_cpu / (args.rounds * args.pdus)
    out = {
        "bench": "snmp",
        "pdus": args.pdus,
        "outlets_per_pdu": 24,
        "rounds": args.rounds,
        "varbinds_per_poll": {"ours": ours_vb, "snmp_exporter": exp_vb},
        "varbinds_received_per_poll_ours": ours_received,
        "cpu_s_per_1000_varbinds": {"ours": round(ours_us / 1000, 5), "snmp_exporter": round(exp_us / 1000, 5)},
        "cpu_us_per_varbind": {"ours": round(ours_us, 2), "snmp_exporter": round(exp_us, 2)},
        "poll_wall_s": {"ours": round(ours_wall, 3), "snmp_exporter": round(exp_wall, 3)},
        "cpu_per_varbind_ratio_vs_snmp_exporter": round(ours_us / exp_us, 3),
        "poll_wall_ratio_vs_snmp_exporter": round(ours_wall / exp_wall, 3),
        "pdus_per_core_at_30s": int(30.0 / cpu_per_pdu_poll_s),
        "snmp_exporter_walking_only_our_columns": {
            "varbinds_per_poll": col_vb, "cpu_us_per_varbind": round(col_cpu / (col_vb * args.rounds) * 1e6, 2),
            "poll_wall_s": round(col_wall, 3)},
        "detection": detection,
        "server": "snmpsim 1.2 (one process, shared by both pollers)",
        "machine_load_1m": os.getloadavg()[0],
    }
    if ref is not None:
        out["pysnmp_reference"] = ref
    print(json.dumps(out))


if __name__ == "__main__":
    main()
