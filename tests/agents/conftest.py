"""Fixtures of the SNMP agent tests: the simulated hall served over SNMP inside the test's loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from dcim.config import named_site
from dcim.simulators.hall import Hall
from dcim.simulators.snmp import SimulatedSnmp, V3User, serve

V3 = V3User("ops", "auth-" + "k" * 10, "priv-" + "p" * 10)


@pytest.fixture
def snmp_hall() -> Hall:
    return Hall(named_site("h100-hall"), seed=3)


@pytest.fixture
async def snmp_sim(snmp_hall: Hall, request: pytest.FixtureRequest) -> SimulatedSnmp:
    """The devices a test names with ``@pytest.mark.devices(...)`` (default: all), served in its loop."""
    marker = request.node.get_closest_marker("devices")
    handle = serve(snmp_hall, v3_users=[V3], devices=list(marker.args) if marker else None)
    yield handle
    handle.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "devices(*names): simulated SNMP devices a test needs")


@pytest.fixture
def snmp_sim_thread(snmp_hall: Hall, request: pytest.FixtureRequest) -> Iterator[SimulatedSnmp]:
    """The simulated devices on their own event loop in a thread (for code that runs asyncio.run)."""
    marker = request.node.get_closest_marker("devices")
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, SimulatedSnmp] = {}

    def main() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            box["h"] = serve(snmp_hall, v3_users=[V3], devices=list(marker.args) if marker else None)
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    t = threading.Thread(target=main, daemon=True)
    t.start()
    assert ready.wait(30)
    yield box["h"]
    loop.call_soon_threadsafe(box["h"].stop)
    loop.call_soon_threadsafe(loop.stop)
    t.join(10)
