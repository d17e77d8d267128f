"""Test doubles for the collector: a scripted sink and a manual clock."""

from __future__ import annotations

from collections.abc import Callable

from dcim.errors import SinkError


class ScriptedSink:
    """A sink whose answer to each write is decided by ``answer(lines)``: None (accepted) or an error."""

    name = "fake"

    def __init__(self, answer: Callable[[list[str]], SinkError | None] | None = None) -> None:
        self.answer = answer or (lambda lines: None)
        self.accepted: list[str] = []
        self.calls: list[list[str]] = []

    async def write(self, body: bytes) -> None:
        lines = body.decode().splitlines()
        self.calls.append(lines)
        err = self.answer(lines)
        if err is not None:
            raise err
        self.accepted += lines

    def close(self) -> None:
        pass


class ManualClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
