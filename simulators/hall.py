"""The simulated data hall: its physics, the state objects the simulated devices read, and its line protocol.

Physics lives in arrays (``physics.HallPhysics``); the ``GpuState`` / ``PduState`` / ``LoopState``
objects are refreshed from them whenever ``hall.state`` is read (``step`` does that), so a bulk run
that only writes line protocol (``advance`` + ``lines``) never pays for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dcim.config import SiteConfig
from dcim.record import Record
from dcim.simulators import scenarios as sc
from dcim.simulators.emit import Emitter
from dcim.simulators.nvml import SimNvml, node_gpus, synthetic_gpus
from dcim.simulators.objects import StateObjects
from dcim.simulators.physics import HallPhysics, Params
from dcim.simulators.state import HallState


class Hall(HallPhysics):
    """A deterministic, seeded model of a GPU hall; see the module docstring for the two ways to run it."""

    def __init__(
        self,
        site: SiteConfig,
        *,
        seed: int = 42,
        scenario: sc.Scenario | None = None,
        start_ns: int | None = None,
        params: Params | None = None,
    ) -> None:
        super().__init__(site, seed=seed, scenario=scenario, start_ns=start_ns, params=params)
        self.objects = StateObjects(self)
        self._emitter = Emitter(self, self.objects.gpus)
        self._objects_out = False  # the objects were handed out: changes on them are pulled back
        self._dirty = True  # the arrays moved since the objects were last refreshed
        self._deliver_xids()

    def advance(self, dt_s: float = 1.0) -> None:
        """Move the model on by ``dt_s`` simulated seconds without refreshing the state objects."""
        if self._objects_out:
            self.objects.pull(self)
        if not self._dirty:
            self.objects.state.events = []
        super().advance(dt_s)
        self._deliver_xids()
        self._dirty = True

    def step(self, dt_s: float = 1.0) -> HallState:
        """Advance by ``dt_s`` and return the refreshed state (its ``events``: those of this step)."""
        self.advance(dt_s)
        return self.state

    @property
    def state(self) -> HallState:
        """The current state; the objects are refreshed from the arrays when read after a step."""
        if self._dirty:
            self.objects.sync(self)
            self._dirty = False
        self._objects_out = True
        return self.objects.state

    def lines(self, measurements: Iterable[str] | None = None) -> str:
        """Line protocol (ns precision) of every domain (or only ``measurements``) for the current state."""
        return self._emitter.lines(measurements)

    def records(self, measurements: Iterable[str] | None = None) -> list[Record]:
        """The same points as ``lines`` as records, in the same order."""
        return self._emitter.records(measurements)

    def _deliver_xids(self) -> None:
        # queued on the GPU at once, as a driver does: the simulated NVML's event wait hands them out
        for gi, code, t_unix in self.take_xids():
            self.objects.gpus[gi].xid_events.append((code, t_unix))


def backend_for_node(site: Any, node: str, *, seed: int = 42, scenario: str | None = None) -> SimNvml:
    """A SimNvml for ``node`` of ``site``, driven by a hall of that site; synthetic GPUs for a node without any."""
    hall = Hall(site, seed=seed, scenario=sc.load_scenario(scenario) if scenario else None)
    gpus = node_gpus(hall.state.gpus, node)
    if gpus:
        return SimNvml(gpus, step=hall.step)
    count = 8
    for rack in site.racks():
        for n in rack.nodes:
            if n.name == node:
                count = n.gpus
    return SimNvml(synthetic_gpus(node, count, seed=seed))
