"""The AI-factory pod that ``dcim simulate`` and ``dcim demo`` run by default: GB200 NVL72-class racks of
120-130 kW on in-row CDUs beside a row of H100 nodes; and the H100 hall, still there by name."""

from __future__ import annotations

import pynvml as nv
import pytest

from dcim.config import default_site, named_site, site_names
from dcim.errors import ConfigError
from dcim.simulators.cli import SIMULATOR_SITE, site_file, site_from
from dcim.simulators.hall import Hall
from dcim.simulators.nvml import SimNvml, node_gpus
from dcim.simulators.overview import overview
from dcim.simulators.scenarios import SCENARIO_DIR, load_scenario
from tests.simulators.helpers import run_to

POD = named_site("ai-factory-pod")


def _settled(scenario: str | None = None, t_s: float = 120.0) -> Hall:
    return run_to(Hall(POD, seed=42, scenario=load_scenario(scenario) if scenario else None), t_s, 5.0)


def test_the_pod_is_eight_nvl72_racks_on_in_row_cdus_and_a_row_of_h100_nodes():
    assert site_from(None) == POD and SIMULATOR_SITE == "ai-factory-pod"
    racks = {r.name: r for r in POD.racks()}
    nvl72 = [r for r in racks.values() if r.nodes[0].gpu_model == "GB200"]
    assert len(nvl72) == 8
    for r in nvl72:
        assert len(r.nodes) == 18 and {n.gpus for n in r.nodes} == {4}  # 18 compute trays of 4 GPUs
        assert r.budget_w == 132_000 and [p.feed for p in r.pdus] == ["A", "B"]
        # 2N: either feed alone carries the rated rack within 80 % of its breaker
        assert all(0.8 * p.capacity_w >= r.budget_w for p in r.pdus)
    h100 = [n for r in racks.values() for n in r.nodes if n.gpu_model == "H100-SXM5"]
    assert len(h100) == 8 and {n.gpus for n in h100} == {8}
    assert sum(n.gpus for r in racks.values() for n in r.nodes) == 640
    cooled = {rack for lp in POD.loops for rack in lp.racks}
    assert cooled == set(racks)  # every rack liquid cooled
    assert [lp.racks for lp in POD.loops[:2]] == [["A01", "A02", "A03", "A04"], ["B01", "B02", "B03", "B04"]]  # a CDU a row
    gb200 = POD.gpu_models["GB200"]
    assert gb200.name == "NVIDIA GB200" and gb200.tdp_w == 1200 and gb200.nvlink_bytes_per_s == 2 * 450e9


def test_an_nvl72_rack_draws_120_to_130_kw_at_full_training_load_and_its_gpus_stay_cool():
    ov = overview(_settled(), top=1)
    by_name = {r.name: r for r in ov.racks}
    for name in ("A01", "A04", "B01", "B04"):
        assert 120_000 <= by_name[name].power_w <= 130_000, (name, by_name[name].power_w)
        assert by_name[name].max_temp_c < 80 and by_name[name].throttled == 0
    assert 25_000 < by_name["C01"].power_w < 35_000  # the H100 rack, as in the H100 hall
    loop_a = next(lp for lp in ov.loops if lp.name == "loop-a")
    assert 380_000 < loop_a.heat_w < 440_000  # ~100 kW of liquid heat a rack into the row's CDU
    assert 6.0 < loop_a.return_c - loop_a.supply_c < 12.0
    assert ov.power_w / ov.budget_w > 0.85


def test_a_failing_row_cdu_heats_and_throttles_the_120_kw_racks_it_cools():
    hall = _settled("pump-degradation", 300.0)  # full strength from 3m
    racks = {r.name: r for r in overview(hall, top=1).racks}
    assert all(racks[f"A0{i}"].throttled > 0 for i in range(1, 5))
    assert not any(racks[f"B0{i}"].throttled for i in range(1, 5))


def test_a_gb200_gpu_through_the_simulated_nvml():
    hall = _settled(t_s=30.0)
    nvml = SimNvml(node_gpus(hall.state.gpus, "A01-n01"))
    nvml.nvmlInit()
    assert nvml.nvmlDeviceGetCount() == 4
    h = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlDeviceGetName(h) == "NVIDIA GB200"
    assert nvml.nvmlDeviceGetEnforcedPowerLimit(h) == 1_200_000  # mW
    assert nvml.nvmlDeviceGetTemperatureThreshold(h, nv.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN) == 87
    # NVLink5 counters (nvml.h 201-222) answer on Blackwell; the NVLink4 throughput fields do not
    before = nvml.nvmlDeviceGetFieldValues(h, [(202, 0xFFFFFFFF)])[0]
    assert before.nvmlReturn == nv.NVML_SUCCESS
    hall.advance(10.0)
    hall.state  # noqa: B018 - refresh the state objects the NVML reads
    after = nvml.nvmlDeviceGetFieldValues(h, [(202, 0xFFFFFFFF)])[0]
    per_s = (after.value.ullVal - before.value.ullVal) / 10.0
    assert 250e9 < per_s < 310e9  # a third of NVLink5's 900 GB/s a direction at ~95 % utilization
    with pytest.raises(nv.NVMLError_NotSupported):  # the call fails when no value of it was filled
        nvml.nvmlDeviceGetFieldValues(h, [(nv.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, 0)])


@pytest.mark.parametrize("name", sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
def test_every_shipped_scenario_runs_on_the_pod_and_on_the_h100_hall(name):
    sc = load_scenario(name)
    for site in (POD, named_site("h100-hall")):
        hall = Hall(site, seed=1, scenario=sc)
        run_to(hall, sc.duration, 30.0)
        assert hall.t_s == pytest.approx(sc.duration)


def test_the_h100_hall_is_there_by_name_and_an_unknown_name_says_which_there_are():
    assert {"ai-factory-pod", "h100-hall"} <= set(site_names())
    h100 = named_site("h100-hall")
    assert sum(n.gpus for r in h100.racks() for n in r.nodes) == 256
    assert default_site() == POD  # the embedded default every component uses without --site
    assert site_from("h100-hall") == h100
    assert site_file(None).endswith("ai-factory-pod.yaml") and site_file("h100-hall").endswith("h100-hall.yaml")
    with pytest.raises(ConfigError, match="no embedded site named 'nope' .*ai-factory-pod, h100-hall"):
        named_site("nope")
