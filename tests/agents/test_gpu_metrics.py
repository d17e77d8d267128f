"""/metrics as a drop-in for dcgm-exporter: the names and types of its default counters, their units, the XID gauge."""

from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from dcim.agents.gpu.agent import GpuAgent
from dcim.agents.gpu.metrics import CONTENT_TYPE, render, serve_gpu_metrics
from dcim.simulators.nvml import SimNvml, synthetic_gpus

TAGS = {"site": "dc1", "room": "hall1", "row": "A", "rack": "A01", "node": "A01-n01"}

# The enabled (uncommented) rows of NVIDIA/dcgm-exporter etc/default-counters.csv at commit
# b54068a9feef589e07fc36c22642ad4bb61f6420: DCGM field, Prometheus type, unit from its help text.
DEFAULT_COUNTERS_CSV = """\
DCGM_FI_DEV_SM_CLOCK,  gauge, SM clock frequency (in MHz).
DCGM_FI_DEV_MEM_CLOCK, gauge, Memory clock frequency (in MHz).
DCGM_FI_DEV_MEMORY_TEMP, gauge, Memory temperature (in C).
DCGM_FI_DEV_GPU_TEMP,    gauge, GPU temperature (in C).
DCGM_FI_DEV_POWER_USAGE,              gauge, Power draw (in W).
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, counter, Total energy consumption since boot (in mJ).
DCGM_FI_DEV_PCIE_TX_THROUGHPUT,  counter, Total number of bytes transmitted through PCIe TX (in KB) via NVML.
DCGM_FI_DEV_PCIE_RX_THROUGHPUT,  counter, Total number of bytes received through PCIe RX (in KB) via NVML.
DCGM_FI_DEV_PCIE_REPLAY_COUNTER, counter, Total number of PCIe retries.
DCGM_FI_DEV_GPU_UTIL,      gauge, GPU utilization (in %).
DCGM_FI_DEV_MEM_COPY_UTIL, gauge, Memory utilization (in %).
DCGM_FI_DEV_ENC_UTIL,      gauge, Encoder utilization (in %).
DCGM_FI_DEV_DEC_UTIL ,     gauge, Decoder utilization (in %).
DCGM_FI_DEV_XID_ERRORS,            gauge,   Value of the last XID error encountered.
DCGM_FI_DEV_FB_FREE, gauge, Framebuffer memory free (in MiB).
DCGM_FI_DEV_FB_USED, gauge, Framebuffer memory used (in MiB).
DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL,            counter, Total number of NVLink bandwidth counters for all lanes
DCGM_FI_DEV_VGPU_LICENSE_STATUS, gauge, vGPU License status
DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS, counter, Number of remapped rows for uncorrectable errors
DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS,   counter, Number of remapped rows for correctable errors
DCGM_FI_DEV_ROW_REMAP_FAILURE,           gauge,   Whether remapping of rows has failed
"""
# Later revisions of the same file add these (and DCGM_FI_DRIVER_VERSION as a label, which every
# sample here carries): DCGM field names from DCGM's dcgm_fields.h, all gauges.
LATER_DEFAULTS = {
    "DCGM_FI_DEV_FB_RESERVED": "gauge", "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "gauge",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": "gauge", "DCGM_FI_PROF_DRAM_ACTIVE": "gauge",
    "DCGM_FI_PROF_PCIE_TX_BYTES": "gauge", "DCGM_FI_PROF_PCIE_RX_BYTES": "gauge",
}
# What dcgm-exporter itself shows none of on a bare-metal GPU, and so neither does the agent:
# PCIe throughput fields DCGM answers NOT_SUPPORTED (DCGM 4.x) and dcgm-exporter drops, and the
# vGPU licence status, which only a vGPU guest has.
NOT_ON_BARE_METAL = {"DCGM_FI_DEV_PCIE_TX_THROUGHPUT", "DCGM_FI_DEV_PCIE_RX_THROUGHPUT",
                     "DCGM_FI_DEV_VGPU_LICENSE_STATUS"}


def csv_table() -> dict[str, str]:
    rows = [line.split(",", 2) for line in DEFAULT_COUNTERS_CSV.splitlines()]
    return {name.strip(): typ.strip() for name, typ, _ in rows}


def exposition(gpus, *, polls: int = 2, xid: tuple[int, int] | None = None) -> tuple[str, GpuAgent]:
    clock = [100.0]
    reg = CollectorRegistry()
    agent = GpuAgent(SimNvml(gpus), tags=TAGS, registry=reg, xid_timeout_ms=20, monotonic=lambda: clock[0])
    agent.start()
    try:
        if xid is not None:
            gpus[xid[0]].xid_events.append((xid[1], 0.0))
            deadline = time.monotonic() + 5
            while agent.xids.summary(agent.reader.gpus[xid[0]].uuid).total < 1:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        for _ in range(polls):
            clock[0] += 1.0
            agent.poll()
        return render(reg).decode(), agent
    finally:
        agent.close()


def types_of(text: str) -> dict[str, str]:
    return {ln.split()[2]: ln.split()[3] for ln in text.splitlines() if ln.startswith("# TYPE ")}


def samples(text: str, name: str) -> list[float]:
    return [float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(name + "{")]


def test_every_default_counter_with_dcgm_exporters_name_and_type() -> None:
    table = csv_table()
    assert len(table) == 21
    text, _ = exposition(synthetic_gpus("A01-n01", 2))
    types = types_of(text)
    for name, typ in {**table, **LATER_DEFAULTS}.items():
        if name in NOT_ON_BARE_METAL:
            assert name not in types, name
            continue
        assert types.get(name) == typ, name
        assert len(samples(text, name)) == 2, name  # one per GPU, under the exact name (no _total)
    # Every sample carries dcgm-exporter's labels, the driver version among them.
    line = next(ln for ln in text.splitlines() if ln.startswith("DCGM_FI_DEV_GPU_TEMP{"))
    for label in ("gpu=", "UUID=", "pci_bus_id=", "device=", "modelName=", "Hostname=", "hostname=",
                  "DCGM_FI_DRIVER_VERSION="):
        assert label in line, label
    # and the text parses as the Prometheus format
    assert {f.name for f in text_string_to_metric_families(text)} >= {"DCGM_FI_DEV_GPU_TEMP"}


def test_units_are_dcgm_exporters() -> None:
    gpus = synthetic_gpus("A01-n01", 1)
    g = gpus[0]
    g.energy_j, g.mem_used_bytes, g.mem_reserved_bytes = 1234.5, 10 * 1024**3, 256 * 1024**2
    g.nvlink_tx_bytes_total, g.nvlink_rx_bytes_total = 3 * 1024**3, 1024**3
    text, _ = exposition(gpus)
    assert samples(text, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION") == [1234500.0]  # mJ
    assert samples(text, "DCGM_FI_DEV_FB_USED") == [10 * 1024.0]  # MiB
    assert samples(text, "DCGM_FI_DEV_FB_RESERVED") == [256.0]
    assert samples(text, "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL") == [4 * 1024**2]  # KiB, both directions
    assert samples(text, "DCGM_FI_DEV_POWER_USAGE") == [g.power_w]  # W
    tensor = samples(text, "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE")[0]
    assert 0 < tensor < 1  # a ratio, as DCGM's profiling fields


def test_xid_gauge_is_0_before_any_xid_then_the_last_code() -> None:
    gpus = synthetic_gpus("A01-n01", 2)
    text, _ = exposition(gpus)
    assert samples(text, "DCGM_FI_DEV_XID_ERRORS") == [0.0, 0.0]
    text, _ = exposition(synthetic_gpus("A01-n01", 2), xid=(1, 48))
    assert samples(text, "DCGM_FI_DEV_XID_ERRORS") == [0.0, 48.0]


def test_xid_gauge_absent_where_events_cannot_be_registered() -> None:
    gpus = synthetic_gpus("A01-n01", 2)
    gpus[0].unsupported = {"xid_total"}
    text, _ = exposition(gpus)
    assert len(samples(text, "DCGM_FI_DEV_XID_ERRORS")) == 1  # "no data" there, never a fake 0


def test_the_server_speaks_the_0_0_4_text_format_even_when_asked_for_openmetrics() -> None:
    reg = CollectorRegistry()
    agent = GpuAgent(SimNvml(synthetic_gpus("A01-n01", 1)), tags=TAGS, registry=reg, xid_events=False)
    agent.start()
    agent.poll()
    server = serve_gpu_metrics(reg, "127.0.0.1", 0)
    try:
        req = urllib.request.Request(server.url, headers={"Accept": "application/openmetrics-text;version=1.0.0"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.headers["Content-Type"] == CONTENT_TYPE
            body = resp.read().decode()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(server.url.replace("/metrics", "/nope"), timeout=5)
    finally:
        server.close()
        agent.close()
    assert "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n" in body
    assert "# EOF" not in body
