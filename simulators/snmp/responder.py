"""Serve a Hall's PDUs and CDUs over real SNMP (v2c and v3) on loopback UDP, one port per device.

A pysnmp command responder per device whose MIB controller renders the device's vendor layout
from the hall's live state, so a poll sees the physics as the hall steps. A device whose
state says ``answering = False`` stays silent (the poller sees a timeout).
"""

from __future__ import annotations

import asyncio
import bisect
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.smi import instrum

from dcim.simulators.snmp import layouts

_TYPES = {
    layouts.INTEGER: rfc1902.Integer32,
    layouts.OCTETS: rfc1902.OctetString,
    layouts.OID: rfc1902.ObjectIdentifier,
    layouts.COUNTER32: rfc1902.Counter32,
    layouts.GAUGE32: rfc1902.Gauge32,
    layouts.TIMETICKS: rfc1902.TimeTicks,
    layouts.COUNTER64: rfc1902.Counter64,
}

_AUTH = {"SHA": config.USM_AUTH_HMAC96_SHA, "MD5": config.USM_AUTH_HMAC96_MD5,
         "SHA256": config.USM_AUTH_HMAC192_SHA256, "SHA512": config.USM_AUTH_HMAC384_SHA512}
_PRIV = {"AES": config.USM_PRIV_CFB128_AES, "DES": config.USM_PRIV_CBC56_DES,
         "AES192": config.USM_PRIV_CFB192_AES, "AES256": config.USM_PRIV_CFB256_AES}


@dataclass(frozen=True)
class V3User:
    user: str
    auth_key: str
    priv_key: str
    auth_protocol: str = "SHA"
    priv_protocol: str = "AES"


class _Silent(Exception):
    """Raised inside the responder to drop a request: the device does not answer."""


class _LiveMib(instrum.AbstractMibInstrumController):
    """Answers GET/GETNEXT from a layout rendered at most once per hall step."""

    def __init__(self, render: Callable[[], list[layouts.Row]], version: Callable[[], Any],
                 answering: Callable[[], bool]) -> None:
        self.render = render
        self.version = version
        self.answering = answering
        self._at: Any = object()
        self._keys: list[tuple[int, ...]] = []
        self._values: list[Any] = []

    def _refresh(self) -> None:
        if not self.answering():
            raise _Silent
        v = self.version()
        if v == self._at:
            return
        rows = sorted(((tuple(int(a) for a in oid.split(".")), tag, value) for oid, tag, value in self.render()),
                      key=lambda r: r[0])
        self._keys = [r[0] for r in rows]
        self._values = [_TYPES[tag](value) for _, tag, value in rows]
        self._at = v

    def read_variables(self, *var_binds: Any, **context: Any) -> list:
        self._refresh()
        out = []
        for name, _ in var_binds:
            key = tuple(name)
            i = bisect.bisect_left(self._keys, key)
            if i < len(self._keys) and self._keys[i] == key:
                out.append((name, self._values[i]))
            else:
                out.append((name, rfc1905.noSuchInstance))
        return out

    def read_next_variables(self, *var_binds: Any, **context: Any) -> list:
        self._refresh()
        out = []
        for name, _ in var_binds:
            i = bisect.bisect_right(self._keys, tuple(name))
            if i < len(self._keys):
                out.append((rfc1902.ObjectName(self._keys[i]), self._values[i]))
            else:
                out.append((name, rfc1905.endOfMibView))
        return out


@dataclass
class SimulatedSnmp:
    """Handle of the running devices: ``ports`` (device name -> UDP port) and ``stop()``."""

    host: str
    ports: dict[str, int]
    engines: list[Any] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        for e in self.engines:
            try:
                e.close_dispatcher()
            except Exception:  # noqa: BLE001 - already closed
                pass
        self.engines.clear()

    def __enter__(self) -> SimulatedSnmp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def device_renderers(hall: Any) -> dict[str, tuple[Callable[[], list[layouts.Row]], Callable[[], bool]]]:
    """Device name -> (render the layout from live state, answering?) for every PDU and loop of the hall.

    A device whose vendor has no simulated layout is a ConfigError naming the device and the vendor
    (before any socket is opened), never another vendor's layout.
    """
    out: dict[str, tuple[Callable[[], list[layouts.Row]], Callable[[], bool]]] = {}
    state = hall.state
    params = getattr(hall, "p", None)
    thresholds = (params.low_fraction, params.near_overload_fraction, params.overload_fraction) \
        if params is not None else layouts.THRESHOLDS
    for (rack, pdu_name) in state.pdus:
        layout = layouts.pdu_layout(state.pdus[(rack, pdu_name)].vendor, f"{rack}/{pdu_name}")

        def render(k=(rack, pdu_name), f=layout) -> list[layouts.Row]:
            st = hall.state
            return f(st.pdus[k], _uptime(hall), thresholds)

        out[f"{rack}-{pdu_name}"] = (render, lambda k=(rack, pdu_name): hall.state.pdus[k].answering)
    for name, loop in state.loops.items():
        layout = layouts.loop_layout(loop.vendor, f"{loop.cdu} (loop {name})")

        def render_loop(k=name, f=layout) -> list[layouts.Row]:
            return f(hall.state.loops[k], _uptime(hall))

        out[loop.cdu] = (render_loop, lambda k=name: hall.state.loops[k].answering)
    return out


def _uptime(hall: Any) -> int:
    t = getattr(hall, "t_s", 0.0)
    return int(t * 100) & 0xFFFFFFFF


class _Router(instrum.AbstractMibInstrumController):
    """One engine serves every device: the transport a request came in on picks the device's MIB."""

    def __init__(self) -> None:
        self.by_domain: dict[tuple[int, ...], _LiveMib] = {}

    def _mib(self, context: dict) -> _LiveMib:
        exec_ctx = context["snmpEngine"].observer.get_execution_context("rfc3412.receiveMessage:request")
        return self.by_domain[tuple(exec_ctx["transportDomain"])]

    def read_variables(self, *var_binds: Any, **context: Any) -> list:
        return self._mib(context).read_variables(*var_binds, **context)

    def read_next_variables(self, *var_binds: Any, **context: Any) -> list:
        return self._mib(context).read_next_variables(*var_binds, **context)


def serve(hall: Any, host: str = "127.0.0.1", base_port: int = 0, *, community: str = "public",
          v3_users: list[V3User] | None = None, devices: list[str] | None = None) -> SimulatedSnmp:
    """Start one SNMP agent per PDU and CDU of ``hall`` (call inside a running event loop).

    ``base_port`` 0 picks free ports; otherwise devices take ``base_port``, ``base_port + 1``, ... in
    hall order (PDUs by rack, then CDUs). v2c answers ``community``; each of ``v3_users`` answers
    authPriv. Returns the handle with the name -> port map. One pysnmp engine carries every
    device's UDP socket (loading its MIBs once), so a hall of hundreds of devices starts quickly.
    """
    _quiet_silenced_devices(asyncio.get_running_loop())
    renderers = device_renderers(hall)
    if devices is not None:
        unknown = set(devices) - set(renderers)
        if unknown:
            raise KeyError(f"no such simulated devices: {sorted(unknown)}")
        renderers = {k: v for k, v in renderers.items() if k in devices}
    handle = SimulatedSnmp(host, {})
    router = _Router()
    eng = _engine(router, community, v3_users or [])
    handle.engines.append(eng)
    try:
        for i, (name, (render, answering)) in enumerate(renderers.items()):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((host, base_port + i if base_port else 0))
            sock.setblocking(False)
            port = sock.getsockname()[1]
            domain = udp.DOMAIN_NAME + (i + 1,)
            config.add_transport(eng, domain, udp.UdpAsyncioTransport().open_server_mode(sock=sock))
            router.by_domain[domain] = _LiveMib(render, lambda: hall.state.time_ns, answering)
            handle.ports[name] = port
    except BaseException:
        handle.stop()
        raise
    return handle


def _quiet_silenced_devices(loop: asyncio.AbstractEventLoop) -> None:
    """A device the scenario silences drops a request by raising inside pysnmp's datagram callback,
    which asyncio would log as an unhandled error: keep those out of the loop's log, pass the rest on."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), _Silent):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def _engine(mib: instrum.AbstractMibInstrumController, community: str, users: list[V3User]) -> Any:
    eng = engine.SnmpEngine()
    config.add_v1_system(eng, "sim-area", community)
    config.add_vacm_user(eng, 2, "sim-area", "noAuthNoPriv", (1, 3, 6), ())
    for u in users:
        config.add_v3_user(eng, u.user, _AUTH[u.auth_protocol], u.auth_key, _PRIV[u.priv_protocol], u.priv_key)
        config.add_vacm_user(eng, 3, u.user, "authPriv", (1, 3, 6), ())
    ctx = context.SnmpContext(eng)
    ctx.unregister_context_name(b"")
    ctx.register_context_name(b"", mib)
    cmdrsp.GetCommandResponder(eng, ctx)
    cmdrsp.NextCommandResponder(eng, ctx)
    cmdrsp.BulkCommandResponder(eng, ctx)
    return eng
