"""One row per GPU field (dcim.gpu_fields) drives four uses: the schema, the agent's NVML reads, its
/metrics names and the simulated GPU. These tests hold every use to the table, both ways."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from dcim import gpu_fields
from dcim.agents.gpu import fields as reads
from dcim.agents.gpu import metrics
from dcim.agents.gpu.agent import GpuAgent
from dcim.schema import GPU
from dcim.simulators.nvml import SimNvml, synthetic_gpus
from dcim.simulators.state import GpuState

ROWS = gpu_fields.GPU_FIELDS
TAGS = {"site": "dc1", "room": "hall1", "row": "A", "rack": "A01", "node": "A01-n01"}
#: What a simulated GPU holds that is not a reading: identity, model limits, what its driver queues.
GPU_STATE_NOT_FIELDS = {"node", "index", "uuid", "model", "serial", "pci_bus_id", "tdp_w", "memory_total_bytes",
                        "max_sm_clock_mhz", "xid_events", "unsupported"}


def test_the_schema_is_the_table() -> None:
    assert [(f.name, f.type, f.unit, f.description, f.kind) for f in GPU.fields.values()] == [
        (r.name, r.type, r.unit, r.description, r.kind) for r in ROWS]


def test_every_read_row_is_in_the_readers_plan_and_nothing_else() -> None:
    read = {r.name for r in ROWS if not isinstance(r.read, gpu_fields.Agent)}
    assert set(reads.all_read_fields()) == read
    assert len(reads.all_read_fields()) == len(read)
    assert set(reads.AGENT_FIELDS) == {r.name for r in ROWS if isinstance(r.read, gpu_fields.Agent)}
    by_field = {fr.field: fr for fr in reads.FIELD_READS}
    for r in ROWS:
        if isinstance(r.read, gpu_fields.FieldId):
            fr = by_field[r.name]
            assert (fr.field_id, fr.ctype, fr.scale, fr.type, fr.links, fr.mig) == (
                r.read.id, r.read.ctype, r.read.scale, r.type, r.read.links, r.read.mig), r.name
            assert (fr.fallback is None) == (r.read.fallback is None), r.name
        elif isinstance(r.read, gpu_fields.Call):
            [call] = [c for c in (*reads.CALL_READS, reads.MIG_MODE) if r.name in c.fields]
            assert (call.call, call.static, call.mig) == (r.read.call, r.read.static, r.read.mig), r.name
            assert (call.fallback is not None and r.name in call.fallback.fields) == (r.read.fallback is not None)


def test_every_metric_row_is_in_the_metrics_maps_and_nothing_else() -> None:
    dcgm = {r.name: r.metric for r in ROWS if r.metric is not None and r.metric.dcgm}
    assert metrics.DCGM == dcgm
    own = {r.name: r.metric for r in ROWS if r.metric is not None and not r.metric.dcgm}
    assert metrics.OWN | {"lost": own["lost"]} == own
    assert all(v.type in ("gauge", "counter") for v in (*metrics.DCGM.values(), *metrics.OWN.values()))


def test_the_simulator_has_no_gpu_field_the_table_lacks() -> None:
    state = {f.name for f in dataclasses.fields(GpuState)} - GPU_STATE_NOT_FIELDS
    names = {r.name for r in ROWS}
    assert state <= names, sorted(state - names)
    assert {r.name for r in ROWS if r.sim} == state
    from tests.simulators.helpers import hall_for

    emitted = {k for rec in hall_for("gpu-lost").records(["gpu"]) for k in rec.fields}
    assert emitted <= names, sorted(emitted - names)


def _values(gpu: GpuState) -> dict[str, object]:
    """A distinct value for every field the simulated GPU holds; NVML's units round-trip them exactly."""
    want: dict[str, object] = {}
    for i, r in enumerate(ROWS):
        if not r.sim:
            continue
        if r.type == "bool":
            value: object = r.name not in ("lost", "mig_mode")  # lost or MIG would hide the others
        elif r.unit == "B":
            value = (10 + i) * 1024  # NVLink throughput is read in KiB
        else:
            value = 10 + i
        setattr(gpu, r.name, float(value) if r.type == "float" else value)
        want[r.name] = value
    return want


def _run(gpus: list[GpuState], polls: int) -> tuple[dict[int, dict], str]:
    clock = [100.0]
    reg = CollectorRegistry()
    agent = GpuAgent(SimNvml(gpus), tags=TAGS, registry=reg, xid_timeout_ms=20, monotonic=lambda: clock[0])
    agent.start()
    try:
        gpus[0].xid_events.append((48, 1_767_225_600.0))
        deadline = time.monotonic() + 5
        while agent.xids.summary(agent.reader.gpus[0].uuid).total < 1:
            assert time.monotonic() < deadline, "the XID never arrived"
            time.sleep(0.01)
        for _ in range(polls):
            clock[0] += 1.0
            records = agent.poll()
        out = {int(r.tags["gpu"]): dict(r.fields) for r in records if r.measurement == "gpu"}
        return out, metrics.render(reg).decode()
    finally:
        agent.close()


def test_every_row_comes_from_the_simulated_gpu_to_a_record_and_onto_metrics() -> None:
    hopper = synthetic_gpus("A01-n01", 1)[0]
    blackwell = synthetic_gpus("A01-n01", 2, model="NVIDIA GB200", tdp_w=1200.0)[1]
    want = _values(hopper)
    got, text = _run([hopper, blackwell], polls=3)  # GPM from the second poll, NVLink5 from the third
    # the value each simulated field holds is the value the agent reads, through NVML's own units
    for name, value in want.items():
        assert got[0][name] == pytest.approx(value), name
    # every row is answered: on Hopper, or (NVLink5) on Blackwell
    seen = set(got[0]) | set(got[1])
    assert {r.name for r in ROWS} == seen, sorted({r.name for r in ROWS} - seen)
    # and every row with a /metrics name is on the scrape under it
    samples = {(s.name, s.labels.get("reason")) for fam in text_string_to_metric_families(text) for s in fam.samples}
    names = {n for n, _ in samples}
    for r in ROWS:
        if r.metric is None:
            continue
        if r.metric.label is not None:
            assert (r.metric.name, r.metric.label[1]) in samples, r.name
        else:
            assert r.metric.name in names or r.metric.name + "_total" in names, r.name


_CHANGE_ONE_ROW = r"""
import dataclasses, json
from dcim import gpu_fields
i = next(i for i, r in enumerate(gpu_fields.GPU_FIELDS) if r.name == "mem_temp_c")
row = gpu_fields.GPU_FIELDS[i]
new = dataclasses.replace(row, name="hbm_temp_c", read=dataclasses.replace(row.read, scale=0.5),
                          metric=dataclasses.replace(row.metric, name="DCGM_FI_DEV_HBM_TEMP"))
gpu_fields.GPU_FIELDS = (*gpu_fields.GPU_FIELDS[:i], new, *gpu_fields.GPU_FIELDS[i + 1:])
from dcim import schema
from dcim.agents.gpu import fields, metrics
from dcim.simulators import nvml
[fr] = [f for f in fields.FIELD_READS if f.field_id == row.read.id]
print(json.dumps({
    "schema": ["hbm_temp_c" in schema.GPU.fields, "mem_temp_c" in schema.GPU.fields],
    "reader": [fr.field, fr.scale],
    "metrics": metrics.DCGM["hbm_temp_c"].name,
    "simulator": list(nvml._FIELDS[row.read.id][:2]),
}))
"""


def test_changing_one_row_changes_all_four_uses() -> None:
    out = subprocess.run([sys.executable, "-c", _CHANGE_ONE_ROW], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {
        "schema": [True, False],
        "reader": ["hbm_temp_c", 0.5],
        "metrics": "DCGM_FI_DEV_HBM_TEMP",
        "simulator": ["hbm_temp_c", 2],
    }
