"""The one MQTT boundary: configuration to aiomqtt client arguments (address, credentials, TLS),
the client's errors in our words, and the few aiomqtt 2.x internals manual acknowledgement needs.

Agents, the collector and ``dcim record --from-mqtt`` all connect through here. aiomqtt is pinned
to 2.x (pyproject.toml): 2.x acknowledges on receipt unless paho's manual acknowledgement is
switched on through its private ``_client``, and it has no public way to stop reading the socket.
aiomqtt 3 has public manual acks (``client.puback``) and flow control; these functions are the
only place to change when moving to it (empicano/aiomqtt#345).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from dcim.config import MqttConfig, check_url_credentials
from dcim.errors import ConfigError

SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}


def broker_address(url: str) -> tuple[str, int, bool]:
    """``mqtt://host:port`` (or ``mqtts://``) -> (host, port, tls); refuses credentials in the URL."""
    try:
        check_url_credentials(url)
    except ValueError as exc:
        raise ConfigError(f"mqtt.url: {exc}") from None
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        msg = f"mqtt.url {url!r}: scheme must be mqtt:// or mqtts://"
        raise ConfigError(msg)
    tls = SCHEMES[parts.scheme]
    host = parts.hostname
    if not host:
        msg = f"mqtt.url {url!r} names no host"
        raise ConfigError(msg)
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        msg = f"mqtt.url {url!r}: bad port"
        raise ConfigError(msg) from exc
    return host, port, tls


def uses_tls(cfg: MqttConfig) -> bool:
    return broker_address(cfg.url)[2] or cfg.ca_file is not None or cfg.cert_file is not None


def tls_context(cfg: MqttConfig) -> ssl.SSLContext | None:
    """The TLS context for ``cfg`` (a CA file, a client certificate), or None for plain MQTT."""
    if not uses_tls(cfg):
        return None
    try:
        ctx = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
        if cfg.cert_file:
            ctx.load_cert_chain(str(cfg.cert_file), str(cfg.key_file) if cfg.key_file else None)
    except (OSError, ssl.SSLError) as exc:
        msg = f"mqtt TLS files cannot be used: {exc}"
        raise ConfigError(msg) from exc
    if cfg.tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_args(cfg: MqttConfig, *, identifier: str | None = None, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for ``aiomqtt.Client``: address, credentials (read now), TLS, keepalive."""
    host, port, _ = broker_address(cfg.url)
    args: dict[str, Any] = {"hostname": host, "port": port, "keepalive": cfg.keepalive_s}
    if identifier:
        args["identifier"] = identifier
    if cfg.username:
        args["username"] = cfg.username
        args["password"] = cfg.password.resolve().get_secret_value() if cfg.password else None
    ctx = tls_context(cfg)
    if ctx is not None:
        args["tls_context"] = ctx
    args.update(extra)
    return args


def describe(exc: BaseException) -> str:
    """The client's error in words that name the broker's answer and never a credential."""
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "not authori" in lowered or "bad user name or password" in lowered or "code:5" in lowered:
        return f"the broker refused our credentials ({text})"
    if isinstance(exc, ssl.SSLError) or "certificate" in lowered or "ssl" in lowered:
        return f"TLS failed ({text})"
    return text


# --- aiomqtt 2.x internals (manual acknowledgement and flow control) ---------------------------


def enable_manual_ack(client: Any) -> None:
    """PUBACK only when ``ack`` is called, not when a message arrives."""
    client._client.manual_ack_set(True)  # noqa: SLF001 - aiomqtt 2.x has no public switch


def ack(client: Any, mid: int, qos: int) -> None:
    client._client.ack(mid, qos)  # noqa: SLF001 - aiomqtt 2.x has no public manual ack


def queue_size(client: Any) -> int:
    """Messages received and not yet taken from ``client.messages``."""
    return client._queue.qsize()  # noqa: SLF001


def after_each_message(client: Any, hook: Callable[[], None]) -> None:
    """Call ``hook`` after the client queued each incoming message (in paho's callback)."""
    paho = client._client  # noqa: SLF001
    deliver = paho.on_message

    def on_message(pc: Any, userdata: Any, message: Any) -> None:
        deliver(pc, userdata, message)
        hook()

    paho.on_message = on_message


def pause_reading(client: Any) -> bool:
    """Stop reading the socket (TCP then pushes back on the broker); False when not connected."""
    sock = client._client.socket()  # noqa: SLF001
    if sock is None:
        return False
    asyncio.get_running_loop().remove_reader(sock.fileno())
    return True


def resume_reading(client: Any) -> None:
    """Read the socket again, as aiomqtt's own reader callback does."""
    paho = client._client  # noqa: SLF001
    sock = paho.socket()
    if sock is None:
        return

    def readable() -> None:
        try:
            while True:
                paho.loop_read()
                if hasattr(paho._sock, "pending") and paho._sock.pending() > 0:  # noqa: SLF001
                    continue
                break
        except Exception as exc:  # noqa: BLE001 - a broken connection ends the message loop
            if not client._disconnected.done():  # noqa: SLF001
                client._disconnected.set_exception(exc)  # noqa: SLF001

    asyncio.get_running_loop().add_reader(sock.fileno(), readable)
