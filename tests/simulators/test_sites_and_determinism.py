"""Generated halls and the seeded determinism of the model."""

from __future__ import annotations

import numpy as np
import pytest

from dcim.simulators.hall import Hall
from dcim.simulators.scenarios import load_scenario
from dcim.sites import make_site
from tests.simulators.helpers import hall_for


def test_make_site_builds_the_1024_gpu_benchmark_hall():
    site = make_site(32)
    racks = list(site.racks())
    assert len(racks) == 32
    assert sum(n.gpus for r in racks for n in r.nodes) == 1024
    assert len(site.loops) == 8 and all(len(lp.racks) == 4 for lp in site.loops)
    assert {r.name for r in racks} == {r for lp in site.loops for r in lp.racks}
    assert [row.name for row in site.rooms[0].rows] == ["A", "B", "C", "D"]
    hall = Hall(site)
    assert hall.n_gpus == 1024 and hall.n_pdus == 64 and hall.n_outlets == 64 * 24


def test_make_site_odd_sizes():
    site = make_site(5, nodes_per_rack=2, gpus_per_node=4, racks_per_loop=2, racks_per_row=3)
    assert [len(lp.racks) for lp in site.loops] == [2, 2, 1]
    assert sum(n.gpus for r in site.racks() for n in r.nodes) == 40
    with pytest.raises(ValueError):
        make_site(0)


def test_same_seed_same_everything_other_seed_differs():
    a, b, c = hall_for("pump-degradation"), hall_for("pump-degradation"), hall_for("pump-degradation", seed=43)
    for _ in range(150):
        for h in (a, b, c):
            h.advance(1.0)
    assert a.lines() == b.lines()
    assert a.lines() != c.lines()
    assert np.array_equal(a.temp, b.temp)


def test_reading_the_state_does_not_change_the_run():
    sc = load_scenario("phase-overload")
    site = make_site(2)
    site2 = make_site(2)
    sc = sc.model_copy(update={"faults": []})
    a, b = Hall(site, scenario=sc), Hall(site2, scenario=sc)
    for k in range(60):
        a.advance(1.0)
        b.step(1.0)
        if k % 7 == 0:
            b.records()
    assert a.lines() == b.lines()


def test_step_reports_the_events_of_that_step_only():
    hall = hall_for("pump-degradation")
    assert hall.step(30).events == []
    state = hall.step(30)  # crosses 1m
    assert [text for _, text in state.events] == ["pump degradation (loop loop-a) begins - loop-a flow falling; row A GPUs heating up"]
    assert state.events[0][0] == hall.start_ns + 60 * 10**9
    assert hall.step(30).events == []
