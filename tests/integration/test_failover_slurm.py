"""Alert actions against a real Slurm: slurmctld, one slurmd per node of the simulated hall, munge, on loopback.

The live observer runs the default rule pack over records of the hall; the Slurm driver drains and
resumes through ``scontrol`` and each test reads the node states back from the controller.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from dcim.alerts.actions import make_runner
from dcim.alerts.engine import Engine
from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rules
from dcim.alerts.live import LiveObserver
from dcim.config import ActionDriverConfig, ActionsConfig, SiteConfig, named_site
from dcim.record import Record
from tests.servers import HarnessError, MissingBinaryError, SlurmCluster

NS = 1_000_000_000
T0 = 1_790_000_000 * NS  # event time of the scenario; the engine never reads the wall clock


def _nodes(site: SiteConfig) -> list[str]:
    return [n.name for _room, _row, rack in site.locations() for n in rack.nodes]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    try:
        cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), _nodes(named_site("h100-hall")))
    except MissingBinaryError as exc:
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail(f"CI=true and a server is missing: {exc}", pytrace=False)
        pytest.skip(str(exc))
    try:
        cluster.start()
    except (HarnessError, TimeoutError):
        cluster.close()
        raise
    yield cluster
    cluster.close()


@pytest.fixture
def cluster(slurm: SlurmCluster) -> Iterator[SlurmCluster]:
    slurm.reset()
    yield slurm
    slurm.reset()


class Hall:
    """The live observer with actions on, fed one batch per second of event time."""

    def __init__(self, conf: Path, share: float) -> None:
        self.site = named_site("h100-hall")
        self.site.alerts.actions = ActionsConfig(
            enabled=True, max_drained_share=share,
            drivers=[ActionDriverConfig(kind="slurm", slurm_conf=conf)])
        rules = load_rules([DEFAULT_RULES_DIR])
        self.registry = CollectorRegistry()
        runner = make_runner(rules, self.site, registry=self.registry)
        assert runner is not None
        self.runner = runner
        self.observer = LiveObserver(Engine(rules, site=self.site), [], ticker=False, actions=runner)
        self.records: list[Record] = []
        self.gpus = {("A01-n01", "0"), ("B02-n03", "1")}
        self.t = T0

    def step(self, *, lost: set[tuple[str, str]] = frozenset(), flow_share: dict[str, float] | None = None,
             seconds: int = 1) -> list[Record]:
        out = []
        for _ in range(seconds):
            self.gpus |= lost  # a GPU that was lost keeps reporting once it is back
            recs = [Record("gpu", {"rack": node[:3], "node": node, "gpu": gpu}, {"lost": (node, gpu) in lost}, self.t)
                    for node, gpu in sorted(self.gpus)]
            for loop in self.site.loops:
                share = (flow_share or {}).get(loop.name, 1.0)
                recs.append(Record("coolant_loop", self.site.loop_tags(loop),
                                   {"flow_lpm": loop.nominal_flow_lpm * share}, self.t))
            out += self.observer.observe(recs)
            self.t += NS
        assert self.observer.flush(30)
        out += self.observer.observe([])  # the drivers' outcomes come with the next batch
        self.records += out
        return out

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def close(self) -> None:
        self.observer.close()


@pytest.fixture
def hall(cluster: SlurmCluster) -> Iterator[Hall]:
    h = Hall(cluster.conf, share=0.5)
    yield h
    h.close()


def drained(cluster: SlurmCluster) -> set[str]:
    return {n for n, st in cluster.states().items() if "DRAIN" in st}


def test_gpu_lost_drains_exactly_its_node_within_one_evaluation_and_recovery_resumes(cluster, hall):
    hall.step(seconds=3)
    assert drained(cluster) == set()
    # The sample saying the GPU is lost arrives; the next batch crosses the next evaluation boundary.
    recs = hall.step(lost={("A02-n03", "5")}, seconds=2)
    assert drained(cluster) == {"A02-n03"}
    node = cluster.scontrol("show", "node", "-o", "A02-n03")
    assert "Reason=dcim GpuLost " in node and "GPU 5 on A02-n03 fell off the bus" in node
    acts = [r for r in recs if r.measurement == "alert_action"]
    assert [(r.tags["action"], r.tags["node"], r.tags["status"]) for r in acts] == [
        ("drain", "A02-n03", "planned"), ("drain", "A02-n03", "done")]
    alert = next(r for r in recs if r.measurement == "alert" and r.fields["state"] == "firing")
    assert alert.tags["alertname"] == "GpuLost"
    # Planned at the evaluation that fired the alert: the boundary of the first sample saying "lost".
    assert acts[0].time_ns == alert.time_ns == T0 + 3 * NS
    assert hall.metric("dcim_actions_taken_total", action="drain", driver="slurm") == 1

    hall.step(lost={("A02-n03", "5")}, seconds=3)  # still lost: no second drain (idempotent)
    assert hall.metric("dcim_actions_taken_total", action="drain", driver="slurm") == 1

    recs = hall.step(seconds=2)  # NVML sees the GPU again
    assert drained(cluster) == set()
    assert [(r.tags["action"], r.tags["status"]) for r in recs if r.measurement == "alert_action"] == [
        ("resume", "planned"), ("resume", "done")]
    assert hall.metric("dcim_actions_taken_total", action="resume", driver="slurm") == 1


def test_loop_failure_drains_every_node_the_loop_cools(cluster, hall):
    hall.step(seconds=2)
    # LoopFlowLow: below 70 % of nominal flow for 10 s.
    hall.step(flow_share={"loop-a": 0.3}, seconds=13)
    loop_a = {n for n in _nodes(hall.site) if n.startswith("A")}
    assert len(loop_a) == 16
    assert drained(cluster) == loop_a
    hall.step(seconds=45)  # clears at 80 %, kept firing 30 s
    assert drained(cluster) == set()


def test_share_limit_holds_under_a_hall_wide_sensor_fault(cluster):
    h = Hall(cluster.conf, share=0.25)
    try:
        h.step(seconds=2)
        # Every loop's flow meter reads zero at once: a sensor or gateway fault, not 32 failures.
        h.step(flow_share={"loop-a": 0.0, "loop-b": 0.0}, seconds=15)
        out = drained(cluster)
        assert len(out) == 8 == h.runner.planner.limit  # 25 % of 32 nodes
        assert h.metric("dcim_actions_suppressed_total", action="drain") == 24
        assert h.metric("dcim_actions_nodes_out") == 8
        h.step(seconds=45)
        assert drained(cluster) == set()
    finally:
        h.close()


def test_an_operators_drain_is_left_alone(cluster, hall):
    cluster.scontrol("update", "nodename=B01-n02", "state=drain", "reason=bad DIMM, ticket 4711")
    hall.step(seconds=2)
    hall.step(lost={("B01-n02", "0")}, seconds=2)
    recs = hall.step(seconds=2)
    node = cluster.scontrol("show", "node", "-o", "B01-n02")
    assert "DRAIN" in node and "Reason=bad DIMM, ticket 4711" in node
    done = [r for r in recs if r.measurement == "alert_action" and r.tags["status"] == "done"]
    assert [r.tags["action"] for r in done] == ["resume"]
    assert "someone else" in done[0].fields["detail"]
