"""The hall's modules point one way: the physics knows nothing of its read-out, and the read-out uses
only the physics' public names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dcim.simulators.hall import Hall
from tests.simulators.helpers import hall_for, run_to

SIM = Path(__file__).resolve().parents[2] / "simulators"


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_the_physics_imports_neither_objects_nor_emission():
    mods = _imports(SIM / "physics.py")
    assert not mods & {"dcim.simulators.emit", "dcim.simulators.objects", "dcim.simulators.hall",
                       "dcim.simulators.nvml", "dcim.simulators.state", "dcim.simulators.output"}, mods


@pytest.mark.parametrize("module", ["emit.py", "objects.py", "nvml.py", "hall.py", "overview.py", "cli.py"])
def test_no_private_name_of_the_hall_is_read_from_outside(module):
    tree = ast.parse((SIM / module).read_text())
    private = [
        f"{module}:{node.lineno} hall.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
        and isinstance(node.value, ast.Name) and node.value.id == "hall"
    ]
    assert not private, private


def test_an_xid_reaches_the_gpu_object_at_once_and_the_gpu_xid_series():
    hall = hall_for("gpu-lost")
    gpus = hall.state.gpus  # handed out before the fault: the simulated NVML holds these
    fault = next(f for f in hall.scenario.faults if f.kind == "gpu_lost")
    run_to(hall, fault.at + 1)
    g = gpus[(fault.node, fault.gpu)]
    assert [code for code, _ in g.xid_events] == [79]
    xids = [r for r in hall.records(["gpu_xid"]) if r.tags["node"] == fault.node]
    assert [(r.tags["xid"], r.fields["count_total"]) for r in xids] == [("79", 1)]


def test_override_holds_a_pdu_silent_until_the_scenario_agrees():
    hall = hall_for(None)
    assert isinstance(hall, Hall)
    hall.override("pdu", 0, False)
    hall.advance(1.0)
    rack, name = hall.pdu_keys[0]
    assert not [r for r in hall.records(["pdu"]) if r.tags["pdu"] == name and r.tags["rack"] == rack]
    with pytest.raises(ValueError, match="override kind"):
        hall.override("ups", 0, False)
