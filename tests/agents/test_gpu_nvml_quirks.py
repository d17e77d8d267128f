"""The GPU agent against the real library's quirks, one test each, on the simulator's real-library mode.

Each test first shows the quirk is there (what a naive reader would see), then that the agent
reads through it.
"""

from __future__ import annotations

import ctypes
import struct
import time

import pynvml as nv
import pytest
from prometheus_client import CollectorRegistry

from dcim.agents.gpu.agent import GpuAgent
from dcim.agents.gpu.fields import GPM_READS, SCOPE_ALL_LINKS
from dcim.agents.gpu.metrics import render
from dcim.agents.gpu.reader import handle_key, tag_text
from dcim.lineprotocol.encode import encode
from dcim.lineprotocol.decode import decode
from dcim.schema import validate
from dcim.simulators.nvml import SimNvml, gpm_activity, synthetic_gpus

TAGS = {"site": "dc1", "room": "hall1", "row": "A", "rack": "A01", "node": "A01-n01"}


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def make_agent():
    agents = []

    def make(gpus, backend_kw=None, **kw):
        backend = SimNvml(gpus, **(backend_kw or {}))
        assert backend.real_library  # the default: tests see the real library's behaviour
        reg = CollectorRegistry()
        agent = GpuAgent(backend, tags=TAGS, registry=reg, xid_timeout_ms=20, **kw)
        agents.append(agent)
        return agent, backend, reg

    yield make
    for a in agents:
        a.close()


def gpu(records, index: int) -> dict:
    [rec] = [r for r in records if r.measurement == "gpu" and r.tags["gpu"] == str(index)]
    return rec.fields


def health(records, index: int) -> dict:
    [rec] = [r for r in records if r.measurement == "agent" and r.tags.get("gpu") == str(index)]
    return rec.fields


def wait_for(pred, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_fresh_handle_objects_xid_filed_by_pointer_value_without_a_call(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 3)
    agent, backend, _ = make_agent(gpus)
    agent.start()
    a, b = backend.nvmlDeviceGetHandleByIndex(1), backend.nvmlDeviceGetHandleByIndex(1)
    assert a is not b and handle_key(a) == handle_key(b)  # the quirk: identity never matches
    assert handle_key(a) != handle_key(backend.nvmlDeviceGetHandleByIndex(2))
    # After an XID 79 every call on that GPU fails: the lookup must need none.
    backend.raise_errors[(1, "nvmlDeviceGetUUID")] = nv.NVMLError(nv.NVML_ERROR_GPU_IS_LOST)
    gpus[1].xid_events.append((79, 0.0))
    uuid1 = agent.reader.gpus[1].uuid
    wait_for(lambda: agent.xids.summary(uuid1).total == 1)
    assert agent.xids.summary("unknown").total == 0
    assert gpu(agent.poll(), 1)["xid_last"] == 79


def test_mislabelled_value_types_are_decoded_by_the_real_type(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 1)
    g = gpus[0]
    g.mem_temp_c = 78.0
    g.ecc_sbe_volatile_total, g.ecc_dbe_volatile_total, g.ecc_sbe_aggregate_total, g.ecc_dbe_aggregate_total = 11, 1, 120, 2
    agent, backend, _ = make_agent(gpus)
    agent.start()
    raw = backend.nvmlDeviceGetFieldValues(backend.nvmlDeviceGetHandleByIndex(0),
                                           [nv.NVML_FI_DEV_MEMORY_TEMP, nv.NVML_FI_DEV_ECC_SBE_VOL_TOTAL])
    assert [v.valueType for v in raw] == [nv.NVML_VALUE_TYPE_DOUBLE] * 2  # labelled double ...
    assert raw[0].value.dVal < 1e-300 and raw[1].value.dVal < 1e-300  # ... ~2.5e-322 read by the label
    f = gpu(agent.poll(), 0)
    assert f["mem_temp_c"] == 78.0
    assert (f["ecc_sbe_volatile_total"], f["ecc_dbe_volatile_total"]) == (11, 1)
    assert (f["ecc_sbe_aggregate_total"], f["ecc_dbe_aggregate_total"]) == (120, 2)


def test_untouched_entries_with_ecc_off_are_omitted_not_zero(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 2)
    for g in gpus:
        g.ecc_sbe_volatile_total = 5
    agent, backend, reg = make_agent(gpus, {"ecc_off": {0}})
    agent.start()
    raw = backend.nvmlDeviceGetFieldValues(backend.nvmlDeviceGetHandleByIndex(0), [nv.NVML_FI_DEV_ECC_SBE_VOL_TOTAL])
    assert (raw[0].nvmlReturn, raw[0].timestamp) == (nv.NVML_SUCCESS, 0)  # the quirk: "success", never filled
    recs = agent.poll()
    f0 = gpu(recs, 0)
    for name in ("ecc_sbe_volatile_total", "ecc_dbe_aggregate_total", "retired_pages_sbe", "retired_pages_pending"):
        assert name not in f0, name
    assert gpu(recs, 1)["ecc_sbe_volatile_total"] == 5 and f0["energy_j"] > 0
    h0 = health(recs, 0)
    assert h0["errors_total"] == 0 and "ecc_sbe_volatile_total" in h0["unsupported_fields"]
    assert reg.get_sample_value("dcim_gpu_agent_unsupported_field", {
        "gpu": "0", "uuid": agent.reader.gpus[0].uuid, "node": "A01-n01", "field": "ecc_sbe_volatile_total",
        "reason": "UNFILLED"}) == 1


def spy_field_ids(backend) -> list:
    asked: list = []
    real = backend.nvmlDeviceGetFieldValues

    def spy(h, ids):
        asked.append(list(ids))
        return real(h, ids)

    backend.nvmlDeviceGetFieldValues = spy
    return asked


def test_nvlink_is_one_summed_read_per_counter(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 1)
    gpus[0].nvlink_tx_bytes_total = 7 * 1024**3 + 5 * 1024
    agent, backend, _ = make_agent(gpus)
    agent.start()
    agent.poll()
    agent.poll()
    asked = spy_field_ids(backend)
    f = gpu(agent.poll(), 0)
    ids = [i for call in asked for i in call]
    assert (nv.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, SCOPE_ALL_LINKS) in ids
    assert not [i for i in ids if isinstance(i, tuple) and i[1] != SCOPE_ALL_LINKS]  # no per-link reads
    assert f["nvlink_tx_bytes_total"] == 7 * 1024**3 + 5 * 1024


def test_nvlink_per_link_fallback_skips_links_that_answer_not_supported(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 1)
    gpus[0].nvlink_rx_bytes_total = 36 * 1024**3
    agent, backend, _ = make_agent(gpus, {"aggregate_scope": False, "dead_links": {16, 17}})
    agent.start()
    agent.poll()  # the summed read is refused
    agent.poll()  # per link: links 16 and 17 answer NOT_SUPPORTED, the rest still add up
    asked = spy_field_ids(backend)
    f = gpu(agent.poll(), 0)
    assert f["nvlink_rx_bytes_total"] == 36 * 1024**3  # the GPU keeps its total and its counter
    links = {i[1] for call in asked for i in call if isinstance(i, tuple) and i[0] == nv.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX}
    assert links == set(range(16))
    # A transient failure of one live link: no partial sum this poll, and the counter stays on.
    backend.value_errors[(0, nv.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX)] = nv.NVML_ERROR_UNKNOWN
    assert "nvlink_rx_bytes_total" not in gpu(agent.poll(), 0)
    backend.value_errors.clear()
    assert gpu(agent.poll(), 0)["nvlink_rx_bytes_total"] == 36 * 1024**3


def test_blackwell_nvlink5_counters_field_ids_201_to_222(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 1, model="NVIDIA GB200", tdp_w=1200.0)
    g = gpus[0]
    g.nvlink_tx_bytes_total, g.nvlink_rx_bytes_total = 123_456_789_013, 987_654_321
    g.nvlink_crc_flit_errors_total, g.nvlink_recovery_errors_total = 3, 2
    agent, _, _ = make_agent(gpus)
    agent.start()
    agent.poll()  # NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_* is refused summed ...
    agent.poll()  # ... and on every link: the NVLink5 byte counters take over
    f = gpu(agent.poll(), 0)
    assert f["nvlink_tx_bytes_total"] == 123_456_789_013  # bytes, exact (not KiB)
    assert f["nvlink_rx_bytes_total"] == 987_654_321
    assert f["nvlink_tx_packets_total"] == 123_456_789_013 // 256
    assert f["nvlink_symbol_errors_total"] == 3 and f["nvlink_link_recovery_events_total"] == 2
    assert f["nvlink_malformed_packet_errors_total"] == 0  # a real 0: the counter is there and says none


def test_errors_that_are_not_nvml_errors_cost_one_field_not_the_agent(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 2)
    agent, backend, reg = make_agent(gpus)
    backend.missing_functions.add("nvmlDeviceGetComputeRunningProcesses_v3")  # -> NVMLLibraryMismatchError
    backend.raise_errors[(0, "nvmlDeviceGetPowerUsage")] = TypeError("unexpected ctypes result")
    backend.raise_errors[(1, "nvmlDeviceGetFieldValues")] = RuntimeError("wedged")
    agent.start()
    recs = agent.poll()
    f0, f1 = gpu(recs, 0), gpu(recs, 1)
    assert "power_w" not in f0 and f0["temp_c"] > 0 and f0["energy_j"] > 0
    assert "energy_j" not in f1 and f1["power_w"] > 0
    assert "processes" not in f0 and "processes" in health(recs, 0)["unsupported_fields"]
    assert "power_w: EXCEPTION TypeError" in health(recs, 0)["message"]
    uuid0 = agent.reader.gpus[0].uuid
    # nvidia-ml-py before 13 has no NVMLLibraryMismatchError: there the wrapper raises FUNCTION_NOT_FOUND
    mismatch = "LIBRARY_MISMATCH" if hasattr(nv, "NVMLLibraryMismatchError") else "FUNCTION_NOT_FOUND"
    assert reg.get_sample_value("dcim_gpu_agent_unsupported_field", {
        "gpu": "0", "uuid": uuid0, "node": "A01-n01", "field": "processes", "reason": mismatch}) == 1
    # a surprise outside any one field costs that GPU's poll, not the others' nor the agent's
    backend.raise_errors[(1, "nvmlDeviceGetMigMode")] = KeyError("x")
    agent.reader.gpus[1].planned = False
    real_plan = agent.reader._plan
    agent.reader._plan = lambda g: (_ for _ in ()).throw(ValueError("boom")) if g.index == 1 else real_plan(g)
    recs = agent.poll()
    assert gpu(recs, 0)["temp_c"] > 0 and health(recs, 1)["errors_total"] > 0
    assert "EXCEPTION ValueError" in health(recs, 1)["message"]


def test_untaggable_name_and_uuid_follow_the_documented_rule(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 3)
    gpus[0].model, gpus[0].uuid = "NVIDIA H100\n80GB\\", "GPU-1234\\"
    gpus[1].model, gpus[1].uuid = "  \t ", ""
    agent, _, _ = make_agent(gpus)
    agent.start()
    recs = agent.poll()
    back = list(decode(encode(recs)))  # would raise on a newline or a trailing backslash
    tags = {r.tags["gpu"]: r.tags for r in back if r.measurement == "gpu"}
    assert tags["0"]["model"] == "NVIDIA H100 80GB" and tags["0"]["uuid"] == "GPU-1234"
    assert tags["1"]["model"] == "unknown" and tags["1"]["uuid"] == f"GPU-unknown-{gpus[1].pci_bus_id}"
    assert all(validate(r, allow_extra_tags=False) == [] for r in back)
    assert tag_text(b"\xffok\x00", "x") == "\ufffdok_"


def test_all_gpus_lost_still_opens_and_shows_them_lost(make_agent) -> None:
    clock = Clock()
    gpus = synthetic_gpus("A01-n01", 2)
    agent, backend, _ = make_agent(gpus, monotonic=clock, reinit_backoff_initial_s=1.0)
    agent.start()
    agent.poll()
    for g in gpus:
        g.lost = True
    with pytest.raises(nv.NVMLError):  # the quirk: a plain nvmlInit fails when no GPU is usable
        SimNvml(gpus).nvmlInit()
    for _ in range(3):
        clock.t += 2
        recs = agent.poll()
    assert backend.init_flags[-1] & nv.NVML_INIT_FLAG_NO_GPUS and backend.init_count > 1
    assert [gpu(recs, i)["lost"] for i in (0, 1)] == [True, True]  # known GPUs do not vanish
    assert recs[-1].fields["up"] is True


def test_remapped_rows_hidden_only_while_mig_instances_exist(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 2)
    for g in gpus:
        g.mig_mode = True
        g.remapped_rows_correctable = 4
    agent, backend, reg = make_agent(gpus, {"mig_instances": {1: 3}})
    agent.start()
    recs = agent.poll()
    f0, f1 = gpu(recs, 0), gpu(recs, 1)
    assert f0["remapped_rows_correctable"] == 4 and "util_pct" not in f0  # MIG on, no instances
    assert "remapped_rows_correctable" not in f1
    assert "remapped_rows_correctable" in health(recs, 1)["message"] and health(recs, 1)["errors_total"] == 0
    backend.mig_instances[1] = 0  # instances destroyed, MIG mode still on: the rows are back
    assert gpu(agent.poll(), 1)["remapped_rows_correctable"] == 4


def test_gpm_profiling_metrics_on_hopper_and_none_elsewhere(make_agent) -> None:
    clock = Clock()
    gpus = synthetic_gpus("A01-n01", 2)
    gpus[1].model = "NVIDIA A100-SXM4-80GB"
    # GPU 0: a memory-bound job, a kernel always running (util 100) at low power
    gpus[0].util_pct, gpus[0].power_w, gpus[0].mem_util_pct = 100.0, 250.0, 90.0
    agent, _, reg = make_agent(gpus, monotonic=clock)
    agent.start()
    assert "sm_active_pct" not in gpu(agent.poll(), 0)  # GPM needs two samples
    clock.t += 1.0
    recs = agent.poll()
    f0, f1 = gpu(recs, 0), gpu(recs, 1)
    expected = gpm_activity(gpus[0])
    assert f0["sm_active_pct"] == pytest.approx(expected["sm"]) and f0["sm_active_pct"] < 50
    assert f0["tensor_active_pct"] == pytest.approx(expected["tensor"])
    assert f0["util_pct"] == 100.0
    assert (f0["activity_pct"], f0["activity_source"]) == (f0["sm_active_pct"], "gpm_sm_active")
    for g in GPM_READS:
        assert g.field not in f1, g.field
    assert (f1["activity_pct"], f1["activity_source"]) == (f1["util_pct"], "nvml_util")
    assert "sm_active_pct" in health(recs, 1)["unsupported_fields"]
    text = render(reg).decode()
    uuid0 = agent.reader.gpus[0].uuid
    [line] = [ln for ln in text.splitlines() if ln.startswith("DCGM_FI_PROF_SM_ACTIVE{")]
    assert uuid0 in line and float(line.rsplit(" ", 1)[1]) == pytest.approx(expected["sm"] / 100)
    assert "# TYPE DCGM_FI_PROF_PIPE_TENSOR_ACTIVE gauge" in text
    assert 'source="gpm_sm_active"' in text and 'source="nvml_util"' in text


def test_tidy_mode_still_available() -> None:
    backend = SimNvml(synthetic_gpus("A01-n01", 1), real_library=False)
    backend.nvmlInit()
    h = backend.nvmlDeviceGetHandleByIndex(0)
    raw = backend.nvmlDeviceGetFieldValues(h, [nv.NVML_FI_DEV_MEMORY_TEMP])
    assert raw[0].valueType == nv.NVML_VALUE_TYPE_UNSIGNED_INT and raw[0].value.uiVal == 50
    assert not isinstance(h, ctypes._Pointer)
    assert struct.calcsize("=Q") == 8


def test_the_hall_emits_the_same_activity_kpi_the_agent_reads_through_gpm(make_agent) -> None:
    from dcim.config import named_site
    from dcim.simulators.hall import Hall
    from dcim.simulators.nvml import node_gpus

    hall = Hall(named_site("h100-hall"), seed=5)
    hall.step(30.0)
    emitted = {r.tags["gpu"]: r.fields for r in hall.records(["gpu"])
               if r.measurement == "gpu" and r.tags["node"] == "A01-n02"}
    clock = Clock()
    agent, _, _ = make_agent(node_gpus(hall.state.gpus, "A01-n02"), monotonic=clock)
    agent.start()
    agent.poll()
    clock.t += 1.0
    recs = agent.poll()
    for i in range(8):
        f = gpu(recs, i)
        assert f["activity_source"] == emitted[str(i)]["activity_source"] == "gpm_sm_active"
        assert f["activity_pct"] == pytest.approx(emitted[str(i)]["activity_pct"], abs=0.01 + f["util_pct"] * 0.01)


def test_a_gpu_without_nvlink_ends_with_every_nvlink_field_unsupported_and_unasked(make_agent) -> None:
    gpus = synthetic_gpus("A01-n01", 1, model="NVIDIA L40S", tdp_w=350.0)
    agent, backend, _ = make_agent(gpus, {"nvlink_links": 0})
    agent.start()
    for _ in range(4):
        recs = agent.poll()
    nvlink = {"nvlink_tx_bytes_total", "nvlink_rx_bytes_total", "nvlink_tx_packets_total", "nvlink_symbol_errors_total"}
    assert nvlink <= set(health(recs, 0)["unsupported_fields"].split(","))
    asked = spy_field_ids(backend)
    f = gpu(agent.poll(), 0)
    assert not nvlink & set(f) and f["temp_c"] > 0
    assert not [i for call in asked for i in call if isinstance(i, tuple)]  # no NVLink id is asked any more


async def test_a_poll_that_raises_is_reported_and_the_run_loop_goes_on(make_agent) -> None:
    import asyncio

    from dcim.agents.gpu.agent import run_agent

    agent, _, _ = make_agent(synthetic_gpus("A01-n01", 1))
    agent.start()
    real = agent.poll
    calls = [0]

    def flaky():
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("a bug, not NVML")
        return real()

    agent.poll = flaky

    class Pub:
        messages: list = []
        depth = dropped = 0

        def publish(self, topic, payload):
            self.messages.append(payload)
            return True

    pub = Pub()
    assert await run_agent(agent, pub, topic="t", interval_s=0.01, stop=asyncio.Event(), polls=2) == 2
    first = list(decode(pub.messages[0].decode()))
    assert [r.measurement for r in first] == ["agent"] and first[0].fields["up"] is False
    assert "RuntimeError: a bug, not NVML" in first[0].fields["message"]
    assert any(r.measurement == "gpu" for r in decode(pub.messages[1].decode()))
