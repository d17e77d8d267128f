"""Every exception class the project defines lives in dcim/errors.py, and its drawing says how they derive."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import dcim.errors

ROOT = Path(__file__).resolve().parents[2]

# Exceptions allowed outside dcim/errors.py: private control flow that no caller is meant to catch.
ALLOWED = {
    # Raised inside the simulated SNMP agent to drop a request, so the device looks silent; only
    # the asyncio exception handler of the assembled pipeline (dcim.app.pipeline) looks for it, to
    # keep that deliberate silence out of the log.
    "dcim.simulators.snmp.responder._Silent",
}


def _installed_modules() -> Iterator[ModuleType]:
    """Every module of every package pyproject.toml installs."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for name in packages:
        package = importlib.import_module(name)
        yield package
        for info in pkgutil.iter_modules(package.__path__, name + "."):
            if not info.ispkg:
                yield importlib.import_module(info.name)


def _classes(owner: object, qualname: str) -> Iterator[tuple[str, type]]:
    """Classes defined in a module, nested classes included."""
    module = owner.__name__ if isinstance(owner, ModuleType) else owner.__module__
    for name, obj in vars(owner).items():
        if inspect.isclass(obj) and obj.__module__ == module and obj.__qualname__ == f"{qualname}{name}":
            yield f"{module}.{obj.__qualname__}", obj
            yield from _classes(obj, f"{obj.__qualname__}.")


def test_every_exception_class_is_defined_in_dcim_errors() -> None:
    seen = 0
    outside = []
    for module in _installed_modules():
        seen += 1
        if module is dcim.errors:
            continue
        for where, cls in _classes(module, ""):
            if issubclass(cls, BaseException) and where not in ALLOWED:
                outside.append(where)
    assert seen > 50, f"walked only {seen} modules"  # the walk itself found the packages
    assert not outside, f"define these in dcim/errors.py (under DcimError) and import them: {outside}"


def test_allowed_exceptions_still_exist() -> None:
    for where in ALLOWED:
        module, name = where.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, BaseException), where


def _errors() -> dict[str, type]:
    return {name: cls for name, cls in vars(dcim.errors).items()
            if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == "dcim.errors"}


def test_every_error_derives_from_dcim_error() -> None:
    errors = _errors()
    assert len(errors) > 10
    for name, cls in errors.items():
        assert issubclass(cls, dcim.errors.DcimError), name


def _drawing() -> dict[str, str]:
    """Child -> parent, read from the tree drawn in the module docstring."""
    parents: dict[str, str] = {}
    stack: list[str] = []
    for line in (dcim.errors.__doc__ or "").splitlines():
        if re.fullmatch(r" {4}DcimError", line):
            stack = ["DcimError"]
            continue
        m = re.match(r"^ {4}((?:[│ ] {3})*)[├└]── (\w+)", line)
        if m and stack:
            depth = len(m.group(1)) // 4 + 1
            del stack[depth:]
            parents[m.group(2)] = stack[-1]
            stack.append(m.group(2))
    return parents


def test_the_drawing_matches_the_classes() -> None:
    parents = _drawing()
    errors = _errors()
    assert set(parents) == set(errors) - {"DcimError"}, "the drawing and the classes name different errors"
    for name, parent in parents.items():
        bases = [b.__name__ for b in errors[name].__bases__]
        assert bases[0] == parent, f"drawn under {parent}, but {name} derives from {bases}"
        for extra in bases[1:]:  # a second base (ValueError) is drawn beside the name
            assert re.search(rf"{name} \({extra}\)", dcim.errors.__doc__ or ""), (name, extra)
