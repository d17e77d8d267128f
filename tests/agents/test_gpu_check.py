"""scripts/gpu-check's comparison logic, fed a recorded-format nvidia-smi CSV and recorded agent output.

No GPU was available to this project: the CSV below is written in the exact format of
``nvidia-smi --query-gpu=<SMI_COLUMNS> --format=csv,noheader,nounits`` for an 8x H100 SXM node, and the
agent output is a real ``--once --format lp`` poll of the simulated backend with the same values.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from agents.gpu.agent import GpuAgent
from agents.gpu.check import SMI_COLUMNS, agent_values, compare, format_table, main, parse_smi_csv, smi_command
from dcim.lineprotocol import decode, encode
from simulators.nvml import SimNvml, synthetic_gpus

# index, uuid, temperature.gpu, temperature.memory, power.draw, power.limit, power.default_limit, clocks.sm,
# clocks.mem, utilization.gpu, utilization.memory, memory.used, memory.free, memory.reserved, fan.speed, pstate,
# clocks_event_reasons.active
SMI_CSV = """\
0, GPU-aaaa0000, 45, 50, 451.20, 700.00, 700.00, 1755, 2619, 60, 30, 40960, 40448, 512, [N/A], P0, 0x0000000000000000
1, GPU-aaaa0001, 52, 57, 603.00, 700.00, 700.00, 1755, 2619, 88, 44, 48128, 33280, 512, [N/A], P0, 0x0000000000000004
"""


def agent_lp(tmp_power_w: float = 450.0, mem_temp_unsupported: bool = False) -> str:
    gpus = synthetic_gpus("A01-n01", 2)
    for i, g in enumerate(gpus):
        g.uuid = f"GPU-aaaa000{i}"
    gpus[0].power_w, gpus[0].mem_used_bytes = tmp_power_w, 40 * 1024**3
    gpus[1].temp_c, gpus[1].mem_temp_c, gpus[1].power_w, gpus[1].util_pct = 52.0, 57.0, 604.0, 88.0
    gpus[1].mem_util_pct = 44.0
    gpus[1].mem_used_bytes = 47 * 1024**3
    gpus[1].clock_event_mask = 0x4
    if mem_temp_unsupported:
        gpus[0].unsupported = {"mem_temp_c"}
    agent = GpuAgent(SimNvml(gpus), tags={"site": "s", "node": "A01-n01"}, registry=CollectorRegistry(),
                     xid_events=False)
    agent.start()
    try:
        return encode(agent.poll())
    finally:
        agent.close()


def test_parse_smi_csv_maps_na_to_none_and_refuses_short_lines() -> None:
    smi = parse_smi_csv(SMI_CSV)
    assert set(smi) == {"0", "1"}
    assert smi["0"]["fan.speed"] is None and smi["1"]["power.draw"] == "603.00"
    with pytest.raises(ValueError, match="expected"):
        parse_smi_csv("0, GPU-x, 45\n")
    assert smi_command()[1] == "--query-gpu=" + ",".join(SMI_COLUMNS)


def test_matching_readings_pass_and_not_supported_by_both_is_ok() -> None:
    rows = compare(parse_smi_csv(SMI_CSV), agent_values(decode(agent_lp())))
    bad = [r for r in rows if not r.ok]
    assert bad == []
    fan = [r for r in rows if r.field == "fan_pct"]
    assert [r.note for r in fan] == ["not supported by either"] * 2
    mask = next(r for r in rows if r.gpu == "1" and r.field == "clock_event_mask")
    assert mask.smi == mask.agent == 4


def test_differences_are_flagged_with_their_reason() -> None:
    rows = compare(parse_smi_csv(SMI_CSV), agent_values(decode(agent_lp(tmp_power_w=520.0, mem_temp_unsupported=True))))
    bad = {(r.gpu, r.field): r for r in rows if not r.ok}
    assert set(bad) == {("0", "power_w"), ("0", "mem_temp_c")}
    assert bad[("0", "power_w")].diff == pytest.approx(520.0 - 451.2)
    assert bad[("0", "mem_temp_c")].note == "agent omitted a value nvidia-smi shows"
    table = format_table(rows)
    assert table.splitlines()[0].split() == ["gpu", "field", "nvidia-smi", "agent", "diff", "ok", "note"]
    assert table.endswith(f"{len(rows)} checks, 2 differences")


def test_missing_gpu_and_main_with_recordings(tmp_path, capsys) -> None:
    rows = compare(parse_smi_csv(SMI_CSV), agent_values(r for r in decode(agent_lp()) if r.tags.get("gpu") != "1"))
    assert [r.note for r in rows if not r.ok] == ["GPU missing from agent"]
    (tmp_path / "smi.csv").write_text(SMI_CSV)
    (tmp_path / "agent.lp").write_text(agent_lp(tmp_power_w=520.0))
    assert main(["--smi-csv", str(tmp_path / "smi.csv"), "--agent-lp", str(tmp_path / "agent.lp")]) == 1
    out = capsys.readouterr().out
    assert "power_w" in out and "DIFF" in out
