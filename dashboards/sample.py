"""Sample data for the dashboards: a simulated scenario plus the agent-health and alert records the simulator does not write.

The ``dcim dashboards render`` pictures in docs/dashboards.md are made from it (the integration tests fill
InfluxDB through the demo pipeline instead); ``FOCUS`` is where a link opens the rack and node dashboards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from dcim.config import SiteConfig
from dcim.lineprotocol.encode import encode
from dcim.record import Record

#: Has XIDs and ECC errors, so the error panels have something to show.
SCENARIO = "ecc-errors"
#: Where the scenario's faults are: open the rack and node dashboards there.
FOCUS = {"row": "B", "rack": "B01", "node": "B01-n03"}


def health_and_alerts(start_ns: int, end_ns: int) -> list[Record]:
    """Agent health every 10 s for three devices (one turning stale) and alert transitions on the faulty rack."""
    out = []
    devices = [("snmp", "poller-1", "B01-pdu-a"), ("snmp", "poller-1", "B01-pdu-b"), ("gpu", "B01-n03", "B01-n03")]
    for i, t in enumerate(range(start_ns, end_ns, 10 * 10**9)):
        for component, host, device in devices:
            stale = device == "B01-pdu-b" and t > end_ns - 120 * 10**9
            out.append(Record("agent", {"site": "dc1", "component": component, "host": host, "device": device},
                              {"poll_duration_s": 0.05 + 0.01 * (i % 5), "errors_total": i // 7 if stale else 0,
                               "stale": stale, "up": not stale, "queue_depth": i % 4, "dropped_total": i // 20},
                              t))
    loc = {"site": "dc1", "room": "hall1", "row": FOCUS["row"], "rack": FOCUS["rack"]}
    transitions = [
        (start_ns + 60 * 10**9, "PduPhaseCurrentHigh", "warning", "firing", {**loc, "pdu": "pdu-a", "phase": "L1"}),
        (start_ns + 240 * 10**9, "PduPhaseCurrentHigh", "warning", "resolved", {**loc, "pdu": "pdu-a", "phase": "L1"}),
        (start_ns + 300 * 10**9, "GpuEccUncorrected", "critical", "firing", {**loc, "node": FOCUS["node"], "gpu": "2"}),
    ]
    for t, name, severity, state, tags in transitions:
        out.append(Record("alert", {"alertname": name, "severity": severity, **tags},
                          {"state": state, "previous": "pending", "value": 1.0, "inhibited": False,
                           "summary": f"{name} {state}"}, t))
    return out


def line_batches(site: SiteConfig, start_ns: int, duration_s: float, step_s: float = 5.0, *, seed: int = 7,
                 scenario: str = SCENARIO, batch_steps: int = 10) -> Iterator[str]:
    """Line protocol (ns) of the simulated hall from ``start_ns``, in batches, then health and alerts."""
    from dcim.simulators.hall import Hall
    from dcim.simulators.scenarios import load_scenario

    hall = Hall(site, seed=seed, scenario=load_scenario(scenario), start_ns=start_ns)
    batch: list[str] = []
    for _ in range(int(duration_s / step_s)):
        hall.advance(step_s)
        batch.append(hall.lines())
        if len(batch) == batch_steps:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)
    yield encode(health_and_alerts(start_ns, hall.time_ns))


def fill(write: Callable[[str], None], site: SiteConfig, start_ns: int, duration_s: float, step_s: float = 5.0) -> int:
    """Write the sample through ``write(lines)``; the end time in ns."""
    for lines in line_batches(site, start_ns, duration_s, step_s):
        write(lines)
    return start_ns + int(duration_s / step_s) * round(step_s * 1e9)
