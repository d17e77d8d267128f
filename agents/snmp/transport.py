"""Talking to devices: GETBULK column walks over our own v2c codec (fast path) or pysnmp (v3, reference).

Both sessions offer the same two calls, ``get(oids)`` and ``bulk(oids, max_repetitions)``, over
raw BER OID bytes; :func:`walk_columns` builds a multi-column table walk on top of ``bulk``.
Errors leave here as DeviceTimeout / DeviceAuthError / DeviceError naming the device, never
with a community string or key in the text.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dcim.agents.snmp import ber
from dcim.errors import BerError, DeviceAuthError, DeviceError, DeviceTimeout

log = logging.getLogger(__name__)

Varbinds = tuple[list[bytes], list[Any]]
BulkFn = Callable[[list[bytes], int], Awaitable[Varbinds]]


@dataclass(slots=True)
class WalkStats:
    requests: int = 0
    varbinds: int = 0  # received, including the one past each column's end
    rows: int = 0  # inside the walked columns: what snmp_exporter counts as PDUs returned


async def walk_columns(bulk: BulkFn, columns: list[str], max_repetitions: int, *,
                       device: str, stats: WalkStats | None = None) -> dict[str, list]:
    """Walk several table columns side by side with GETBULK: column -> [(index arcs, value)].

    Varbind k of a response belongs to request column k mod R; a column ends at the first OID
    outside it or at endOfMibView. OIDs that do not increase end the walk with an error rather
    than loop forever (a known firmware bug class).
    """
    result: dict[str, list] = {c: [] for c in columns}
    active = [(c, ber.encode_oid(c), ber.encode_oid(c)) for c in columns]
    decode_arcs = ber.decode_arcs
    end_view = ber.END_OF_MIB_VIEW_VALUE
    exceptions = (ber.NO_SUCH_OBJECT_VALUE, ber.NO_SUCH_INSTANCE_VALUE, end_view)
    while active:
        oids, values = await bulk([cursor for _, _, cursor in active], max_repetitions)
        if stats is not None:
            stats.requests += 1
            stats.varbinds += len(oids)
        r = len(active)
        done = [False] * r
        cursors = [cursor for _, _, cursor in active]
        for k, oid in enumerate(oids):
            c = k % r
            if done[c]:
                continue
            col, prefix, _ = active[c]
            value = values[k]
            if value in exceptions or not oid.startswith(prefix) or len(oid) == len(prefix):
                done[c] = True
                continue
            index = decode_arcs(oid, len(prefix))
            rows = result[col]
            # arcs, not bytes: BER bytes of arcs with different lengths do not sort like the arcs
            if rows and index <= rows[-1][0]:
                msg = f"device returned a non-increasing OID in column {col} (agent bug); walk stopped"
                raise DeviceError(msg, device=device)
            cursors[c] = oid
            rows.append((index, value))
            if stats is not None:
                stats.rows += 1
        if not oids:
            break
        progressed = any(cursors[i] != cursor for i, (_, _, cursor) in enumerate(active))
        # a column whose last varbind was cut short by the response size continues from its cursor
        active = [(col, prefix, cursors[i]) for i, (col, prefix, _) in enumerate(active) if not done[i]]
        if active and not progressed:
            msg = f"device answered GETBULK for {r} columns with {len(oids)} varbinds and no progress; walk stopped"
            raise DeviceError(msg, device=device)
    return result


# --- v2c fast path --------------------------------------------------------------------------------


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, pending: dict[int, tuple[asyncio.Future, tuple[str, int]]]) -> None:
        self.pending = pending

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            msg = ber.decode_message(data)
        except BerError:
            log.debug("dropped a malformed datagram from %s", addr)
            return
        entry = self.pending.get(msg.request_id)
        if entry is None or entry[0].done():
            return  # a late answer to a retried or abandoned request
        fut, want = entry
        if addr[1] != want[1]:
            return
        fut.set_result(msg)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable and the like
        log.debug("udp error: %s", exc)


_TIMED_OUT = object()


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(_TIMED_OUT)


class V2cEngine:
    """One UDP socket for every v2c device; request ids route the answers back."""

    def __init__(self, local_host: str = "0.0.0.0") -> None:  # noqa: S104 - a client socket; devices are remote
        self.local_host = local_host
        self._pending: dict[int, tuple[asyncio.Future, tuple[str, int]]] = {}
        self._ids = itertools.count(1)
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> V2cEngine:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self._pending), local_addr=(self.local_host, 0))
        return self

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for fut, _ in self._pending.values():
            if not fut.done():
                fut.cancel()
        self._pending.clear()

    async def request(self, addr: tuple[str, int], community: bytes, pdu_tag: int, oids: list[bytes], *,
                      max_repetitions: int = 0, timeout_s: float, retries: int, device: str) -> ber.Message:
        if self._transport is None:
            raise RuntimeError("V2cEngine not started")
        rid = next(self._ids) & 0x7FFFFFFF
        packet = ber.encode_request(ber.V2C, community, pdu_tag, rid, oids, 0, max_repetitions)
        loop = asyncio.get_running_loop()
        msg: Any = _TIMED_OUT
        try:
            for _ in range(retries + 1):
                # a plain future and a timer: wait_for + shield cost a task per request on the hot path
                waiter = loop.create_future()
                self._pending[rid] = (waiter, addr)
                self._transport.sendto(packet, addr)
                timer = loop.call_later(timeout_s, _expire, waiter)
                try:
                    msg = await waiter
                finally:
                    timer.cancel()
                if msg is not _TIMED_OUT:
                    break
        finally:
            self._pending.pop(rid, None)
        if msg is _TIMED_OUT:
            text = f"no answer from {addr[0]}:{addr[1]} within {timeout_s:g} s x {retries + 1} tries"
            raise DeviceTimeout(text, device=device)
        if msg.error_status:
            msg_text = f"device answered error-status {msg.error_status} at varbind {msg.error_index}"
            raise DeviceError(msg_text, device=device)
        return msg


class V2cSession:
    """A device reached over SNMPv2c with our codec."""

    def __init__(self, engine: V2cEngine, device: str, address: str, port: int, community: str,
                 timeout_s: float, retries: int, limit: asyncio.Semaphore | None = None) -> None:
        self.engine = engine
        self.device = device
        self.addr = (address, port)
        self._community = community.encode()
        self.timeout_s = timeout_s
        self.retries = retries
        self.limit = limit

    async def _request(self, tag: int, oids: list[bytes], max_repetitions: int = 0) -> Varbinds:
        if self.limit is None:
            msg = await self.engine.request(self.addr, self._community, tag, oids, max_repetitions=max_repetitions,
                                            timeout_s=self.timeout_s, retries=self.retries, device=self.device)
        else:
            async with self.limit:
                msg = await self.engine.request(self.addr, self._community, tag, oids,
                                                max_repetitions=max_repetitions, timeout_s=self.timeout_s,
                                                retries=self.retries, device=self.device)
        return msg.oids, msg.values

    async def get(self, oids: list[bytes]) -> Varbinds:
        return await self._request(ber.GET, oids)

    async def bulk(self, oids: list[bytes], max_repetitions: int) -> Varbinds:
        return await self._request(ber.GETBULK, oids, max_repetitions)

    def close(self) -> None:
        pass


# --- pysnmp path (v3, and v2c as the reference) ------------------------------------------------


_AUTH = {"SHA": "usmHMACSHAAuthProtocol", "SHA256": "usmHMAC192SHA256AuthProtocol",
         "SHA512": "usmHMAC384SHA512AuthProtocol", "MD5": "usmHMACMD5AuthProtocol"}
_PRIV = {"AES": "usmAesCfb128Protocol", "AES192": "usmAesCfb192Protocol",
         "AES256": "usmAesCfb256Protocol", "DES": "usmDESPrivProtocol"}

_AUTH_FAILURES = ("unknownusername", "wrongdigest", "authentication", "decryption", "unsupportedseclevel",
                  "unknownsecurityname", "notintimewindow", "wrong")


def _from_pysnmp(value: Any) -> Any:
    """pysnmp/pyasn1 value -> the plain Python value our codec yields."""
    from pyasn1.type import univ
    from pysnmp.proto import rfc1905

    if isinstance(value, rfc1905.EndOfMibView):
        return ber.END_OF_MIB_VIEW_VALUE
    if isinstance(value, rfc1905.NoSuchObject):
        return ber.NO_SUCH_OBJECT_VALUE
    if isinstance(value, rfc1905.NoSuchInstance):
        return ber.NO_SUCH_INSTANCE_VALUE
    if isinstance(value, univ.ObjectIdentifier):
        return tuple(value)
    if isinstance(value, univ.OctetString):  # also IpAddress and Opaque
        return bytes(value)
    if isinstance(value, univ.Null):
        return None
    return int(value)


class PysnmpSession:
    """A device reached through pysnmp's asyncio API (raw OIDs, no MIB lookup); v3 authPriv or v2c."""

    def __init__(self, device: str, address: str, port: int, timeout_s: float, retries: int, *,
                 community: str | None = None, user: str | None = None, auth_protocol: str = "SHA",
                 auth_key: str | None = None, priv_protocol: str = "AES", priv_key: str | None = None,
                 context: str = "", limit: asyncio.Semaphore | None = None, engine: Any = None) -> None:
        from pysnmp.hlapi.v3arch import asyncio as hl

        self._hl = hl
        self.device = device
        self.address = (address, port)
        self.timeout_s = timeout_s
        self.retries = retries
        self.limit = limit
        self.context = context
        self.engine = engine or hl.SnmpEngine()
        if user is not None:
            self.auth = hl.UsmUserData(
                user, authKey=auth_key, privKey=priv_key,
                authProtocol=getattr(hl, _AUTH[auth_protocol]) if auth_key else hl.usmNoAuthProtocol,
                privProtocol=getattr(hl, _PRIV[priv_protocol]) if priv_key else hl.usmNoPrivProtocol)
        else:
            self.auth = hl.CommunityData(community or "public", mpModel=1)
        self._target: Any = None

    async def _target_(self) -> Any:
        if self._target is None:
            self._target = await self._hl.UdpTransportTarget.create(
                self.address, timeout=self.timeout_s, retries=self.retries)
        return self._target

    def _check(self, error_indication: Any, error_status: Any, error_index: Any) -> None:
        if error_indication:
            text = str(error_indication)
            low = text.lower().replace(" ", "")
            if "timeout" in low or "noresponse" in low or "nosnmpresponse" in low:
                raise DeviceTimeout(f"no answer within {self.timeout_s:g} s x {self.retries + 1} tries",
                                    device=self.device)
            if any(k in low for k in _AUTH_FAILURES):
                raise DeviceAuthError(f"SNMPv3 authentication failed ({text}); check user, auth and priv keys",
                                      device=self.device)
            raise DeviceError(text, device=self.device)
        if error_status and int(error_status):
            raise DeviceError(f"device answered {error_status.prettyPrint()} at varbind {int(error_index)}",
                              device=self.device)

    async def _call(self, fn: Any, *args: Any) -> Varbinds:
        hl = self._hl
        target = await self._target_()
        objs = [hl.ObjectType(hl.ObjectIdentity(hl.ObjectIdentifier(ber.decode_oid(o)))) for o in args[-1]]
        try:
            if self.limit is None:
                res = await fn(self.engine, self.auth, target, hl.ContextData(contextName=self.context),
                               *args[:-1], *objs, lookupMib=False)
            else:
                async with self.limit:
                    res = await fn(self.engine, self.auth, target, hl.ContextData(contextName=self.context),
                                   *args[:-1], *objs, lookupMib=False)
        except (DeviceError, asyncio.CancelledError):
            raise
        except Exception as exc:  # pysnmp raises its own errors for auth failures in some versions
            low = str(exc).lower()
            if any(k in low for k in _AUTH_FAILURES):
                raise DeviceAuthError(f"SNMPv3 authentication failed ({type(exc).__name__})",
                                      device=self.device) from exc
            raise DeviceError(f"{type(exc).__name__}: {exc}", device=self.device) from exc
        error_indication, error_status, error_index, var_binds = res
        self._check(error_indication, error_status, error_index)
        oids = [ber.encode_oid(tuple(name)) for name, _ in var_binds]
        return oids, [_from_pysnmp(v) for _, v in var_binds]

    async def get(self, oids: list[bytes]) -> Varbinds:
        return await self._call(self._hl.get_cmd, oids)

    async def bulk(self, oids: list[bytes], max_repetitions: int) -> Varbinds:
        return await self._call(self._hl.bulk_cmd, 0, max_repetitions, oids)

    def close(self) -> None:
        try:
            self.engine.close_dispatcher()
        except Exception:  # noqa: BLE001 - closing twice or an engine never opened is fine
            pass
