"""The GPU agent on the hall model's scenarios, through the simulated NVML: a GPU lost with XID 79, and back."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from dcim.agents.gpu.agent import GpuAgent
from dcim.config import named_site
from dcim.simulators.hall import Hall
from dcim.simulators.nvml import SimNvml, node_gpus
from dcim.simulators.scenarios import load_scenario


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def gpu(records, index: int) -> dict:
    return next(r.fields for r in records if r.measurement == "gpu" and r.tags["gpu"] == str(index))


def test_gpu_lost_scenario_xid_79_lost_then_back() -> None:
    site = named_site("h100-hall")
    hall = Hall(site, seed=42, scenario=load_scenario("gpu-lost"))
    gpus = node_gpus(hall.state.gpus, "A03-n02")
    gpus[2].unsupported.add("mem_temp_c")  # a not-supported field on the same node, for good measure
    clock = FakeClock()
    tags = {**site.rack_tags("A03"), "node": "A03-n02"}
    agent = GpuAgent(SimNvml(gpus), tags=tags, registry=CollectorRegistry(), monotonic=clock, xid_timeout_ms=20,
                     reinit_backoff_initial_s=1.0, reinit_backoff_max_s=8.0)
    agent.start()
    try:
        before = agent.poll()
        assert not any(gpu(before, i)["lost"] for i in range(8))
        assert "mem_temp_c" not in gpu(before, 2) and "mem_temp_c" in gpu(before, 1)
        uuid3 = agent.reader.gpus[3].uuid
        for _ in range(125):  # the scenario loses GPU 3 at 2 min
            hall.step(1.0)
            clock.t += 1.0
        deadline = time.monotonic() + 5
        while agent.xids.summary(uuid3).total < 1:
            assert time.monotonic() < deadline, "XID 79 not delivered"
            time.sleep(0.01)
        lost = agent.poll()
        assert gpu(lost, 3)["lost"] is True and gpu(lost, 3)["xid_last"] == 79 and "power_w" not in gpu(lost, 3)
        assert all(gpu(lost, i)["temp_c"] > 0 for i in range(8) if i != 3)
        for step in range(310):  # the node is reset at 7 min; the agent re-opens NVML with backoff
            hall.step(1.0)
            clock.t += 1.0
            if step % 10 == 9:
                recs = agent.poll()
        back = gpu(recs, 3)
        assert back["lost"] is False and back["power_w"] > 0 and back["xid_total"] == 1
        assert agent.reader.gpus[3].uuid == uuid3
    finally:
        agent.close()
