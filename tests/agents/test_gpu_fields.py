"""GPU agent on the simulated NVML: every field, its unit conversion, its type, and the records' shape."""

from __future__ import annotations

import pynvml as nv
import pytest
from prometheus_client import CollectorRegistry

from dcim.agents.gpu.agent import GpuAgent
from dcim.agents.gpu.fields import AGENT_FIELDS, CALL_READS, FIELD_READS, GPM_READS, MIG_MODE, all_read_fields
from dcim.lineprotocol.encode import encode
from dcim.lineprotocol.decode import decode
from dcim.schema import GPU, validate
from dcim.simulators.nvml import SimNvml, synthetic_gpus

TAGS = {"site": "dc1", "room": "hall1", "row": "A", "rack": "A01", "node": "A01-n01"}


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


def gpu_fields(records, index: int) -> dict:
    [rec] = [r for r in records if r.measurement == "gpu" and r.tags["gpu"] == str(index)]
    return rec.fields


def test_table_covers_every_schema_field_once() -> None:
    names = all_read_fields() + list(AGENT_FIELDS)
    assert len(names) == len(set(names))
    assert set(names) == set(GPU.fields)


def test_every_field_with_its_unit_conversion(make_agent) -> None:
    g = synthetic_gpus("A01-n01", 1)[0]
    g.fan_pct = 37.0
    g.power_w, g.power_instant_w = 412.345, 498.765
    g.power_limit_w, g.power_limit_default_w = 650.0, 700.0
    g.energy_j = 123456.789
    g.temp_c, g.mem_temp_c = 71.0, 78.0
    g.sm_clock_mhz, g.mem_clock_mhz = 1410.0, 2619.0
    g.util_pct, g.mem_util_pct, g.enc_util_pct, g.dec_util_pct = 97.0, 41.0, 3.0, 5.0
    g.mem_used_bytes, g.mem_reserved_bytes = 70 * 1024**3, 600 * 1024**2
    g.processes = 3
    g.clock_event_mask = nv.nvmlClocksEventReasonSwPowerCap | nv.nvmlClocksEventReasonHwThermalSlowdown
    g.violation_power_s, g.violation_thermal_s = 2.5, 0.75
    g.ecc_sbe_volatile_total, g.ecc_dbe_volatile_total, g.ecc_sbe_aggregate_total, g.ecc_dbe_aggregate_total = 11, 1, 120, 2
    g.retired_pages_sbe, g.retired_pages_dbe, g.retired_pages_pending = 4, 1, True
    g.remapped_rows_correctable, g.remapped_rows_uncorrectable = 6, 2
    g.remapped_rows_pending, g.remapped_rows_failure = True, False
    g.pcie_replay_total = 17
    g.nvlink_tx_bytes_total, g.nvlink_rx_bytes_total = 5 * 1024**4 + 1024 * 7, 3 * 1024**4
    g.nvlink_crc_flit_errors_total, g.nvlink_crc_data_errors_total, g.nvlink_replay_errors_total, g.nvlink_recovery_errors_total = 1, 2, 3, 4
    g.pstate = 2
    agent, _, _ = make_agent([g])
    agent.start()
    f = gpu_fields(agent.poll(), 0)
    expected = {
        "temp_c": 71.0, "mem_temp_c": 78.0, "power_w": 412.345, "power_instant_w": 498.765,
        "energy_j": 123456.789, "power_limit_w": 650.0, "power_limit_default_w": 700.0,
        "sm_clock_mhz": 1410.0, "mem_clock_mhz": 2619.0, "util_pct": 97.0, "mem_util_pct": 41.0,
        "enc_util_pct": 3.0, "dec_util_pct": 5.0, "mem_used_bytes": 70 * 1024**3,
        "mem_reserved_bytes": 600 * 1024**2, "mem_free_bytes": 80 * 1024**3 - 70 * 1024**3 - 600 * 1024**2,
        "processes": 3, "clock_event_mask": 0x44, "throttle_sw_power_cap": True, "throttle_hw_thermal": True,
        "throttle_gpu_idle": False, "throttle_clocks_setting": False, "throttle_hw_slowdown": False,
        "throttle_sync_boost": False, "throttle_sw_thermal": False, "throttle_hw_power_brake": False,
        "throttle_display_clocks": False, "violation_power_s": 2.5, "violation_thermal_s": 0.75,
        "ecc_sbe_volatile_total": 11, "ecc_dbe_volatile_total": 1, "ecc_sbe_aggregate_total": 120,
        "ecc_dbe_aggregate_total": 2, "retired_pages_sbe": 4, "retired_pages_dbe": 1,
        "retired_pages_pending": True, "remapped_rows_correctable": 6, "remapped_rows_uncorrectable": 2,
        "remapped_rows_pending": True, "remapped_rows_failure": False, "pcie_replay_total": 17,
        "nvlink_tx_bytes_total": 5 * 1024**4 + 1024 * 7, "nvlink_rx_bytes_total": 3 * 1024**4,
        "nvlink_crc_flit_errors_total": 1, "nvlink_crc_data_errors_total": 2, "nvlink_replay_errors_total": 3,
        "nvlink_recovery_errors_total": 4, "fan_pct": 37.0, "pstate": 2, "temp_slowdown_c": 87.0,
        "temp_shutdown_c": 92.0, "temp_max_operating_c": 85.0, "mem_temp_max_c": 95.0, "mig_mode": False,
        "lost": False, "xid_total": 0, "mem_info_version": 2, "activity_pct": 97.0, "activity_source": "nvml_util",
    }
    for name, value in expected.items():
        assert f[name] == pytest.approx(value), name
        assert type(f[name]) is type(value), name
    # Absent: xid_last / xid_last_time_s (no XID has happened, so there is no "last" one), the
    # NVLink5 counters (a Hopper GPU answers NOT_SUPPORTED) and GPM, which needs a second sample.
    nvlink5 = {r.field for r in FIELD_READS if 201 <= r.field_id <= 222}
    assert len(nvlink5) == 14
    assert set(GPU.fields) - set(f) == {"xid_last", "xid_last_time_s"} | nvlink5 | {g.field for g in GPM_READS}


def test_records_fit_the_schema_and_round_trip_as_line_protocol(make_agent) -> None:
    agent, _, _ = make_agent(synthetic_gpus("A01-n01", 8))
    agent.start()
    records = agent.poll()
    assert [r.measurement for r in records].count("gpu") == 8
    assert [r.measurement for r in records].count("agent") == 9
    for r in records:
        assert validate(r, allow_extra_tags=False) == [], r
    back = list(decode(encode(records)))
    assert [(r.measurement, r.tags, r.fields) for r in back] == [(r.measurement, r.tags, r.fields) for r in records]
    gpu0 = records[0]
    assert gpu0.tags == {**TAGS, "gpu": "0", "uuid": agent.reader.gpus[0].uuid, "model": "NVIDIA H100 80GB HBM3"}


def test_field_values_are_batched_in_one_call_per_gpu(make_agent) -> None:
    calls: list[str] = []
    agent, backend, _ = make_agent(synthetic_gpus("A01-n01", 2))
    agent.start()
    agent.poll()  # the first polls also read the static limits and find what the GPU lacks: a
    agent.poll()  # Hopper answers no NVLink5 counter, summed or per link (which needs the link count)

    class Recording:
        def __getattr__(self, name):
            fn = getattr(backend, name)

            def wrapper(*a, **k):
                calls.append(name)
                return fn(*a, **k)
            return wrapper

    agent.reader.nvml = Recording()
    agent.poll()
    per_gpu = len(calls) / 2
    assert calls.count("nvmlDeviceGetFieldValues") == 2
    # MIG mode + one batch + the per-poll calls; static limits and the fan of a liquid-cooled GPU
    # (NOT_SUPPORTED on the first poll) are not asked again.
    assert per_gpu == 1 + 1 + len([c for c in CALL_READS if not c.static]) - 1
    assert "nvmlDeviceGetFanSpeed" not in calls
    assert "nvmlDeviceGetTemperatureThreshold" not in calls
    assert "nvmlDeviceGetPowerManagementDefaultLimit" not in calls
    assert MIG_MODE.call in calls
    assert len(FIELD_READS) > 15


def test_field_value_decoding_fast_path_matches_pynvml_attributes() -> None:
    from dcim.agents.gpu.reader import decode_value, entries

    raw = (nv.c_nvmlFieldValue_t * 5)()
    specs = [
        (nv.NVML_VALUE_TYPE_DOUBLE, "dVal", 41.5, "f64"),
        (nv.NVML_VALUE_TYPE_UNSIGNED_INT, "uiVal", 4_000_000_000, "u32"),
        (nv.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG, "ullVal", 2**63 + 5, "u64"),
        (nv.NVML_VALUE_TYPE_SIGNED_LONG_LONG, "sllVal", -7, "s64"),
    ]
    for v, (vtype, attr, value, _) in zip(raw, specs):
        v.valueType = vtype
        v.nvmlReturn = nv.NVML_SUCCESS
        v.timestamp = 1
        setattr(v.value, attr, value)
    raw[4].nvmlReturn = nv.NVML_ERROR_NOT_SUPPORTED
    fast, slow = entries(raw), entries(list(raw))  # the struct fast path, and the attribute path
    assert fast == slow
    assert [decode_value(c, e.value_type, e.raw) for e, (*_, c) in zip(fast, specs)] == [41.5, 4_000_000_000,
                                                                                          2**63 + 5, -7]
    assert fast[4].rc == nv.NVML_ERROR_NOT_SUPPORTED and fast[0].timestamp_us == 1


def test_decoding_by_real_type_not_by_label() -> None:
    """nvbug 4300930 / 2032468: integer bits under a DOUBLE label; a fixed driver's true double still reads."""
    import struct

    from dcim.agents.gpu.reader import decode_value

    assert decode_value("u32", nv.NVML_VALUE_TYPE_DOUBLE, struct.pack("=Q", 51)) == 51  # not 2.5e-322
    assert struct.unpack("=d", struct.pack("=Q", 51))[0] < 1e-300  # what a decoder by label would report
    assert decode_value("u32", nv.NVML_VALUE_TYPE_DOUBLE, struct.pack("=d", 51.0)) == 51
    assert decode_value("u64", nv.NVML_VALUE_TYPE_UNSIGNED_INT, struct.pack("=Q", 2**40 + 3)) == 2**40 + 3


def test_constants_taken_from_nvml_h_match_the_binding_where_it_has_them() -> None:
    """Older nvidia-ml-py releases lack some names; the values the agent uses instead are nvml.h's."""
    from dcim import gpu_fields
    from dcim.agents.gpu import fields

    ids = {}
    for row in gpu_fields.GPU_FIELDS:
        f = row.read
        while isinstance(f, gpu_fields.FieldId):
            ids[f.name] = f.id
            f = f.fallback
    expected = {"NVML_VALUE_TYPE_UNSIGNED_SHORT": 6, "NVML_INIT_FLAG_NO_GPUS": 1, **ids}
    assert expected["NVML_FI_DEV_NVLINK_COUNT_XMIT_BYTES"] == 202 and expected["NVML_FI_DEV_NVLINK_COUNT_RCV_BYTES"] == 204
    for name, value in expected.items():
        if hasattr(nv, name):
            assert getattr(nv, name) == value, name
    assert fields.VALUE_TYPE_UNSIGNED_SHORT == 6 and fields.INIT_FLAG_NO_GPUS == 1
    nvlink5 = sorted(r.field_id for r in FIELD_READS if r.field.startswith("nvlink") and 201 <= r.field_id <= 222)
    assert nvlink5 == [201, 203, *range(206, 216), 219, 221]
