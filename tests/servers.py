"""Real servers for integration tests: start one on free 127.0.0.1 ports with a throw-away data
folder, wait until it answers, stop and start it again on the same port, and talk to it.

Nothing here imports pytest, so benchmarks can reuse it; tests/conftest.py wraps these classes
in fixtures and turns a MissingBinaryError into a skip (or, under CI, a failure).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HOST = "127.0.0.1"
SNMPSIM_VENV = Path(os.environ.get("DCIM_SNMPSIM_VENV", "/opt/dcim/snmpsim-venv"))


# --- errors ----------------------------------------------------------------------------------


class HarnessError(Exception):
    """Base of the harness errors."""


class MissingBinaryError(HarnessError):
    """A server binary is not installed; the message says which package provides it."""


class ServerStartError(HarnessError):
    """A server exited or did not become ready in time; the message holds its log tail."""


class ServerHTTPError(HarnessError):
    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url} -> HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


# --- ports -----------------------------------------------------------------------------------

_handed_out: set[tuple[str, int]] = set()
_ports_lock = threading.Lock()


def _free_port(kind: int, proto: str) -> int:
    # The kernel picks an unused port; remembering the ones handed out keeps two servers of
    # one session from getting the same port before either has bound it.
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        with _ports_lock:
            if (proto, port) not in _handed_out:
                _handed_out.add((proto, port))
                return port
    raise HarnessError(f"no free {proto} port on {HOST}")


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on and this process has not handed out."""
    return _free_port(socket.SOCK_STREAM, "tcp")


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to and this process has not handed out."""
    return _free_port(socket.SOCK_DGRAM, "udp")


def listening_sockets(pid: int) -> list[tuple[str, str, int]]:
    """(proto, ip, port) of every TCP socket listening and UDP socket bound in process pid."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for proto, state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        try:
            rows = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] != state or cols[9] not in inodes:
                continue
            addr_hex, port_hex = cols[1].split(":")
            raw = bytes.fromhex(addr_hex)
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
            found.append((proto, socket.inet_ntop(family, raw), int(port_hex, 16)))
    return found


def tcp_port_open(port: int, host: str = HOST, timeout_s: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout_s):
        return True
    return False


# --- binaries --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binary:
    name: str
    candidates: tuple[str, ...]
    package: str
    how: str = ""

    def find(self) -> Path:
        for candidate in self.candidates:
            found = shutil.which(candidate) if "/" not in candidate else None
            path = Path(found) if found else Path(candidate)
            if path.is_file() and os.access(path, os.X_OK):
                return path
        install = self.how or f"apt-get install {self.package}"
        raise MissingBinaryError(
            f"{self.name} not found (looked for {', '.join(self.candidates)}); install it with "
            f"`{install}` or run `bash scripts/install.sh --test`"
        )


BINARIES: dict[str, Binary] = {
    b.name: b
    for b in (
        Binary("mosquitto", ("mosquitto", "/usr/sbin/mosquitto"), "mosquitto"),
        Binary("mosquitto_pub", ("mosquitto_pub", "/usr/bin/mosquitto_pub"), "mosquitto-clients"),
        Binary("mosquitto_sub", ("mosquitto_sub", "/usr/bin/mosquitto_sub"), "mosquitto-clients"),
        Binary("influxd", ("influxd", "/usr/bin/influxd"), "influxdb"),
        Binary("victoria-metrics", ("victoria-metrics", "/usr/bin/victoria-metrics"),
               "victoria-metrics"),
        Binary("prometheus", ("prometheus", "/usr/bin/prometheus"), "prometheus"),
        Binary("promtool", ("promtool", "/usr/bin/promtool"), "prometheus"),
        Binary("alertmanager", ("prometheus-alertmanager", "/usr/bin/prometheus-alertmanager",
                                "alertmanager"), "prometheus-alertmanager"),
        Binary("snmp_exporter", ("prometheus-snmp-exporter", "/usr/bin/prometheus-snmp-exporter",
                                 "snmp_exporter"), "prometheus-snmp-exporter"),
        Binary("snmpget", ("snmpget", "/usr/bin/snmpget"), "snmp"),
        Binary("snmpwalk", ("snmpwalk", "/usr/bin/snmpwalk"), "snmp"),
        Binary("snmpsim", (str(SNMPSIM_VENV / "bin" / "snmpsim-command-responder"),),
               "snmpsim",
               how=f"/usr/bin/python3 -m venv {SNMPSIM_VENV} && "
                   f"{SNMPSIM_VENV}/bin/pip install snmpsim 'pysmi<3' 'cryptography>=43'"),
        Binary("chromium", ("chromium", "/usr/bin/chromium", "chromium-browser"), "chromium"),
        Binary("munged", ("munged", "/usr/sbin/munged"), "munge"),
        Binary("slurmctld", ("slurmctld", "/usr/sbin/slurmctld"), "slurmctld"),
        Binary("slurmd", ("slurmd", "/usr/sbin/slurmd"), "slurmd"),
        Binary("scontrol", ("scontrol", "/usr/bin/scontrol"), "slurm-client"),
    )
}


def find_binary(name: str) -> Path:
    """Path of a known binary (a key of BINARIES); MissingBinaryError when it is absent."""
    return BINARIES[name].find()


# --- HTTP ------------------------------------------------------------------------------------

# No proxy: a proxy from the environment must never see loopback test traffic.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    data: bytes | str | Mapping[str, Any] | None = None,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> HttpResponse:
    """One HTTP request with the standard library; any status comes back, none raises."""
    if params:
        url = f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params)}"
    hdrs = dict(headers or {})
    body: bytes | None
    if json_body is not None:
        body = json.dumps(json_body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif isinstance(data, Mapping):
        body = urllib.parse.urlencode(data).encode()
        hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif isinstance(data, str):
        body = data.encode()
    else:
        body = data
    req = urllib.request.Request(url, data=body, method=method, headers=hdrs)
    try:
        with _opener.open(req, timeout=timeout_s) as resp:
            return HttpResponse(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as exc:
        return HttpResponse(exc.code, dict(exc.headers or {}), exc.read() or b"")


# --- process lifecycle -----------------------------------------------------------------------

_live: weakref.WeakSet[Server] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.stop(timeout_s=3)


def _lines(lines: str | bytes | Iterable[str]) -> bytes:
    if isinstance(lines, bytes):
        return lines
    if isinstance(lines, str):
        return lines.encode()
    return "\n".join(lines).encode()


class Server:
    """One server process. Subclasses say how to configure, launch and probe it.

    Ports are picked at construction and kept for the object's life, so stop() followed by
    start() brings the server back on the same port with the same data folder.
    """

    name = "server"
    binary = ""
    start_timeout_s = 30.0
    stop_timeout_s = 10.0

    def __init__(self, base_dir: Path) -> None:
        self.host = HOST
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.base_dir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.log_path = self.base_dir / f"{self.name}.log"
        self.executable = find_binary(self.binary)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._starts = 0
        self.paused = False
        self._lock = threading.RLock()
        self.allocate_ports()

    # subclass hooks
    def allocate_ports(self) -> None:
        self.port = free_tcp_port()

    def write_config(self) -> None:
        """Write config files from the current settings; called before every start."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def probe(self) -> bool:
        """True once the server answers."""
        return tcp_port_open(self.port)

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    # public API
    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def listening(self) -> list[tuple[str, str, int]]:
        """(proto, ip, port) of the sockets the running server listens on."""
        return listening_sockets(self._proc.pid) if self.is_running() and self._proc else []

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float | None = None) -> Server:
        """Start the server and wait until it answers; a no-op when it is running."""
        with self._lock:
            if self.is_running():
                return self
            # On the first start another process may take a port between our pick and the
            # server's bind; then pick fresh ports. Later starts must keep the port.
            attempts = 3 if self._starts == 0 else 1
            for attempt in range(attempts):
                try:
                    self._launch(timeout_s or self.start_timeout_s)
                    return self
                except ServerStartError:
                    if attempt + 1 < attempts and self._bind_conflict():
                        self.allocate_ports()
                        continue
                    raise
            raise AssertionError("unreachable")

    def stop(self, timeout_s: float | None = None) -> None:
        """Terminate (SIGTERM), then kill after timeout_s; a no-op when stopped."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)  # a paused server cannot handle SIGTERM
                proc.terminate()
                try:
                    proc.wait(timeout_s or self.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            self._proc = None
            self.paused = False
            _live.discard(self)

    def kill(self) -> None:
        """SIGKILL: a crash, with no clean shutdown."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait(10)
            self._proc = None
            self.paused = False
            _live.discard(self)

    def restart(self, timeout_s: float | None = None) -> Server:
        self.stop()
        return self.start(timeout_s)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing (a hung server)."""
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGCONT)
        self.paused = False

    @contextlib.contextmanager
    def stopped(self) -> Iterator[Server]:
        """Stopped inside the block, started again (same port, same data) after it."""
        self.stop()
        try:
            yield self
        finally:
            self.start()

    def close(self) -> None:
        """Stop for good; subclasses also remove what they put outside base_dir."""
        self.stop()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def http(self, method: str, path: str, **kwargs: Any) -> HttpResponse:
        return http_request(method, self.url + path, **kwargs)

    def http_ok(self, method: str, path: str, **kwargs: Any) -> HttpResponse:
        """Like http(), but a status of 400 or more raises ServerHTTPError."""
        resp = self.http(method, path, **kwargs)
        if resp.status >= 400:
            raise ServerHTTPError(method, self.url + path, resp.status, resp.text)
        return resp

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<{type(self).__name__} {self.address} {state} data={self.data_dir}>"

    # internals
    def _launch(self, timeout_s: float) -> None:
        self.write_config()
        cmd = self.command()
        self._starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start #{self._starts}: {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                env=self.env(),
                start_new_session=True,  # Ctrl-C in the terminal goes to pytest, not to us
            )
        _live.add(self)
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                _live.discard(self)
                raise ServerStartError(
                    f"{self.name} exited with status {code} while starting on {self.address}\n"
                    f"command: {' '.join(cmd)}\nlog {self.log_path}:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError, ValueError):
                if self.probe():
                    return
            if time.monotonic() > deadline:
                self.stop(timeout_s=3)
                raise ServerStartError(
                    f"{self.name} did not answer on {self.address} within {timeout_s:.0f} s\n"
                    f"command: {' '.join(cmd)}\nlog {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _bind_conflict(self) -> bool:
        tail = self.log_tail(30).lower()
        return "address already in use" in tail or "bind:" in tail


def wait_until(predicate: Any, timeout_s: float = 10.0, interval_s: float = 0.1,
               message: str = "condition") -> Any:
    """Poll predicate() until it returns something truthy; its value, or TimeoutError."""
    deadline = time.monotonic() + timeout_s
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the last error explains a timeout
            last_exc = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} not met within {timeout_s} s"
                               + (f"; last error: {last_exc!r}" if last_exc else ""))
        time.sleep(interval_s)


# --- Mosquitto -------------------------------------------------------------------------------


class Mosquitto(Server):
    """Mosquitto 2.0 with one plain listener on 127.0.0.1 and persistence in data_dir.

    extra_config is appended verbatim (more listeners, password_file, TLS settings); per
    listener settings belong after the `listener` line they apply to. Readiness waits for
    the main port and every port in extra_ports (the listeners extra_config adds).
    """

    name = "mosquitto"
    binary = "mosquitto"

    def __init__(self, base_dir: Path, *, extra_config: str = "", allow_anonymous: bool = True,
                 persistence: bool = True, extra_ports: Sequence[int] = ()) -> None:
        self.extra_config = extra_config
        self.extra_ports = list(extra_ports)
        self.allow_anonymous = allow_anonymous
        self.persistence = persistence
        super().__init__(base_dir)
        self.config_path = self.base_dir / "mosquitto.conf"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def write_config(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.data_dir}/",
            "max_queued_messages 100000",
            "log_dest stdout",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to `mosquitto`, who cannot write here
        self.config_path.write_text("\n".join(lines) + "\n" + self.extra_config + "\n")

    def command(self) -> list[str]:
        return [str(self.executable), "-c", str(self.config_path)]

    def probe(self) -> bool:
        return all(tcp_port_open(p) for p in (self.port, *self.extra_ports))


# --- InfluxDB 1.x ----------------------------------------------------------------------------


class InfluxDB(Server):
    """InfluxDB 1.x (Debian 1.6.7, v1 HTTP API) on loopback, data in data_dir."""

    name = "influxdb"
    binary = "influxd"

    def __init__(self, base_dir: Path, *, auth_enabled: bool = False,
                 extra_config: str = "") -> None:
        self.auth_enabled = auth_enabled
        self.extra_config = extra_config
        self.rpc_port = 0
        super().__init__(base_dir)
        self.config_path = self.base_dir / "influxdb.conf"
        self.username: str | None = None
        self.password: str | None = None

    def allocate_ports(self) -> None:
        self.port = free_tcp_port()
        self.rpc_port = free_tcp_port()

    def write_config(self) -> None:
        d = self.data_dir
        self.config_path.write_text(f"""\
reporting-disabled = true
bind-address = "{self.host}:{self.rpc_port}"

[meta]
  dir = "{d / 'meta'}"

[data]
  dir = "{d / 'data'}"
  wal-dir = "{d / 'wal'}"
  query-log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "{self.host}:{self.port}"
  auth-enabled = {'true' if self.auth_enabled else 'false'}
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true
{self.extra_config}
""")

    def command(self) -> list[str]:
        return [str(self.executable), "run", "-config", str(self.config_path)]

    def probe(self) -> bool:
        resp = self.http("GET", "/ping", timeout_s=1)
        return resp.status == 204

    def _auth(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.username is not None:
            params.setdefault("u", self.username)
            params.setdefault("p", self.password or "")
        return params

    def query(self, q: str, db: str | None = None, *, epoch: str | None = None,
              params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST /query; the parsed JSON. HTTP errors raise; statement errors stay in results."""
        form: dict[str, Any] = {"q": q, **(params or {})}
        if db:
            form["db"] = db
        if epoch:
            form["epoch"] = epoch
        # InfluxDB 1.x reads u and p from the URL only, never from a form body
        return self.http_ok("POST", "/query", params=self._auth({}), data=form).json()

    def points(self, q: str, db: str | None = None, *, epoch: str | None = "ns"
               ) -> list[dict[str, Any]]:
        """Rows of a query as dicts (time, tags of a GROUP BY, columns); errors raise."""
        rows: list[dict[str, Any]] = []
        for result in self.query(q, db, epoch=epoch).get("results", []):
            if "error" in result:
                raise HarnessError(f"InfluxQL error for {q!r}: {result['error']}")
            for series in result.get("series", []):
                for values in series.get("values", []):
                    row = {"_measurement": series.get("name"), **series.get("tags", {})}
                    row.update(zip(series["columns"], values))
                    rows.append(row)
        return rows

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        self.query(f'DROP DATABASE "{name}"')

    def write(self, lines: str | bytes | Iterable[str], db: str, precision: str = "ns",
              rp: str | None = None) -> None:
        """POST /write with line protocol; anything but 204 raises ServerHTTPError."""
        params = self._auth({"db": db, "precision": precision})
        if rp:
            params["rp"] = rp
        resp = self.http_ok("POST", "/write", params=params, data=_lines(lines))
        if resp.status != 204:
            raise ServerHTTPError("POST", self.url + "/write", resp.status, resp.text)


# --- VictoriaMetrics -------------------------------------------------------------------------


class VictoriaMetrics(Server):
    """VictoriaMetrics single node; takes line protocol on /write and /api/v2/write."""

    name = "victoriametrics"
    binary = "victoria-metrics"

    def __init__(self, base_dir: Path, *, extra_args: Sequence[str] = ()) -> None:
        self.extra_args = list(extra_args)
        super().__init__(base_dir)

    def command(self) -> list[str]:
        return [
            str(self.executable),
            f"-httpListenAddr={self.host}:{self.port}",
            f"-storageDataPath={self.data_dir}",
            "-retentionPeriod=100y",  # replayed recordings carry old timestamps
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=WARN",
            "-memory.allowedPercent=10",
            *self.extra_args,
        ]

    def probe(self) -> bool:
        return self.http("GET", "/health", timeout_s=1).status == 200

    def write(self, lines: str | bytes | Iterable[str], precision: str = "ns",
              db: str | None = None, api: str = "v2") -> None:
        """Line protocol through /api/v2/write (api="v2") or /write (api="v1")."""
        if api == "v2":
            params: dict[str, Any] = {"precision": precision}
            if db:
                params["bucket"] = db
            path = "/api/v2/write"
        else:
            params = {"precision": precision}
            if db:
                params["db"] = db
            path = "/write"
        self.http_ok("POST", path, params=params, data=_lines(lines))

    def flush(self) -> None:
        """Make everything written so far visible to queries and exports."""
        self.http_ok("GET", "/internal/force_flush")

    def export(self, match: str = '{__name__!=""}') -> list[dict[str, Any]]:
        """/api/v1/export: one dict per series with metric, values and timestamps (ms)."""
        self.flush()
        text = self.http_ok("GET", "/api/v1/export", params={"match[]": match}).text
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def query(self, promql: str, time_s: float | None = None) -> list[dict[str, Any]]:
        """/api/v1/query; the result list."""
        self.flush()
        params: dict[str, Any] = {"query": promql}
        if time_s is not None:
            params["time"] = time_s
        body = self.http_ok("GET", "/api/v1/query", params=params).json()
        return body["data"]["result"]


# --- Prometheus ------------------------------------------------------------------------------


class Prometheus(Server):
    """Prometheus 2.x with a config written from targets, scrape configs and rule files."""

    name = "prometheus"
    binary = "prometheus"

    def __init__(
        self,
        base_dir: Path,
        *,
        targets: Sequence[str] = (),
        scrape_configs: Sequence[Mapping[str, Any]] = (),
        rule_files: Sequence[str | Path] | Mapping[str, str | Mapping[str, Any]] = (),
        alertmanagers: Sequence[str] = (),
        self_scrape: bool = True,
        scrape_interval_s: float = 1.0,
        evaluation_interval_s: float = 1.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.targets = list(targets)
        self.scrape_configs = [dict(c) for c in scrape_configs]
        self.alertmanagers = list(alertmanagers)
        self.self_scrape = self_scrape
        self.scrape_interval_s = scrape_interval_s
        self.evaluation_interval_s = evaluation_interval_s
        self.extra_args = list(extra_args)
        super().__init__(base_dir)
        self.config_path = self.base_dir / "prometheus.yml"
        self.rule_paths = self._place_rules(rule_files)
        self.promtool = find_binary("promtool")

    def _place_rules(self, rule_files: Any) -> list[Path]:
        if isinstance(rule_files, Mapping):
            rules_dir = self.base_dir / "rules"
            rules_dir.mkdir(exist_ok=True)
            paths = []
            for name, content in rule_files.items():
                path = rules_dir / name
                text = content if isinstance(content, str) else yaml.safe_dump(dict(content))
                path.write_text(text)
                paths.append(path)
            return paths
        return [Path(p) for p in rule_files]

    def config(self) -> dict[str, Any]:
        interval = f"{int(self.scrape_interval_s * 1000)}ms"
        scrape = []
        if self.self_scrape:
            scrape.append({"job_name": "prometheus",
                           "static_configs": [{"targets": [self.address]}]})
        if self.targets:
            scrape.append({"job_name": "targets",
                           "static_configs": [{"targets": list(self.targets)}]})
        scrape.extend(self.scrape_configs)
        cfg: dict[str, Any] = {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": f"{int(self.evaluation_interval_s * 1000)}ms",
            },
            "scrape_configs": scrape,
        }
        if self.rule_paths:
            cfg["rule_files"] = [str(p) for p in self.rule_paths]
        if self.alertmanagers:
            cfg["alerting"] = {"alertmanagers": [
                {"static_configs": [{"targets": list(self.alertmanagers)}]}]}
        return cfg

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))

    def command(self) -> list[str]:
        return [
            str(self.executable),
            f"--config.file={self.config_path}",
            f"--web.listen-address={self.address}",
            f"--storage.tsdb.path={self.data_dir}",
            "--web.enable-lifecycle",
            "--web.enable-remote-write-receiver",
            "--log.level=warn",
            *self.extra_args,
        ]

    def probe(self) -> bool:
        return self.http("GET", "/-/ready", timeout_s=1).status == 200

    def reload(self) -> None:
        """Rewrite the config from the current settings and POST /-/reload."""
        self.write_config()
        self.http_ok("POST", "/-/reload")

    def api(self, path: str, **params: Any) -> Any:
        body = self.http_ok("GET", f"/api/v1/{path}", params=params or None).json()
        if body.get("status") != "success":
            raise HarnessError(f"prometheus /api/v1/{path}: {body}")
        return body["data"]

    def query(self, promql: str, time_s: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": promql}
        if time_s is not None:
            params["time"] = time_s
        return self.api("query", **params)["result"]

    def targets_status(self) -> list[dict[str, Any]]:
        """Active targets from /api/v1/targets (each with labels, health, lastError)."""
        return self.api("targets")["activeTargets"]

    def rules(self) -> list[dict[str, Any]]:
        return self.api("rules")["groups"]

    def alerts(self) -> list[dict[str, Any]]:
        return self.api("alerts")["alerts"]

    def wait_targets_up(self, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        def all_up() -> list[dict[str, Any]] | None:
            targets = self.targets_status()
            return targets if targets and all(t["health"] == "up" for t in targets) else None
        return wait_until(all_up, timeout_s, 0.2, "all prometheus targets up")


# --- Alertmanager ----------------------------------------------------------------------------

DEFAULT_ALERTMANAGER_CONFIG: dict[str, Any] = {
    "route": {"receiver": "null", "group_wait": "0s", "group_interval": "1s",
              "repeat_interval": "1h"},
    "receivers": [{"name": "null"}],
}


class Alertmanager(Server):
    """Alertmanager 0.25 without clustering, config from a dict or YAML text."""

    name = "alertmanager"
    binary = "alertmanager"

    def __init__(self, base_dir: Path, *, config: Mapping[str, Any] | str | None = None,
                 extra_args: Sequence[str] = ()) -> None:
        self.config = config if config is not None else DEFAULT_ALERTMANAGER_CONFIG
        self.extra_args = list(extra_args)
        super().__init__(base_dir)
        self.config_path = self.base_dir / "alertmanager.yml"

    def write_config(self) -> None:
        text = self.config if isinstance(self.config, str) else yaml.safe_dump(
            json.loads(json.dumps(self.config)), sort_keys=False)
        self.config_path.write_text(text)

    def command(self) -> list[str]:
        return [
            str(self.executable),
            f"--config.file={self.config_path}",
            f"--web.listen-address={self.address}",
            "--cluster.listen-address=",
            f"--storage.path={self.data_dir}",
            "--log.level=warn",
            *self.extra_args,
        ]

    def probe(self) -> bool:
        return self.http("GET", "/-/ready", timeout_s=1).status == 200

    def reload(self) -> None:
        self.write_config()
        self.http_ok("POST", "/-/reload")

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """POST /api/v2/alerts (each alert: labels, annotations, startsAt, endsAt...)."""
        self.http_ok("POST", "/api/v2/alerts", json_body=list(alerts))

    def alerts(self, *, filters: Sequence[str] = (), active: bool | None = None,
               silenced: bool | None = None, inhibited: bool | None = None
               ) -> list[dict[str, Any]]:
        """GET /api/v2/alerts; filters are matchers such as 'alertname="GpuHot"'."""
        query: list[tuple[str, str]] = [("filter", f) for f in filters]
        for key, value in (("active", active), ("silenced", silenced),
                           ("inhibited", inhibited)):
            if value is not None:
                query.append((key, "true" if value else "false"))
        path = "/api/v2/alerts" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        return self.http_ok("GET", path).json()


# --- snmp_exporter ---------------------------------------------------------------------------


class SnmpExporter(Server):
    """snmp_exporter 0.21; config is an snmp.yml as the generator writes it (module name at
    the top level, with walk/get/metrics/version/auth inside)."""

    name = "snmp_exporter"
    binary = "snmp_exporter"

    def __init__(self, base_dir: Path, *, config: Mapping[str, Any] | str | Path,
                 extra_args: Sequence[str] = ()) -> None:
        self.config = config
        self.extra_args = list(extra_args)
        super().__init__(base_dir)
        self.config_path = self.base_dir / "snmp.yml"

    def write_config(self) -> None:
        if isinstance(self.config, Path):
            text = self.config.read_text()
        elif isinstance(self.config, str):
            text = self.config
        else:
            text = yaml.safe_dump(json.loads(json.dumps(self.config)), sort_keys=False)
        self.config_path.write_text(text)

    def command(self) -> list[str]:
        return [
            str(self.executable),
            f"--config.file={self.config_path}",
            f"--web.listen-address={self.address}",
            "--log.level=warn",
            *self.extra_args,
        ]

    def probe(self) -> bool:
        return self.http("GET", "/metrics", timeout_s=1).status == 200

    def scrape(self, target: str, module: str, timeout_s: float = 15.0) -> str:
        """GET /snmp?target=&module=; the exposition text."""
        return self.http_ok("GET", "/snmp", params={"target": target, "module": module},
                            timeout_s=timeout_s).text

    def samples(self, target: str, module: str) -> list[tuple[str, dict[str, str], float]]:
        """The scrape parsed into (name, labels, value), without the exporter's own snmp_*."""
        from prometheus_client.parser import text_string_to_metric_families

        out = []
        for family in text_string_to_metric_families(self.scrape(target, module)):
            for s in family.samples:
                if not s.name.startswith("snmp_scrape_"):
                    out.append((s.name, dict(s.labels), s.value))
        return out


# --- snmpsim ---------------------------------------------------------------------------------


@dataclass
class SnmpV3User:
    user: str
    auth_key: str | None = None
    auth_proto: str = "SHA"
    priv_key: str | None = None
    priv_proto: str = "AES"

    def snmpget_args(self) -> list[str]:
        level = "authPriv" if self.priv_key else "authNoPriv" if self.auth_key else "noAuthNoPriv"
        args = ["-v3", "-u", self.user, "-l", level]
        if self.auth_key:
            args += ["-a", self.auth_proto, "-A", self.auth_key]
        if self.priv_key:
            args += ["-x", self.priv_proto, "-X", self.priv_key]
        return args


@dataclass
class SnmpGetResult:
    returncode: int
    stdout: str
    stderr: str = ""


class SnmpSim(Server):
    """snmpsim-command-responder on 127.0.0.1:PORT/udp serving .snmprec files.

    The community (v1/v2c) or the context name (v3) picks the file: `public.snmprec` answers
    community `public`. As root it drops to nobody/nogroup, so the data is copied into a
    world-readable folder in /tmp (self.data_dir), which close() removes.
    """

    name = "snmpsim"
    binary = "snmpsim"
    start_timeout_s = 60.0

    def __init__(
        self,
        base_dir: Path,
        *,
        data_dir: Path | str | None = None,
        records: Mapping[str, str] | None = None,
        variation_modules_dir: Path | str | None = None,
        v3_user: str | SnmpV3User | None = None,
        v3_auth_key: str | None = None,
        v3_auth_proto: str = "SHA",
        v3_priv_key: str | None = None,
        v3_priv_proto: str = "AES",
        v3_only: bool = False,
        extra_args: Sequence[str] = (),
    ) -> None:
        if isinstance(v3_user, str):
            v3_user = SnmpV3User(v3_user, v3_auth_key, v3_auth_proto, v3_priv_key, v3_priv_proto)
        if v3_only and v3_user is None:
            raise HarnessError("snmpsim: v3_only needs a v3_user")
        self.v3_user = v3_user
        self.v3_only = v3_only
        self.extra_args = list(extra_args)
        self.snmpget = find_binary("snmpget")
        super().__init__(base_dir)
        shutil.rmtree(self.data_dir)  # the served data lives in the readable staging dir
        self.as_root = os.geteuid() == 0
        tmp_root = "/tmp" if self.as_root else None
        self.stage_dir = Path(tempfile.mkdtemp(prefix="dcim-snmpsim-", dir=tmp_root))
        self.stage_dir.chmod(0o755)
        self.data_dir = self.stage_dir / "data"
        self.cache_dir = self.stage_dir / "cache"
        self.variation_dir: Path | None = None
        if data_dir is not None:
            shutil.copytree(data_dir, self.data_dir)
        else:
            self.data_dir.mkdir()
        for name, text in (records or {}).items():
            fname = name if name.endswith(".snmprec") else f"{name}.snmprec"
            (self.data_dir / fname).write_text(text)
        if variation_modules_dir is not None:
            self.variation_dir = self.stage_dir / "variation"
            shutil.copytree(variation_modules_dir, self.variation_dir)
        self.cache_dir.mkdir()
        self._make_readable()
        communities = sorted(p.relative_to(self.data_dir).with_suffix("").as_posix()
                             for p in self.data_dir.rglob("*.snmprec"))
        if not communities:
            raise HarnessError(f"snmpsim: no .snmprec files in {data_dir or records}")
        self.community = communities[0]

    def allocate_ports(self) -> None:
        self.port = free_udp_port()

    @property
    def url(self) -> str:
        return f"udp://{self.host}:{self.port}"

    def _make_readable(self) -> None:
        for path in [self.stage_dir, *self.stage_dir.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if self.as_root:
            # the unprivileged process writes its record indices here
            shutil.chown(self.cache_dir, "nobody", "nogroup")
        for parent in self.stage_dir.parents:
            if not parent.stat().st_mode & 0o001:
                raise HarnessError(f"snmpsim data under {parent}, which others cannot enter")

    def command(self) -> list[str]:
        cmd = [str(self.executable)]
        if self.as_root:
            cmd += ["--process-user=nobody", "--process-group=nogroup"]
        cmd += [
            f"--cache-dir={self.cache_dir}",
            "--force-index-rebuild",
            "--logging-method=stdout",
            "--log-level=info",
        ]
        if self.variation_dir is not None:
            cmd.append(f"--variation-modules-dir={self.variation_dir}")
        if self.v3_only:
            cmd.append("--v3-only")
        cmd += ["--v3-engine-id=auto"]
        if self.v3_user is not None:
            u = self.v3_user
            cmd.append(f"--v3-user={u.user}")
            if u.auth_key:
                cmd += [f"--v3-auth-key={u.auth_key}", f"--v3-auth-proto={u.auth_proto}"]
            if u.priv_key:
                cmd += [f"--v3-priv-key={u.priv_key}", f"--v3-priv-proto={u.priv_proto}"]
        cmd += [f"--data-dir={self.data_dir}", f"--agent-udpv4-endpoint={self.address}"]
        return cmd + self.extra_args

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["HOME"] = str(self.stage_dir)
        return env

    def get(self, *oids: str, community: str | None = None, v3: bool | None = None,
            context: str | None = None, timeout_s: float = 2.0, retries: int = 1
            ) -> SnmpGetResult:
        """Run net-snmp snmpget (-On -Oe) against the simulator; v3 defaults to v3-only."""
        use_v3 = self.v3_only if v3 is None else v3
        if use_v3:
            if self.v3_user is None:
                raise HarnessError("snmpsim was started without a v3 user")
            auth = self.v3_user.snmpget_args() + ["-n", context or self.community]
        else:
            auth = ["-v2c", "-c", community or self.community]
        cmd = [str(self.snmpget), *auth, "-On", "-t", str(timeout_s), "-r", str(retries),
               self.address, *(oids or ("1.3.6.1.2.1.1.1.0",))]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s * 4 + 10)
        return SnmpGetResult(proc.returncode, proc.stdout, proc.stderr)

    def probe(self) -> bool:
        res = self.get(timeout_s=0.5, retries=0)
        return "Timeout" not in res.stderr and bool(res.stdout or res.stderr)

    def _bind_conflict(self) -> bool:
        return "address already in use" in self.log_tail(30).lower()

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.stage_dir, ignore_errors=True)


# --- Slurm -----------------------------------------------------------------------------------


class Munged(Server):
    """munged with a fresh key, its socket in base_dir (Slurm's auth/munge points at it)."""

    name = "munged"
    binary = "munged"

    def allocate_ports(self) -> None:
        self.port = 0  # a Unix socket, no port

    @property
    def socket(self) -> Path:
        return self.base_dir / "munge.socket"

    def write_config(self) -> None:
        self.base_dir.chmod(0o700)
        key = self.base_dir / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
            key.chmod(0o600)

    def command(self) -> list[str]:
        b = self.base_dir
        # --force: the tests run as root in CI, which munged refuses without it.
        return [str(self.executable), "--foreground", "--force", f"--key-file={b / 'munge.key'}",
                f"--socket={self.socket}", f"--pid-file={b / 'munged.pid'}", f"--seed-file={b / 'munged.seed'}",
                f"--log-file={b / 'munged.file.log'}"]

    def probe(self) -> bool:
        return self.socket.exists()


class Slurmctld(Server):
    """slurmctld in the foreground (-D) on a free port; its slurm.conf is written by SlurmCluster."""

    name = "slurmctld"
    binary = "slurmctld"

    def __init__(self, base_dir: Path, conf: Path) -> None:
        self.conf = conf
        super().__init__(base_dir)

    def command(self) -> list[str]:
        return [str(self.executable), "-D", "-i", "-f", str(self.conf)]


class Slurmd(Server):
    """One slurmd (-D -N NAME) standing in for one node of the hall, all on 127.0.0.1."""

    name = "slurmd"
    binary = "slurmd"

    def __init__(self, base_dir: Path, conf: Path, node: str, port: int) -> None:
        self.conf = conf
        self.node = node
        self._fixed_port = port
        super().__init__(base_dir)

    def allocate_ports(self) -> None:
        self.port = self._fixed_port

    def command(self) -> list[str]:
        return [str(self.executable), "-D", "-f", str(self.conf), "-N", self.node]


class SlurmCluster:
    """A real Slurm controller and one slurmd per node name, on loopback, authenticated by munge.

    Every node is ``NodeHostname=localhost NodeAddr=127.0.0.1`` with its own ``Port=``, and each
    slurmd runs with ``-N <node>`` (Slurm's multiple-slurmd mode, which Debian's build supports).
    ``scontrol(...)`` runs the client against this cluster's slurm.conf (``SLURM_CONF``).
    """

    def __init__(self, base_dir: Path, nodes: Sequence[str], *, partition: str = "gpu") -> None:
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.nodes = list(nodes)
        self.partition = partition
        self.conf = self.base_dir / "slurm.conf"
        self.scontrol_path = find_binary("scontrol")
        self.munged = Munged(self.base_dir / "munge")
        self.ctld = Slurmctld(self.base_dir / "ctld", self.conf)
        self.slurmds = [Slurmd(self.base_dir / "nodes" / n, self.conf, n, free_tcp_port()) for n in self.nodes]

    def write_config(self) -> None:
        import getpass

        user = getpass.getuser()
        state = self.base_dir / "state"
        state.mkdir(exist_ok=True)
        lines = [
            "ClusterName=dcimtest",
            f"SlurmctldHost=localhost({HOST})",
            f"SlurmctldPort={self.ctld.port}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munged.socket}",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            f"StateSaveLocation={state}",
            f"SlurmdSpoolDir={self.base_dir / 'nodes' / '%n'}",
            f"SlurmctldPidFile={self.ctld.base_dir / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.base_dir / 'nodes' / '%n' / 'slurmd.pid'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SchedulerType=sched/builtin",
            "SelectType=select/linear",
            "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "ReturnToService=2",
            "SlurmdTimeout=300",
        ]
        for sd in self.slurmds:
            lines.append(f"NodeName={sd.node} NodeHostname=localhost NodeAddr={HOST} Port={sd.port} CPUs=1 "
                         "State=UNKNOWN")
        lines.append(f"PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def scontrol(self, *args: str) -> str:
        res = subprocess.run([str(self.scontrol_path), *args], capture_output=True, text=True, env=self.env(),
                             timeout=30)
        if res.returncode != 0:
            raise HarnessError(f"scontrol {' '.join(args)}: exit {res.returncode}: {res.stderr.strip()}")
        return res.stdout

    def states(self) -> dict[str, str]:
        """Node name -> State (e.g. IDLE, IDLE+DRAIN) from ``scontrol show node -o``."""
        out = {}
        for line in self.scontrol("show", "node", "-o").splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if "NodeName" in fields:
                out[fields["NodeName"]] = fields.get("State", "")
        return out

    def start(self, timeout_s: float = 60.0) -> SlurmCluster:
        self.munged.start()
        self.write_config()
        self.ctld.start()
        for sd in self.slurmds:
            sd.start()
        wait_until(lambda: all(s.startswith("IDLE") and "NOT_RESPONDING" not in s
                               for s in self.states().values()) and len(self.states()) == len(self.nodes),
                   timeout_s, 0.5, "every slurmd registered and idle")
        return self

    def reset(self) -> None:
        """Return every node to service (between tests)."""
        drained = [n for n, st in self.states().items() if "DRAIN" in st]
        if drained:
            self.scontrol("update", f"nodename={','.join(drained)}", "state=resume")

    def close(self) -> None:
        for sd in self.slurmds:
            sd.close()
        self.ctld.close()
        self.munged.close()

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
