"""Shared helpers for the simulator tests: run a hall to given times and look at it there."""

from __future__ import annotations

from dcim.config import named_site
from dcim.simulators.hall import Hall
from dcim.simulators.scenarios import load_scenario, parse_scenario

_SITE = named_site("h100-hall")


def site():
    return _SITE.model_copy(deep=True)


def hall_for(scenario: str | None = None, *, seed: int = 42, text: str | None = None, site_cfg=None) -> Hall:
    sc = parse_scenario(text) if text is not None else (load_scenario(scenario) if scenario else None)
    return Hall(site_cfg or _SITE, seed=seed, scenario=sc)


def run_to(hall: Hall, t_s: float, dt_s: float = 1.0) -> Hall:
    """Advance until the hall's clock reads ``t_s`` simulated seconds."""
    while hall.t_s + 1e-9 < t_s:
        hall.advance(min(dt_s, t_s - hall.t_s))
    return hall
