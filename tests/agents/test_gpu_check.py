"""scripts/gpu-check offline: recorded nvidia-smi output of two drivers (gpu_check_data/README.md says
where their shape comes from) against agent polls and /metrics of the simulated backend set to the same GPUs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from dcim.agents.gpu.agent import GpuAgent
from dcim.agents.gpu.check import (
    SMI_COLUMNS,
    Inputs,
    agent_polls,
    compare,
    format_table,
    main,
    not_available,
    parse_metrics,
    parse_nvlink,
    parse_smi_csv,
    parse_smi_xml,
    smi_query,
)
from dcim.agents.gpu.metrics import render
from dcim.lineprotocol.encode import encode
from dcim.lineprotocol.decode import decode
from dcim.simulators.nvml import SimNvml, synthetic_gpus

DATA = Path(__file__).parent / "gpu_check_data"
MIB = 1024 * 1024
H100 = ("GPU-3f0f2d4e-5b1a-7c8e-9d10-111213141516", "GPU-7a8b9c0d-1e2f-3a4b-5c6d-7e8f90a1b2c3")
A100 = ("GPU-513536b6-7d19-9063-b049-1e69664bb298", "GPU-2f2c4a1e-0b3d-4e5f-8a9b-0c1d2e3f4a5b")


def h100_gpus(**change):
    gpus = synthetic_gpus("n1", 2)
    for g, uuid in zip(gpus, H100):
        g.uuid = uuid
        g.temp_slowdown_c, g.temp_shutdown_c, g.temp_max_operating_c, g.mem_temp_max_c = 89.0, 92.0, 87.0, 95.0
        g.memory_total_bytes, g.mem_reserved_bytes = 81559 * MIB, 617 * MIB
        g.unsupported |= {"retired_pages_sbe", "retired_pages_dbe", "retired_pages_pending"}  # H100: row remapping
        g.enc_util_pct = g.dec_util_pct = 0.0
    a, b = gpus
    a.temp_c, a.mem_temp_c, a.power_w, a.sm_clock_mhz, a.mem_clock_mhz = 42, 48, 515.0, 1975, 2619
    a.util_pct, a.mem_util_pct, a.mem_used_bytes, a.clock_event_mask = 100, 63, 71234 * MIB, 0x4
    a.nvlink_tx_bytes_total, a.nvlink_rx_bytes_total = 1024**4, 2 * 1024**4
    b.temp_c, b.mem_temp_c, b.power_w, b.sm_clock_mhz, b.mem_clock_mhz = 33, 38, 71.0, 345, 2619
    b.util_pct, b.mem_util_pct, b.mem_used_bytes, b.clock_event_mask = 0, 0, 1 * MIB, 0x1
    b.ecc_sbe_volatile_total, b.ecc_sbe_aggregate_total, b.remapped_rows_correctable, b.pcie_replay_total = 3, 12, 2, 4
    b.nvlink_tx_bytes_total, b.nvlink_rx_bytes_total = 18 * 1024 * 1024, 18 * 2048 * 1024
    for key, value in change.items():
        index, attr = key.split("__")
        setattr(gpus[int(index[1:])], attr, value)
    return gpus


def agent_run(gpus, *, interval_s: float = 2.0) -> tuple[str, str]:
    """Two polls ``interval_s`` apart (the energy counter moving at each GPU's power): line protocol, /metrics."""
    t = [1_800_000_000 * 10**9]
    reg = CollectorRegistry()
    agent = GpuAgent(SimNvml(gpus), tags={"site": "check", "node": "n1"}, registry=reg, xid_events=False,
                     clock_ns=lambda: t[0])
    agent.start()
    try:
        records = agent.poll()
        t[0] += int(interval_s * 1e9)
        for g in gpus:
            g.energy_j += g.power_w * interval_s
        records += agent.poll()
        return encode(records), render(reg).decode()
    finally:
        agent.close()


def h100_inputs(**change) -> Inputs:
    lp, metrics = agent_run(h100_gpus(**change))
    return Inputs(parse_smi_csv((DATA / "h100-550.54.15-before.csv").read_text()), agent_polls(decode(lp)),
                  parse_smi_csv((DATA / "h100-550.54.15-after.csv").read_text()),
                  parse_smi_xml((DATA / "h100-550.54.15.xml").read_text()),
                  parse_nvlink((DATA / "h100-550.54.15-nvlink.txt").read_text()), parse_metrics(metrics))


def test_parsers_read_the_recordings() -> None:
    csv = parse_smi_csv((DATA / "h100-550.54.15-before.csv").read_text())
    assert set(csv) == set(H100)
    assert csv[H100[0]]["clocks.sm"] == "1980" and csv[H100[0]]["power.draw"] == "512.34"  # header units dropped
    assert not_available(csv[H100[1]]["ecc.errors.uncorrected.aggregate.total"]) == "Insufficient Permissions"
    old = parse_smi_csv((DATA / "a100-470.182.03.csv").read_text())
    assert old[A100[0]]["clocks_event_reasons.active"] == "0x0000000000000000"  # from clocks_throttle_reasons
    assert not_available(old[A100[1]]["temperature.gpu"]) == "GPU requires reset"
    xml = parse_smi_xml((DATA / "h100-550.54.15.xml").read_text())
    assert xml[H100[1]]["xml:remapped_rows/remapped_row_corr"] == "2"
    assert xml[H100[0]]["xml:temperature/gpu_temp_slow_threshold"] == "89 C"
    links = parse_nvlink((DATA / "h100-550.54.15-nvlink.txt").read_text())
    assert links[H100[0]] == {"nvlink:tx": 1024**4, "nvlink:rx": 2 * 1024**4}
    with pytest.raises(ValueError, match="line 2 has 3 values"):
        parse_smi_csv("index, uuid, temperature.gpu, power.draw [W]\n0, GPU-x, 45\n")
    with pytest.raises(ValueError, match="no uuid column"):
        parse_smi_csv("index, temperature.gpu\n0, 45\n")


def test_matching_node_passes_every_kind_of_check() -> None:
    rows = compare(h100_inputs())
    bad = [r for r in rows if r.status == "DIFF"]
    assert bad == [], format_table(bad)
    checks = {r.check for r in rows}
    for kind in ("enforced.power.limit", "energy slope", "xml:temperature/gpu_temp_slow_threshold",
                 "xml:remapped_rows/remapped_row_corr", "nvlink:tx", "clocks_event_reasons.active",
                 "ecc.errors.corrected.volatile.total", "metrics:DCGM_FI_DEV_POWER_USAGE",
                 "metrics:DCGM_FI_DEV_FB_USED", "metrics:DCGM_FI_DEV_SLOWDOWN_TEMP"):
        assert kind in checks, kind
    energy = next(r for r in rows if r.gpu == "0" and r.check == "energy slope")
    assert energy.status == "ok" and energy.agent == pytest.approx(515.0)
    # the throttle mask passes because the "after" read has sw_power_cap too (stated tolerance)
    mask = next(r for r in rows if r.gpu == "0" and r.check == "clocks_event_reasons.active")
    assert mask.status == "ok" and mask.smi == 0 and mask.agent == 4
    perm = next(r for r in rows if r.gpu == "1" and r.check == "ecc.errors.uncorrected.aggregate.total")
    assert perm.status == "n/a" and "Insufficient Permissions" in perm.note
    assert {r.status for r in rows if r.field == "fan_pct"} == {"n/a"}


def test_differences_are_flagged_with_their_reason() -> None:
    rows = compare(h100_inputs(g0__power_w=600.0, g0__power_limit_w=650.0, g0__clock_event_mask=0x44,
                               g1__nvlink_rx_bytes_total=10**9, g1__mem_temp_c=55))
    bad = {(r.gpu, r.check): r for r in rows if r.status == "DIFF"}
    assert set(bad) == {
        ("0", "power.draw"), ("0", "energy slope"), ("0", "metrics:DCGM_FI_DEV_POWER_USAGE"),
        ("0", "enforced.power.limit"), ("0", "metrics:DCGM_FI_DEV_ENFORCED_POWER_LIMIT"),
        ("0", "clocks_event_reasons.active"), ("0", "metrics:DCGM_FI_DEV_CLOCKS_EVENT_REASONS"),
        ("1", "nvlink:rx"), ("1", "temperature.memory"), ("1", "metrics:DCGM_FI_DEV_MEMORY_TEMP"),
    }
    assert "hw_thermal" in bad[("0", "clocks_event_reasons.active")].note
    assert bad[("0", "enforced.power.limit")].smi == 700.0 and bad[("0", "enforced.power.limit")].agent == 650.0
    table = format_table(rows)
    assert table.splitlines()[0].split() == ["gpu", "check", "field", "nvidia-smi", "agent", "diff", "status", "note"]
    assert table.splitlines()[-1].startswith(f"{len(rows)} checks, 10 differences, ")


def test_an_older_driver_and_a_gpu_that_requires_reset_never_crash(tmp_path, capsys) -> None:
    gpus = synthetic_gpus("n1", 2, model="NVIDIA A100-SXM4-80GB", tdp_w=400.0)
    for g, uuid in zip(gpus, A100):
        g.uuid = uuid
        g.temp_slowdown_c, g.temp_shutdown_c, g.temp_max_operating_c, g.mem_temp_max_c = 89.0, 92.0, 85.0, 95.0
        g.unsupported |= {"retired_pages_sbe", "retired_pages_dbe", "retired_pages_pending"}
    a = gpus[0]
    a.temp_c, a.mem_temp_c, a.power_w, a.sm_clock_mhz, a.mem_clock_mhz = 55, 63, 301.0, 1410, 1593
    a.util_pct, a.mem_util_pct, a.mem_used_bytes, a.mem_reserved_bytes = 97, 41, 40536 * MIB, 0
    a.memory_total_bytes, a.power_limit_w, a.power_limit_default_w, a.ecc_sbe_aggregate_total = 80870 * MIB, 400, 400, 2
    lp, metrics = agent_run(gpus)
    (tmp_path / "agent.lp").write_text(lp)
    (tmp_path / "metrics.txt").write_text(metrics)
    report = tmp_path / "report.json"
    code = main(["--smi-csv", str(DATA / "a100-470.182.03.csv"), "--smi-xml", str(DATA / "a100-470.182.03.xml"),
                 "--agent-lp", str(tmp_path / "agent.lp"), "--metrics", str(tmp_path / "metrics.txt"),
                 "--json", str(report)])
    out = capsys.readouterr().out
    data = json.loads(report.read_text())
    diffs = [r for r in data["rows"] if r["status"] == "DIFF"]
    assert code == 0, diffs
    assert data["summary"]["differences"] == 0 and data["summary"]["checks"] == len(data["rows"])
    reset = [r for r in data["rows"] if r["gpu"] == "1"]
    assert reset and all(r["status"] == "n/a" for r in reset)
    assert any("GPU requires reset" in r["note"] for r in reset)
    reserved = next(r for r in data["rows"] if r["gpu"] == "0" and r["check"] == "memory.reserved")
    assert reserved["status"] == "n/a"  # the 470 driver has no such property
    assert "GPU requires reset" in out and out.strip().splitlines()[-1].endswith("not available")


def test_smi_query_falls_back_to_the_older_spelling() -> None:
    asked: list[list[str]] = []

    def run(cmd: list[str]) -> str:
        asked.append(cmd)
        query = cmd[1]
        for bad in ("clocks_event_reasons.active", "memory.reserved"):
            if bad in query:
                raise subprocess.CalledProcessError(2, cmd, output=f'Field "{bad}" is not a valid field to query.\n')
        return "ok"

    assert smi_query(SMI_COLUMNS, run) == "ok"
    final = asked[-1][1]
    assert "clocks_throttle_reasons.active" in final and "memory.reserved" not in final and len(asked) == 3


def test_unreadable_input_is_a_clear_error_not_a_traceback(tmp_path, capsys) -> None:
    assert main(["--smi-csv", str(tmp_path / "nope.csv"), "--agent-lp", str(tmp_path / "nope.lp")]) == 2
    assert "gpu-check: error:" in capsys.readouterr().err
