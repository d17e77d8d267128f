"""Configuration models (pydantic v2, extra="forbid") for a site: its topology and one section per component.

Errors name the file, the path inside it (with the YAML line where known) and what was expected.
Secrets never live in the YAML: a secret is ``{env: NAME}`` or ``{file: PATH}`` and is resolved when used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from dcim.errors import ConfigError, SecretError
from dcim.vendors import COOLING_VENDORS, PDU_VENDORS


class Model(BaseModel):
    """Base of every configuration model: unknown keys are errors, not silently ignored."""

    # hide_input_in_errors: a ValidationError printed anywhere must not repeat a URL with
    # credentials or a misplaced secret
    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=True, hide_input_in_errors=True)


# --- secrets ----------------------------------------------------------------------------------


class Secret(Model):
    """A secret taken from an environment variable or a file, never written in the YAML itself."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_literals(cls, data: Any) -> Any:
        if isinstance(data, str):
            msg = (
                "secrets are not accepted inline; give {env: VARIABLE} or {file: /path/to/secret} "
                "(the value itself is not repeated here)"
            )
            raise ValueError(msg)
        return data

    @model_validator(mode="after")
    def _one_source(self) -> Secret:
        if (self.env is None) == (self.file is None):
            msg = "give exactly one of 'env' or 'file'"
            raise ValueError(msg)
        return self

    def resolve(self) -> SecretStr:
        """Read the secret now; SecretError says which variable or file is missing, never the value."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                msg = f"environment variable {self.env} is not set"
                raise SecretError(msg)
            return SecretStr(value)
        assert self.file is not None
        try:
            return SecretStr(self.file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            msg = f"cannot read secret file {self.file}: {exc.strerror}"
            raise SecretError(msg) from exc

    def __repr__(self) -> str:
        return f"Secret(env={self.env!r})" if self.env else f"Secret(file={str(self.file)!r})"


#: query parameters that carry credentials (InfluxDB 1.x takes u and p; webhooks often a token)
_CREDENTIAL_PARAMS = frozenset(("u", "p", "user", "username", "password", "pass", "passwd", "pwd", "token",
                                "access_token", "auth", "authorization", "secret", "key", "apikey", "api_key",
                                "sig", "signature", "client_secret"))


def check_url_credentials(url: str) -> str:
    """Refuse a URL that carries credentials (``user:password@host`` or a credential query
    parameter): URLs end up in logs, error messages, recordings and ``ps``. The message never
    repeats the URL. Returns the URL unchanged."""
    try:
        parts = urlsplit(url)
        has_user = parts.username is not None or parts.password is not None
    except ValueError:
        has_user = "@" in url.split("/", 3)[2] if url.count("/") >= 2 else False
        parts = None
    if has_user:
        msg = ("the URL carries a user name or password (user:password@host), which would end up in logs; "
               "give them as username and password (a {env: ...} or {file: ...} secret) instead "
               "(the URL is not repeated here)")
        raise ValueError(msg)
    if parts is not None and parts.query:
        for key, _ in parse_qsl(parts.query, keep_blank_values=True):
            if key.lower() in _CREDENTIAL_PARAMS or any(w in key.lower() for w in ("password", "token", "secret")):
                msg = (f"the URL's query carries a credential ({key!r}), which would end up in logs; give it "
                       "as a secret in the configuration instead (the value is not repeated here)")
                raise ValueError(msg)
    return url


#: A URL without credentials in it (see ``check_url_credentials``).
Url = Annotated[str, AfterValidator(check_url_credentials)]


# --- topology ---------------------------------------------------------------------------------

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
Feed = Literal["A", "B"]
Phase = Literal["L1", "L2", "L3"]
#: the vendors a PDU / a coolant loop's CDU may name: the rows of dcim.vendors' one table
PduVendor = Literal[tuple(PDU_VENDORS)]  # type: ignore[valid-type]
CoolingVendor = Literal[tuple(COOLING_VENDORS)]  # type: ignore[valid-type]


class GpuModelSpec(Model):
    """Electrical and thermal character of a GPU model, used by the simulator and as rule fallbacks."""

    name: str = "NVIDIA H100 80GB HBM3"
    tdp_w: float = Field(700.0, gt=0)
    idle_w: float = Field(70.0, ge=0)
    slowdown_temp_c: float = 87.0
    shutdown_temp_c: float = 92.0
    max_operating_temp_c: float = 85.0
    mem_max_temp_c: float = 95.0
    thermal_resistance_c_per_w: float = Field(0.045, gt=0, description="die-to-coolant, °C per W")
    max_sm_clock_mhz: float = 1980.0
    mem_clock_mhz: float = 2619.0
    memory_bytes: int = 80 * 1024**3
    nvlink_bytes_per_s: float = Field(450e9, gt=0, description="NVLink bandwidth per direction, all links")


class NodeConfig(Model):
    """A GPU server: how many GPUs of which model, and the PDU outlets its power supplies plug into."""

    name: Name
    gpus: int = Field(8, ge=0, le=16)
    gpu_model: str = "H100-SXM5"
    base_power_w: float = Field(1800.0, ge=0, description="CPUs, memory, NICs, fans of the server itself")
    outlets: dict[str, list[int]] = Field(default_factory=dict, description="PDU name -> outlet numbers")
    workload: str = "training"


class PduConfig(Model):
    """A rack PDU on one feed: phases, voltage, breaker rating, and which phase each outlet sits on."""

    name: Name
    feed: Feed = "A"
    phases: Literal[1, 3] = 3
    voltage_v: float = Field(230.0, gt=0, description="phase-to-neutral voltage")
    breaker_a: float = Field(63.0, gt=0, description="rating of each phase's breaker")
    outlets: int = Field(24, ge=1, le=96)
    outlet_phase: dict[int, Phase] = Field(default_factory=dict, description="outlet -> phase; default: banks")
    power_factor: float = Field(0.98, gt=0, le=1)
    vendor: PduVendor = "apc"
    snmp_port: int | None = Field(None, ge=1, le=65535, description="loopback UDP port of its simulated agent")

    def phase_of(self, outlet: int) -> Phase:
        if outlet in self.outlet_phase:
            return self.outlet_phase[outlet]
        if self.phases == 1:
            return "L1"
        bank = (outlet - 1) * 3 // self.outlets
        return ("L1", "L2", "L3")[min(bank, 2)]

    @property
    def capacity_w(self) -> float:
        """Nameplate capacity: phases x voltage x breaker rating."""
        return self.phases * self.voltage_v * self.breaker_a


class RackConfig(Model):
    """A rack: its nodes, its PDUs and its power budget."""

    name: Name
    nodes: list[NodeConfig] = Field(default_factory=list)
    pdus: list[PduConfig] = Field(default_factory=list)
    rating_w: float | None = Field(None, gt=0, description="rack power budget; default: one feed's capacity")
    overhead_w: float = Field(600.0, ge=0, description="switches, fans and other loads on the PDUs")

    @property
    def budget_w(self) -> float:
        if self.rating_w is not None:
            return self.rating_w
        caps = [p.capacity_w for p in self.pdus]
        return min(caps) if caps else 0.0


class RowConfig(Model):
    name: Name
    racks: list[RackConfig]


class RoomConfig(Model):
    name: Name
    rows: list[RowConfig]


class LoopConfig(Model):
    """A secondary coolant loop served by one CDU, and the racks it cools."""

    name: Name
    cdu: Name
    racks: list[str] = Field(min_length=1)
    setpoint_c: float = Field(30.0, description="CDU supply setpoint (ASHRAE W32 / OCP ~30 °C)")
    nominal_flow_lpm: float = Field(600.0, gt=0)
    nominal_pump_pct: float = Field(70.0, gt=0, le=100)
    supply_pressure_kpa: float = Field(300.0, gt=0)
    diff_pressure_kpa: float = Field(150.0, gt=0)
    fluid_cp_j_per_kg_k: float = Field(3900.0, gt=0, description="PG25: ~3900 J/(kg K)")
    fluid_density_kg_per_l: float = Field(1.02, gt=0)
    vendor: CoolingVendor = "liebert"
    snmp_port: int | None = Field(None, ge=1, le=65535)


class DefaultsConfig(Model):
    """Templates applied to racks that give counts instead of lists (``nodes: 4``)."""

    nodes_per_rack: int = Field(4, ge=0)
    gpus_per_node: int = Field(8, ge=0, le=16)
    gpu_model: str = "H100-SXM5"
    base_power_w: float = Field(1800.0, ge=0, description="NodeConfig.base_power_w of the nodes a count makes")
    pdus: list[PduConfig] = Field(
        default_factory=lambda: [PduConfig(name="pdu-a", feed="A"), PduConfig(name="pdu-b", feed="B")]
    )


# --- component sections -----------------------------------------------------------------------


class MqttConfig(Model):
    """The MQTT broker every component talks to."""

    url: Url = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: Secret | None = None
    client_id: str | None = None
    topic_prefix: str = "dcim"
    qos: Literal[0, 1, 2] = 1
    keepalive_s: int = Field(30, ge=5)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = False


class MetricsConfig(Model):
    """Where a component serves /metrics; ``port: 0`` turns it off."""

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)


class GpuAgentConfig(Model):
    interval_s: float = Field(1.0, gt=0)
    simulate: bool = False
    queue_max: int = Field(10_000, ge=1, description="polls held while the broker is away")
    metrics: MetricsConfig = MetricsConfig(port=9400)
    reinit_backoff_max_s: float = Field(60.0, gt=0)


class SnmpV3Config(Model):
    user: str
    auth_protocol: Literal["SHA", "SHA256", "SHA512", "MD5"] = "SHA"
    auth_key: Secret
    priv_protocol: Literal["AES", "AES192", "AES256", "DES"] = "AES"
    priv_key: Secret


class SnmpDeviceConfig(Model):
    name: Name
    address: str = "127.0.0.1"
    port: int = Field(161, ge=1, le=65535)
    version: Literal["2c", "3"] = "2c"
    community: Secret | None = None
    v3: SnmpV3Config | None = None
    profile: str = "auto"
    rack: str | None = None
    timeout_s: float = Field(2.0, gt=0)
    retries: int = Field(1, ge=0)
    max_repetitions: int = Field(25, ge=1, le=500)
    tags: dict[str, str] = Field(default_factory=dict, description="extra tags, e.g. {pdu: pdu-a} or {loop: loop-a}")


class SnmpAgentConfig(Model):
    interval_s: float = Field(10.0, gt=0)
    max_in_flight: int = Field(64, ge=1)
    devices: list[SnmpDeviceConfig] = Field(default_factory=list)
    queue_max: int = Field(10_000, ge=1)
    metrics: MetricsConfig = MetricsConfig(port=9116)


class InfluxConfig(Model):
    """An InfluxDB sink: v1 (/write, db + rp + user/password) or v2 (/api/v2/write, org + bucket + token)."""

    url: Url = "http://127.0.0.1:8086"
    api: Literal["v1", "v2"] = "v1"
    database: str = "dcim"
    retention_policy: str | None = None
    username: str | None = None
    password: Secret | None = None
    org: str | None = None
    bucket: str | None = None
    token: Secret | None = None
    timeout_s: float = Field(10.0, gt=0)
    gzip: bool = Field(False, description="gzip request bodies (saves bandwidth, costs collector CPU)")
    ca_file: Path | None = Field(None, description="CA certificate(s) to verify an https:// InfluxDB with")

    @model_validator(mode="after")
    def _v2_needs_bucket(self) -> InfluxConfig:
        if self.api == "v2" and not self.bucket:
            msg = "api v2 needs 'bucket' (and usually 'org' and 'token')"
            raise ValueError(msg)
        return self


class InfluxV1SinkConfig(Model):
    """InfluxDB 1.x ``/write`` (also 2.x/3.x through their v1 API): database, retention policy, user."""

    kind: Literal["influxdb_v1"]
    name: Name | None = Field(None, description="label on /metrics and spool folder; default the kind")
    url: Url = "http://127.0.0.1:8086"
    database: str = "dcim"
    retention_policy: str | None = None
    username: str | None = None
    password: Secret | None = None
    timeout_s: float = Field(10.0, gt=0)
    gzip: bool = False
    ca_file: Path | None = None

    def influx(self) -> InfluxConfig:
        return InfluxConfig(url=self.url, api="v1", database=self.database, retention_policy=self.retention_policy,
                            username=self.username, password=self.password, timeout_s=self.timeout_s,
                            gzip=self.gzip, ca_file=self.ca_file)


class InfluxV2SinkConfig(Model):
    """``/api/v2/write``: InfluxDB 2.x and 3.x, 1.8+ (bucket ``db/rp``), VictoriaMetrics."""

    kind: Literal["influxdb_v2"]
    name: Name | None = Field(None, description="label on /metrics and spool folder; default the kind")
    url: Url = "http://127.0.0.1:8086"
    org: str | None = None
    bucket: str
    token: Secret | None = None
    timeout_s: float = Field(10.0, gt=0)
    gzip: bool = False
    ca_file: Path | None = None

    def influx(self) -> InfluxConfig:
        return InfluxConfig(url=self.url, api="v2", org=self.org, bucket=self.bucket, token=self.token,
                            timeout_s=self.timeout_s, gzip=self.gzip, ca_file=self.ca_file)


class EmbeddedSinkConfig(Model):
    """The embedded store (no server)."""

    kind: Literal["embedded"]
    name: Name | None = Field(None, description="label on /metrics and spool folder; default the kind")
    path: Path = Path("var/store")


#: Every sink kind's configuration model, by ``kind`` (Telegraf's and Vector's plugin-registry
#: pattern: a new sink kind is one model here and one class in collector/sinks.py).
SINK_CONFIGS: dict[str, type[Model]] = {
    "influxdb_v1": InfluxV1SinkConfig,
    "influxdb_v2": InfluxV2SinkConfig,
    "embedded": EmbeddedSinkConfig,
}
SinkConfig = Annotated[InfluxV1SinkConfig | InfluxV2SinkConfig | EmbeddedSinkConfig, Field(discriminator="kind")]


class CollectorConfig(Model):
    topics: list[str] = Field(default_factory=lambda: ["dcim/#"])
    shared_group: str | None = Field(None, description="join $share/<group>/... to split the stream")
    sink: Literal["influx", "embedded"] = "embedded"
    influx: InfluxConfig = InfluxConfig()
    embedded_path: Path = Path("var/store")
    spool_path: Path = Path("var/spool")
    spool_max_bytes: int = Field(1024**3, ge=1024)
    dead_letter_path: Path = Path("var/dead-letter.jsonl")
    batch_size: int = Field(5000, ge=1)
    linger_ms: int = Field(1000, ge=0)
    mappings: list[Path] = Field(default_factory=list)
    max_future_s: float = Field(600.0, gt=0, description="refuse timestamps further ahead than this")
    max_past_s: float = Field(10 * 365 * 86400.0, gt=0)
    metrics: MetricsConfig = MetricsConfig(port=9108)
    alerts: bool = Field(False, description="run the alert engine on the live stream")
    client_id: str | None = Field(
        None, description="MQTT client id; stable across restarts (persistent session); default dcim-collector-<host>"
    )
    session_expiry_s: int = Field(7 * 86400, ge=0, description="MQTT 5 session expiry: how long the broker keeps our queue")
    receive_maximum: int = Field(2000, ge=1, le=65535, description="unacknowledged QoS 1 messages the broker may send us")
    max_payload_bytes: int = Field(4 * 1024**2, ge=1024, description="larger MQTT payloads are dead-lettered")
    dead_letter_max_bytes: int = Field(256 * 1024**2, ge=4096, description="rotate the dead-letter file to .1 past this")
    spool_segment_bytes: int = Field(16 * 1024**2, ge=4096)
    spool_warn_ratio: float = Field(0.8, gt=0, lt=1, description="spool fill ratio that raises the near-full metric")
    retry_max_s: float = Field(30.0, gt=0, description="longest wait between retries of an unavailable sink")
    check_topic_tags: bool = Field(True, description="refuse lines whose device tags disagree with their topic")
    topic_tags: list[str] = Field(
        default_factory=lambda: ["+/{site}/{rack}/{node}/gpu", "+/{site}/{rack}/{device}/snmp"],
        description="topic layouts: '+' is any level, '{tag}' a level that a line's tag of that name must equal",
    )
    max_series: int = Field(500_000, ge=1, description="series (measurement + tags) this collector admits; "
                            "new ones past it are refused, so a flood cannot use up the store's series limit")
    self_report_s: float = Field(0.0, ge=0, description="write an agent record about the collector itself "
                                 "(spool fill, dead letters) this often, for the pipeline rules; 0: never "
                                 "(deploy/site.yaml turns it on)")
    broker_stats: bool = Field(False, description="read the broker's $SYS counters (dropped messages, store) "
                               "into broker records (deploy/site.yaml turns it on)")
    sinks: list[SinkConfig] = Field(
        default_factory=list,
        description="write to every one of these (each with its own spool under spool_path/<name>; a message "
                    "is acknowledged once all have it); empty: the one sink given by sink/influx/embedded_path",
    )

    @model_validator(mode="after")
    def _sink_names_unique(self) -> CollectorConfig:
        names = [sc.name or sc.kind for sc in self.sinks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            msg = f"sink names must be unique; give 'name' to tell apart: {', '.join(dup)}"
            raise ValueError(msg)
        return self


class NotifierConfig(Model):
    kind: Literal["alertmanager", "webhook", "console", "log"]
    url: Url | None = None
    secret: Secret | None = Field(None, description="HMAC-SHA256 key for webhook signatures")
    timeout_s: float = Field(5.0, gt=0)
    resend_interval_s: float = Field(60.0, gt=0)
    resolve_resend_s: float = Field(300.0, ge=0, description="alertmanager: keep re-sending a resolution this long")
    retries: int = Field(3, ge=0, description="webhook: retries after a failed POST")
    backoff_s: float = Field(0.5, ge=0, description="webhook: first retry delay, doubled each time")


class ActionDriverConfig(Model):
    """Where remediation actions go (docs/failover.md): a scheduler, or a signed webhook."""

    kind: Literal["slurm", "kubernetes", "webhook", "log"]
    url: Url | None = Field(None, description="kubernetes: API server; webhook: receiver; slurm: slurmrestd base URL")
    secret: Secret | None = Field(None, description="webhook: HMAC-SHA256 key; kubernetes/slurmrestd: bearer token")
    scontrol: str = Field("scontrol", description="slurm without url: the scontrol command")
    slurm_conf: Path | None = Field(None, description="slurm: SLURM_CONF for scontrol (default: Slurm's own)")
    slurm_user: str | None = Field(None, description="slurmrestd: X-SLURM-USER-NAME")
    slurmrestd_api: str = Field("v0.0.39", pattern=r"^v\d+\.\d+\.\d+$", description="slurmrestd: API version path")
    ca_file: Path | None = Field(None, description="kubernetes: CA bundle of the API server")
    taint_key: str = Field("nvidia.com/gpu-health", description="kubernetes: taint key set on cordoned nodes")
    node_names: dict[str, str] = Field(default_factory=dict, description="site node name -> scheduler node name")
    timeout_s: float = Field(10.0, gt=0)
    retries: int = Field(3, ge=0, description="webhook: retries after a failed POST")
    backoff_s: float = Field(0.5, ge=0, description="webhook: first retry delay, doubled each time")


class ActionsConfig(Model):
    """Remediation actions the rule pack declares (``actions:`` on a rule), and the operator's limits on them."""

    enabled: bool = Field(False, description="take actions at all (the rule pack declares them; this turns them on)")
    dry_run: bool = Field(False, description="plan and record every action, call no driver")
    max_drained_share: float = Field(0.1, gt=0, le=1, description="never hold more than this share of the "
                                     "site's nodes out at once (at least one node)")
    resume: Literal["auto", "manual"] = Field("auto", description="auto: resume a node when its alerts resolve; "
                                              "manual: keep it out for an operator")
    resume_hold_s: float = Field(0.0, ge=0, description="auto: resume only after the alert stayed resolved this long")
    drivers: list[ActionDriverConfig] = Field(default_factory=list)


class AlertsConfig(Model):
    rules: list[Path] = Field(default_factory=lambda: [Path("alerts/rules")])
    notifiers: list[NotifierConfig] = Field(default_factory=lambda: [NotifierConfig(kind="console")])
    actions: ActionsConfig = ActionsConfig()
    evaluation_interval_s: float = Field(1.0, gt=0)
    lateness_s: float = Field(0.0, ge=0, description="live: evaluate a boundary this long after the wall clock passes it")
    state_path: Path | None = Field(None, description="live: pending/firing alert state saved here, restored on start")
    for_grace_period_s: float = Field(600.0, ge=0, description="a restored pending alert fires no sooner than this")
    for_outage_tolerance_s: float = Field(3600.0, ge=0, description="saved alert state older than this is not restored")


class SimulatorConfig(Model):
    seed: int = 42
    step_s: float = Field(1.0, gt=0)
    ambient_c: float = 24.0


class DashboardsConfig(Model):
    """Grafana dashboards: where they read from, where they go, and the settings they show."""

    datasource_uid: str = Field("dcim-influxdb", min_length=1, description="uid of the InfluxDB (InfluxQL) datasource")
    datasource_name: str = "DCIM InfluxDB"
    influx_url: Url = Field("http://127.0.0.1:8086", description="written into the provisioned datasource")
    database: str = "dcim"
    folder: str = "DCIM"
    folder_uid: str = Field("dcim", min_length=1)
    tariff_per_kwh: float = Field(0.15, ge=0, description="energy price per kWh for the cost panels")
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 code; Grafana unit currency<CODE>")
    util_good_pct: float = Field(90.0, ge=0, le=100, description="fleet GPU utilization at or above this is good")
    util_look_pct: float = Field(80.0, ge=0, le=100, description="fleet GPU utilization under this needs a look")


def _default_outlets(pdu: PduConfig, node_index: int) -> list[int]:
    """One outlet per phase bank for node ``node_index``: a server's supplies spread over the phases."""
    bank = pdu.outlets // pdu.phases
    return [node_index % bank + 1 + k * bank for k in range(pdu.phases)]


def _rack_dicts(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every rack mapping in raw site data, skipping whatever is not shaped like one."""
    rooms = data.get("rooms")
    for room in rooms if isinstance(rooms, list) else []:
        rows = room.get("rows") if isinstance(room, dict) else None
        for row in rows if isinstance(rows, list) else []:
            racks = row.get("racks") if isinstance(row, dict) else None
            for rack in racks if isinstance(racks, list) else []:
                if isinstance(rack, dict):
                    yield rack


class SiteConfig(Model):
    """A whole site: topology plus one section per component."""

    site: Name
    defaults: DefaultsConfig = DefaultsConfig()
    gpu_models: dict[str, GpuModelSpec] = Field(default_factory=lambda: {"H100-SXM5": GpuModelSpec()})
    rooms: list[RoomConfig]
    loops: list[LoopConfig] = Field(default_factory=list)
    mqtt: MqttConfig = MqttConfig()
    gpu_agent: GpuAgentConfig = GpuAgentConfig()
    snmp_agent: SnmpAgentConfig = SnmpAgentConfig()
    collector: CollectorConfig = CollectorConfig()
    alerts: AlertsConfig = AlertsConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    dashboards: DashboardsConfig = DashboardsConfig()

    @model_validator(mode="before")
    @classmethod
    def _expand_counts(cls, data: Any) -> Any:
        """``nodes: 4`` and missing ``pdus`` in a rack expand from ``defaults``.

        Malformed parts are left alone here: the main validation reports them with their path.
        """
        if not isinstance(data, dict):
            return data
        try:
            defaults = DefaultsConfig.model_validate(data.get("defaults") or {})
        except (ValidationError, TypeError):
            return data
        for rack in _rack_dicts(data):
            rname = rack.get("name", "rack")
            if "pdus" not in rack:
                rack["pdus"] = [p.model_dump() for p in defaults.pdus]
            nodes = rack.get("nodes", defaults.nodes_per_rack)
            if isinstance(nodes, int) and not isinstance(nodes, bool):
                try:
                    pdus = [PduConfig.model_validate(p) for p in rack["pdus"]]
                except (ValidationError, TypeError):
                    pdus = []  # the PDU's own error is reported by the main validation
                rack["nodes"] = [
                    {
                        "name": f"{rname}-n{i + 1:02d}",
                        "gpus": defaults.gpus_per_node,
                        "gpu_model": defaults.gpu_model,
                        "base_power_w": defaults.base_power_w,
                        "outlets": {p.name: _default_outlets(p, i) for p in pdus},
                    }
                    for i in range(nodes)
                ]
        return data

    @model_validator(mode="after")
    def _check_topology(self) -> SiteConfig:
        racks = {}
        for rack in self.racks():
            if rack.name in racks:
                msg = f"rack name {rack.name!r} is used twice"
                raise ValueError(msg)
            racks[rack.name] = rack
            pdus = {p.name: p for p in rack.pdus}
            for node in rack.nodes:
                if node.gpu_model not in self.gpu_models:
                    msg = f"node {node.name!r} uses unknown gpu_model {node.gpu_model!r} (known: {sorted(self.gpu_models)})"
                    raise ValueError(msg)
                for pdu_name, outlets in node.outlets.items():
                    if pdu_name not in pdus:
                        msg = f"node {node.name!r} plugs into unknown PDU {pdu_name!r} of rack {rack.name!r}"
                        raise ValueError(msg)
                    for o in outlets:
                        if not 1 <= o <= pdus[pdu_name].outlets:
                            msg = f"node {node.name!r}: outlet {o} does not exist on {pdu_name!r}"
                            raise ValueError(msg)
        for loop in self.loops:
            for r in loop.racks:
                if r not in racks:
                    msg = f"loop {loop.name!r} cools unknown rack {r!r}"
                    raise ValueError(msg)
        return self

    # -- navigation helpers, used by the simulator, the agents and the alert engine --

    def racks(self) -> Iterator[RackConfig]:
        for room in self.rooms:
            for row in room.rows:
                yield from row.racks

    def locations(self) -> Iterator[tuple[RoomConfig, RowConfig, RackConfig]]:
        for room in self.rooms:
            for row in room.rows:
                for rack in row.racks:
                    yield room, row, rack

    def rack_tags(self, rack_name: str) -> dict[str, str]:
        """The location tags of a rack: site, room, row, rack."""
        for room, row, rack in self.locations():
            if rack.name == rack_name:
                return {"site": self.site, "room": room.name, "row": row.name, "rack": rack.name}
        msg = f"unknown rack {rack_name!r}"
        raise KeyError(msg)

    def loop_of(self, rack_name: str) -> LoopConfig | None:
        for loop in self.loops:
            if rack_name in loop.racks:
                return loop
        return None

    def loop_tags(self, loop: LoopConfig) -> dict[str, str]:
        tags = self.rack_tags(loop.racks[0])
        return {"site": tags["site"], "room": tags["room"], "row": tags["row"], "loop": loop.name, "cdu": loop.cdu}


# --- loading with errors that name file, path and line ----------------------------------------


def _yaml_lines(text: str) -> dict[tuple[Any, ...], int]:
    """Map each path in a YAML document to its 1-based line, for error messages."""
    lines: dict[tuple[Any, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = k.value
                lines[(*path, key)] = k.start_mark.line + 1
                walk(v, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*path, i))

    if root is not None:
        walk(root, ())
    return lines


def format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def load_yaml(path: str | Path) -> tuple[Any, str]:
    """Parse a YAML file; ConfigError names the file and line of a syntax error."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read: {exc.strerror}"
        raise ConfigError(msg, file=str(p)) from exc
    try:
        return yaml.safe_load(text), text
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        msg = f"{where}invalid YAML: {problem}"
        raise ConfigError(msg, file=str(p)) from exc


def validation_error(exc: ValidationError, *, file: str, text: str | None = None) -> ConfigError:
    """Turn a pydantic error into one ConfigError naming file, path, line and what was expected."""
    lines = _yaml_lines(text) if text else {}
    problems = []
    first_path = None
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "tagged-union"))))
        path = format_loc(loc)
        first_path = first_path or path
        line = None
        for n in range(len(loc), -1, -1):
            if loc[:n] in lines:
                line = lines[loc[:n]]
                break
        where = f"{path} (line {line})" if line else path
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not part of the configuration; check the spelling)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        problems.append(f"{where}: {msg}")
    message = "invalid configuration:\n  " + "\n  ".join(problems)
    return ConfigError(message, file=file)


def load_model(model: type[BaseModel], path: str | Path) -> Any:
    """Load any configuration model from a YAML file."""
    data, text = load_yaml(path)
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, file=str(path), text=text) from None


def load_site(path: str | Path) -> SiteConfig:
    """Load and validate a site file."""
    return load_model(SiteConfig, path)


#: Embedded sites by name (``dcim/data/sites/<name>.yaml``), for ``--site NAME`` and for tests that need
#: one topology whatever the default is.
SITES_DIR = Path(__file__).resolve().parent / "data" / "sites"

#: The embedded default site, used whenever no ``--site`` is given: the AI-factory pod (GB200 NVL72-class
#: racks of about 120 kW on in-row CDUs, and a row of H100 nodes).
DEFAULT_SITE = SITES_DIR / "ai-factory-pod.yaml"


def default_site() -> SiteConfig:
    return load_site(DEFAULT_SITE)


def site_names() -> list[str]:
    return sorted(p.stem for p in SITES_DIR.glob("*.yaml"))


def named_site(name: str) -> SiteConfig:
    """An embedded site by name; ConfigError lists the names there are."""
    path = SITES_DIR / f"{name}.yaml"
    if not path.is_file():
        msg = f"no embedded site named {name!r} (embedded: {', '.join(site_names())})"
        raise ConfigError(msg)
    return load_site(path)
