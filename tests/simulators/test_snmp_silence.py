"""A device the scenario silences drops requests quietly; every other loop error is still reported."""

from __future__ import annotations

import asyncio

from dcim.simulators.snmp import responder


async def test_a_silenced_device_is_kept_out_of_the_log_and_other_errors_pass_on():
    loop = asyncio.get_running_loop()
    seen: list[BaseException | None] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context.get("exception")))
    try:
        responder._quiet_silenced_devices(loop)
        loop.call_exception_handler({"message": "datagram callback", "exception": responder._Silent()})
        other = RuntimeError("a real fault")
        loop.call_exception_handler({"message": "datagram callback", "exception": other})
    finally:
        loop.set_exception_handler(previous)
    assert seen == [other]
