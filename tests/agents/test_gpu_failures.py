"""GPU agent failure paths on the simulated NVML: unsupported fields, per-value errors, lost GPUs, no
library, MIG mode, XIDs. Nothing missing may turn into a 0."""

from __future__ import annotations

import time

import pynvml as nv
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from dcim.agents.gpu.agent import GpuAgent
from dcim.errors import DeviceError
from dcim.simulators.nvml import SimNvml, synthetic_gpus

TAGS = {"site": "dc1", "room": "hall1", "row": "A", "rack": "A01", "node": "A01-n01"}


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def make_agent():
    agents = []

    def make(gpus, **kw):
        backend = SimNvml(gpus)
        reg = CollectorRegistry()
        agent = GpuAgent(backend, tags=TAGS, registry=reg, xid_timeout_ms=20, **kw)
        agents.append(agent)
        return agent, backend, reg

    yield make
    for a in agents:
        a.close()


def by(records, measurement: str, index: int, **tags) -> dict:
    found = [r for r in records if r.measurement == measurement and r.tags.get("gpu") == str(index)
             and all(r.tags.get(k) == v for k, v in tags.items())]
    assert len(found) == 1, found
    return found[0].fields


def sample(reg: CollectorRegistry, name: str, **labels) -> float | None:
    return reg.get_sample_value(name, labels)


def test_unsupported_fields_are_omitted_reported_once_and_not_asked_again(make_agent, caplog) -> None:
    gpus = synthetic_gpus("A01-n01", 2)
    gpus[1].unsupported = {"mem_temp_c", "power_instant_w", "enc_util_pct"}
    agent, backend, reg = make_agent(gpus, monotonic=FakeClock())
    agent.start()
    caplog.set_level("INFO")
    recs = agent.poll()
    f1 = by(recs, "gpu", 1)
    for name in ("mem_temp_c", "power_instant_w", "enc_util_pct", "fan_pct"):
        assert name not in f1
    assert f1["temp_c"] > 0 and "dec_util_pct" in f1  # the rest of the same batch and calls still there
    assert "mem_temp_c" in by(recs, "gpu", 0)
    health = by(recs, "agent", 1)
    assert health["unsupported_fields"] == "enc_util_pct,fan_pct,mem_temp_c,power_instant_w"
    assert health["up"] is True and health["errors_total"] == 0
    uuid1 = agent.reader.gpus[1].uuid
    assert sample(reg, "dcim_gpu_agent_unsupported_field", gpu="1", uuid=uuid1, node="A01-n01",
                  field="mem_temp_c", reason="NOT_SUPPORTED") == 1
    assert sample(reg, "DCGM_FI_DEV_MEMORY_TEMP", gpu="1", UUID=uuid1, pci_bus_id=agent.reader.gpus[1].pci_bus_id,
                  device="nvidia1", modelName="NVIDIA H100 80GB HBM3", Hostname="A01-n01", hostname="A01-n01",
                  DCGM_FI_DRIVER_VERSION=backend.driver_version) is None
    assert len([r for r in caplog.records if "does not support" in r.getMessage() and "GPU 1" in r.getMessage()]) == 1
    agent.poll()  # the NVLink5 counters a Hopper lacks are found out per link in the second poll
    # Next polls: the unsupported ids are not in the batch and the unsupported calls are not made.
    asked: list = []
    real = backend.nvmlDeviceGetFieldValues

    def spy(h, ids):
        asked.append((backend._index(h), list(ids)))
        return real(h, ids)

    backend.nvmlDeviceGetFieldValues = spy
    calls_before = backend.calls
    caplog.clear()
    agent.poll()
    ids1 = [i for idx, ids in asked if idx == 1 for i in ids]
    assert nv.NVML_FI_DEV_MEMORY_TEMP not in ids1 and nv.NVML_FI_DEV_POWER_INSTANT not in ids1
    assert nv.NVML_FI_DEV_MEMORY_TEMP in [i for idx, ids in asked if idx == 0 for i in ids]
    # 14 per GPU (the clock stands still: no second GPM sample); gpu 1 skips the encoder call too
    assert backend.calls - calls_before == 2 * 14 - 1
    assert not [r for r in caplog.records if "does not support" in r.getMessage()]


def test_per_value_error_in_a_batch_is_omitted_not_zero_and_counted(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 1)
    agent, backend, reg = make_agent(gpus)
    agent.start()
    backend.value_errors[(0, nv.NVML_FI_DEV_MEMORY_TEMP)] = nv.NVML_ERROR_UNKNOWN
    backend.value_errors[(0, nv.NVML_FI_DEV_ECC_DBE_VOL_TOTAL)] = nv.NVML_ERROR_NO_PERMISSION
    recs = agent.poll()
    f = by(recs, "gpu", 0)
    assert "mem_temp_c" not in f and "ecc_dbe_volatile_total" not in f
    assert f["energy_j"] > 0 and "ecc_sbe_volatile_total" in f  # same batch, filled
    health = by(recs, "agent", 0)
    assert health["errors_total"] == 2
    assert "mem_temp_c: UNKNOWN" in health["message"]
    uuid = agent.reader.gpus[0].uuid
    assert sample(reg, "dcim_gpu_agent_poll_errors_total", gpu="0", uuid=uuid, node="A01-n01",
                  field="mem_temp_c") == 1
    # A failure is not "unsupported": the value is asked again and comes back.
    backend.value_errors.clear()
    f2 = by(agent.poll(), "gpu", 0)
    assert f2["mem_temp_c"] == gpus[0].mem_temp_c
    assert sample(reg, "dcim_gpu_agent_poll_errors_total", gpu="0", uuid=uuid, node="A01-n01",
                  field="mem_temp_c") == 1


def test_whole_batch_failure_and_call_timeout_omit_only_those_fields(make_agent) -> None:
    agent, backend, reg = make_agent(synthetic_gpus("A01-n01", 2))
    agent.start()
    agent.poll()
    backend.call_errors[(0, "nvmlDeviceGetFieldValues")] = nv.NVML_ERROR_TIMEOUT
    backend.call_errors[(1, "nvmlDeviceGetPowerUsage")] = nv.NVML_ERROR_TIMEOUT
    recs = agent.poll()
    f0, f1 = by(recs, "gpu", 0), by(recs, "gpu", 1)
    assert "energy_j" not in f0 and "ecc_sbe_volatile_total" not in f0 and f0["power_w"] > 0
    assert "power_w" not in f1 and f1["energy_j"] > 0
    assert by(recs, "agent", 1)["errors_total"] == 1
    assert by(recs, "agent", 0)["errors_total"] > 10  # every field of the batch counted
    backend.call_errors.clear()
    assert "energy_j" in by(agent.poll(), "gpu", 0)


def test_nvlink_sum_is_all_links_or_nothing(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 1)
    agent, backend, _ = make_agent(gpus)
    backend.aggregate_scope = False  # a driver without the summed read: one read per link
    agent.start()
    agent.poll()  # the summed read is refused: per link from now on
    assert by(agent.poll(), "gpu", 0)["nvlink_tx_bytes_total"] == gpus[0].nvlink_tx_bytes_total // 1024 * 1024
    real = backend.nvmlDeviceGetFieldValues

    def one_link_fails(h, ids):
        values = real(h, ids)
        for v in values:
            if v.fieldId == nv.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX and v.scopeId == 3:
                v.nvmlReturn = nv.NVML_ERROR_UNKNOWN
        return values

    backend.nvmlDeviceGetFieldValues = one_link_fails
    f = by(agent.poll(), "gpu", 0)
    assert "nvlink_tx_bytes_total" not in f  # a partial sum would look like a counter reset
    assert "nvlink_rx_bytes_total" in f


def test_lost_gpu_is_reported_others_go_on_and_it_recovers_after_reinit(make_agent) -> None:
    clock = FakeClock()
    gpus = synthetic_gpus("A01-n01", 4)
    agent, backend, reg = make_agent(gpus, monotonic=clock, reinit_backoff_initial_s=1.0, reinit_backoff_max_s=4.0)
    agent.start()
    agent.poll()
    gpus[2].lost = True
    recs = agent.poll()
    lost = by(recs, "gpu", 2)
    assert lost == {"lost": True, **({"xid_total": 0} if "xid_total" in lost else {})}
    assert by(recs, "agent", 2)["lost"] is True and by(recs, "agent", 2)["up"] is False
    for i in (0, 1, 3):
        assert by(recs, "gpu", i)["temp_c"] > 0 and by(recs, "gpu", i)["lost"] is False
    uuid2 = agent.reader.gpus[2].uuid
    assert sample(reg, "dcim_gpu_agent_gpu_lost", gpu="2", uuid=uuid2, node="A01-n01") == 1
    assert "DCGM_FI_DEV_GPU_TEMP{" in generate_latest(reg).decode()
    assert f'UUID="{uuid2}"' not in [line for line in generate_latest(reg).decode().splitlines()
                                     if line.startswith("DCGM_FI_DEV_GPU_TEMP")][2]
    # Re-init with backoff: 1 s, 2 s, 4 s, 4 s ... between tries while the GPU stays lost.
    inits = backend.init_count
    tries_at = []
    for step in range(24):
        clock.t += 0.5
        before = backend.init_count
        recs = agent.poll()
        if backend.init_count != before:
            tries_at.append(step)
        assert by(recs, "gpu", 0)["temp_c"] > 0  # the healthy GPUs never stop reporting
        assert by(recs, "gpu", 2)["lost"] is True
    gaps = [b - a for a, b in zip(tries_at, tries_at[1:])]
    assert backend.init_count > inits
    assert gaps[:4] == [2, 4, 8, 8]  # in 0.5 s steps: 1 s, 2 s, 4 s, then the 4 s cap
    # The GPU comes back: the next due re-init finds it (same UUID, same index) and it reports again.
    gpus[2].lost = False
    for _ in range(10):
        clock.t += 0.5
        recs = agent.poll()
        if not by(recs, "gpu", 2)["lost"]:
            break
    f2 = by(recs, "gpu", 2)
    assert f2["lost"] is False and f2["temp_c"] > 0
    assert agent.reader.gpus[2].uuid == uuid2
    assert sample(reg, "dcim_gpu_agent_gpu_lost", gpu="2", uuid=uuid2, node="A01-n01") == 0
    assert sample(reg, "dcim_gpu_agent_nvml_reinits_total", node="A01-n01") == backend.init_count - 1


def test_no_library_is_a_clear_error_then_retried_with_backoff(make_agent) -> None:
    clock = FakeClock()
    agent, backend, reg = make_agent(synthetic_gpus("A01-n01", 2), monotonic=clock, reinit_backoff_initial_s=1.0)
    backend.init_error = nv.NVML_ERROR_LIBRARY_NOT_FOUND
    with pytest.raises(DeviceError, match="libnvidia-ml.so.1"):
        agent.start()
    recs = agent.poll()  # never raises: the failure is in the records
    assert [r.measurement for r in recs] == ["agent"]
    assert recs[0].fields["up"] is False and "not found" in recs[0].fields["message"]
    assert sample(reg, "dcim_gpu_agent_nvml_up", node="A01-n01") == 0
    backend.init_error = nv.NVML_ERROR_DRIVER_NOT_LOADED
    clock.t += 5
    msg = agent.poll()[0].fields["message"]
    assert "driver is not loaded" in msg
    backend.init_error = None
    clock.t += 0.5  # not due yet: the backoff doubled to 2 s
    assert [r.measurement for r in agent.poll()] == ["agent"]
    clock.t += 2
    recs = agent.poll()
    assert by(recs, "gpu", 1)["temp_c"] > 0
    assert "message" not in recs[-1].fields and recs[-1].fields["up"] is True


def test_mig_mode_hides_fields_without_crashing(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 2)
    gpus[0].mig_mode = True
    agent, backend, reg = make_agent(gpus)
    backend.mig_instances[0] = 2  # remapped rows are refused while GPU instances exist
    agent.start()
    recs = agent.poll()
    f0 = by(recs, "gpu", 0)
    assert f0["mig_mode"] is True and f0["temp_c"] > 0 and f0["power_w"] > 0
    for hidden in ("util_pct", "mem_util_pct", "enc_util_pct", "dec_util_pct", "remapped_rows_correctable"):
        assert hidden not in f0
    assert "util_pct" in by(recs, "gpu", 1)
    health = by(recs, "agent", 0)
    assert "MIG mode hides" in health["message"] and "util_pct" in health["message"]
    assert health["errors_total"] == 0
    assert sample(reg, "dcim_gpu_agent_unsupported_field", gpu="0", uuid=agent.reader.gpus[0].uuid,
                  node="A01-n01", field="util_pct", reason="MIG") == 1
    # MIG turned off (after a reset): the fields come back, they were hidden, not unsupported.
    gpus[0].mig_mode = False
    f0 = by(agent.poll(), "gpu", 0)
    assert f0["util_pct"] == gpus[0].util_pct and f0["mig_mode"] is False


def wait_for(pred, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_every_xid_is_counted_per_code_not_only_the_last(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 2)
    agent, _, reg = make_agent(gpus, clock_ns=lambda: 1_700_000_000_000_000_000)
    agent.start()
    gpus[1].xid_events.extend([(13, 0.0), (13, 0.0), (48, 0.0), (13, 0.0)])
    wait_for(lambda: agent.xids.summary(agent.reader.gpus[1].uuid).total == 4)
    recs = agent.poll()
    f1 = by(recs, "gpu", 1)
    assert f1["xid_total"] == 4 and f1["xid_last"] == 13 and f1["xid_last_time_s"] == 1_700_000_000.0
    assert by(recs, "gpu", 0)["xid_total"] == 0 and "xid_last" not in by(recs, "gpu", 0)
    assert by(recs, "gpu_xid", 1, xid="13") == {"count_total": 3, "last_time_s": 1_700_000_000.0}
    assert by(recs, "gpu_xid", 1, xid="48")["count_total"] == 1
    uuid1 = agent.reader.gpus[1].uuid
    assert sample(reg, "dcim_gpu_xid_errors_total", gpu="1", uuid=uuid1, node="A01-n01", xid="13") == 3
    text = generate_latest(reg).decode()
    xid_lines = [ln for ln in text.splitlines() if ln.startswith("DCGM_FI_DEV_XID_ERRORS{")]
    assert [ln.rsplit(" ", 1)[1] for ln in xid_lines] == ["0.0", "13.0"]  # as dcgm-exporter: 0 before any XID


def test_xid_79_then_lost(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 2)
    agent, _, _ = make_agent(gpus)
    agent.start()
    gpus[0].xid_events.append((79, 0.0))
    gpus[0].lost = True
    wait_for(lambda: agent.xids.summary(agent.reader.gpus[0].uuid).total == 1)
    f0 = by(agent.poll(), "gpu", 0)
    assert f0["lost"] is True and f0["xid_last"] == 79 and "temp_c" not in f0


def test_xid_registration_not_supported_omits_the_count(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 2)
    gpus[0].unsupported = {"xid_total"}
    agent, _, _ = make_agent(gpus)
    agent.start()
    recs = agent.poll()
    assert "xid_total" not in by(recs, "gpu", 0)
    assert by(recs, "gpu", 1)["xid_total"] == 0


def test_library_error_mid_run_reopens_nvml_with_backoff(make_agent) -> None:
    clock = FakeClock()
    agent, backend, reg = make_agent(synthetic_gpus("A01-n01", 2), monotonic=clock, reinit_backoff_initial_s=1.0)
    agent.start()
    agent.poll()
    backend.call_errors[(1, "nvmlDeviceGetPowerUsage")] = nv.NVML_ERROR_UNINITIALIZED
    recs = agent.poll()
    assert recs[-1].fields["up"] is False and "re-opening" in recs[-1].fields["message"]
    assert sample(reg, "dcim_gpu_agent_nvml_up", node="A01-n01") == 0
    inits = backend.init_count
    agent.poll()  # re-opened at once, and broken again
    agent.poll()  # not yet: the next re-open waits 1 s
    assert backend.init_count == inits + 1
    backend.call_errors.clear()
    clock.t += 1.0
    recs = agent.poll()
    assert backend.init_count == inits + 2
    assert recs[-1].fields["up"] is True and by(recs, "gpu", 1)["power_w"] > 0


class FakePublisher:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.depth = 0
        self.dropped = 0

    def publish(self, topic: str, payload: bytes) -> bool:
        self.messages.append((topic, payload))
        return True


async def test_a_stuck_nvml_call_is_reported_not_silent(make_agent) -> None:
    import asyncio
    import threading

    from dcim.agents.gpu.agent import run_agent
    from dcim.lineprotocol.decode import decode

    agent, backend, _ = make_agent(synthetic_gpus("A01-n01", 2))
    agent.start()
    release = threading.Event()
    real = backend.nvmlDeviceGetPowerUsage

    def wedged(h):
        release.wait(10)
        return real(h)

    backend.nvmlDeviceGetPowerUsage = wedged
    pub = FakePublisher()
    run = asyncio.create_task(run_agent(agent, pub, topic="t", interval_s=0.02, stop=asyncio.Event(), polls=1,
                                        stuck_after_s=0.05))
    while not pub.messages:
        await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.wait_for(run, 10) == 1
    stuck = list(decode(pub.messages[0][1].decode()))
    assert [r.measurement for r in stuck] == ["agent"]
    assert stuck[0].fields["up"] is False and "stuck in an NVML call" in stuck[0].fields["message"]
    final = list(decode(pub.messages[-1][1].decode()))
    assert sum(r.measurement == "gpu" for r in final) == 2


def test_driver_without_a_function_uses_its_fallback(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 1)
    agent, backend, _ = make_agent(gpus)
    gpus[0].clock_event_mask = nv.nvmlClocksEventReasonSwPowerCap
    backend.missing_functions = {"nvmlDeviceGetTemperature", "nvmlDeviceGetMemoryInfo_v2",
                                 "nvmlDeviceGetCurrentClocksEventReasons"}
    agent.start()
    for _ in range(2):  # the first poll swaps to the fallback, the second only asks it
        recs = agent.poll()
        f = by(recs, "gpu", 0)
        assert f["temp_c"] == gpus[0].temp_c
        # v1 has no reserved split: its used counts the driver's reservation, and the record says so
        assert f["mem_used_bytes"] == gpus[0].mem_used_bytes + gpus[0].mem_reserved_bytes
        assert f["mem_info_version"] == 1
        assert f["mem_free_bytes"] == gpus[0].memory_total_bytes - f["mem_used_bytes"]
        assert "mem_reserved_bytes" not in f
        assert f["clock_event_mask"] == 4 and f["throttle_sw_power_cap"] is True
        health = by(recs, "agent", 0)
        assert health["errors_total"] == 0
        assert "mem_reserved_bytes" in health["unsupported_fields"] and "temp_c" not in health["unsupported_fields"]
