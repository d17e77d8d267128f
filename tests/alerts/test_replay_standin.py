"""A tiny stand-in alert engine for the replay, what-if and report unit tests (never used by product code).

It follows the real engine's contract (event time, process/advance, Transition fields) for plain
``value > threshold`` rules with ``for`` and rule-name inhibition, so the replay machinery can be
tested apart from the real rule language. The last test checks the stand-in itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dcim.record import Record


@dataclass(frozen=True)
class StandInRule:
    name: str
    measurement: str
    field: str
    threshold: float
    for_s: float = 0.0
    severity: str = "warning"
    by: tuple[str, ...] = ("rack", "node", "gpu")
    inhibits: tuple[str, ...] = ()
    kind: str = "threshold"


@dataclass
class StandInTransition:
    time_ns: int
    rule: str
    severity: str
    labels: dict[str, str]
    previous: str
    state: str
    value: float | None
    inhibited: bool = False
    inhibited_by: list[str] = field(default_factory=list)
    summary: str = ""
    fingerprint: str = ""


class StandInEngine:
    """Per series: above threshold -> pending; held for ``for_s`` -> firing; below -> resolved."""

    def __init__(self, rules: list[StandInRule], *, site: object = None) -> None:
        self.rules = rules
        self.state: dict[tuple[str, tuple], tuple[str, int, float]] = {}  # -> (state, since_ns, value)

    def _labels(self, rule: StandInRule, r: Record) -> dict[str, str]:
        return {k: r.tags[k] for k in rule.by if k in r.tags}

    def _inhibitors(self, rule: StandInRule) -> list[str]:
        # fingerprints of the firing alerts whose rule inhibits this one, as the real engine gives
        return sorted({f"{n}{lbl}" for o in self.rules if rule.name in o.inhibits
                       for (n, lbl), (s, _, _) in self.state.items() if n == o.name and s == "firing"})

    def process(self, records: list[Record]) -> list[StandInTransition]:
        out: list[StandInTransition] = []
        for r in records:
            for rule in self.rules:
                if r.measurement != rule.measurement or rule.field not in r.fields:
                    continue
                v = float(r.fields[rule.field])
                labels = self._labels(rule, r)
                key = (rule.name, tuple(sorted(labels.items())))
                st, since, _ = self.state.get(key, ("inactive", 0, 0.0))
                t = r.time_ns
                new = st
                if v > rule.threshold:
                    if st in ("inactive", "resolved"):
                        new, since = ("pending", t) if rule.for_s > 0 else ("firing", t)
                    elif st == "pending" and t - since >= rule.for_s * 1e9:
                        new = "firing"
                elif st == "pending":
                    new = "inactive"
                elif st == "firing":
                    new = "resolved"
                self.state[key] = (new, since, v)
                if new != st:
                    by = self._inhibitors(rule) if new == "firing" else []
                    out.append(StandInTransition(t, rule.name, rule.severity, labels, st, new, v, bool(by), by,
                                                 fingerprint=f"{rule.name}{key[1]}"))
        return out

    def advance(self, time_ns: int) -> list[StandInTransition]:
        return []


def gpu(t_s: int, temp: float, *, rack: str = "A01", node: str = "A01-n01", gpu_: str = "0") -> Record:
    return Record("gpu", {"site": "dc1", "rack": rack, "node": node, "gpu": gpu_}, {"temp_c": temp}, t_s * 10**9)


def loop(t_s: int, flow: float, *, name: str = "loop-a") -> Record:
    return Record("coolant_loop", {"site": "dc1", "row": "A", "loop": name},
                  {"flow_lpm": flow, "supply_temp_c": 30.0, "return_temp_c": 40.0}, t_s * 10**9)


def test_stand_in_engine_goes_pending_firing_resolved() -> None:
    eng = StandInEngine([StandInRule("Hot", "gpu", "temp_c", 80.0, for_s=2)])
    ts = eng.process([gpu(0, 70), gpu(1, 85), gpu(2, 86), gpu(3, 87), gpu(4, 70)])
    assert [(t.time_ns // 10**9, t.state) for t in ts] == [(1, "pending"), (3, "firing"), (4, "resolved")]
