"""The GPU agent's /metrics: a drop-in for dcgm-exporter's default counters, plus our own names.

dcgm-exporter spells its metrics ``DCGM_FI_*`` with labels ``gpu, UUID, pci_bus_id, device, modelName,
Hostname`` (``hostname`` since 4.5) and ``DCGM_FI_DRIVER_VERSION``; both host label spellings are
sent so old and new dashboards keep working. Names, types and units follow its
etc/default-counters.csv (NVIDIA/dcgm-exporter); its counters carry no ``_total`` suffix, which
prometheus-client's writer would add to every counter, so ``render`` writes the text format itself
from the registry and types those families ``counter`` under the exact dcgm-exporter name. Fields
dcgm-exporter lacks and the agent's own health use snake_case ``dcim_gpu_*`` names in base units.

A value missing from a poll (unsupported, failed, GPU lost) has no sample: never a 0. The XID
gauge is the exception dcgm-exporter makes too: 0 until the first XID, once events are registered.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from dcim.agents.gpu.reader import GpuReading
from dcim.agents.gpu.xid import XidSummary
from dcim import gpu_fields

#: schema field -> its dcgm-exporter metric (name, factor from the schema unit, type, help as
#: dcgm-exporter's CSV), the field's row of the GPU field table (dcim.gpu_fields)
DCGM: dict[str, gpu_fields.Metric] = {
    f.name: f.metric for f in gpu_fields.GPU_FIELDS if f.metric is not None and f.metric.dcgm
}

#: dcgm-exporter's NVLink total: data bytes of every link, both directions, in KiB (NVML's unit for
#: NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_*).
NVLINK_TOTAL = ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "Total number of NVLink bandwidth counters for all lanes")

#: Families written as ``counter`` under their exact (suffix-less) dcgm-exporter name by ``render``.
DCGM_COUNTERS: frozenset[str] = frozenset(
    [m.name for m in DCGM.values() if m.type == "counter"] + [NVLINK_TOTAL[0]])

#: schema field -> our metric for fields dcgm-exporter does not have (a ``label`` when fields share
#: one family: the clock-event reasons); ``lost`` is written for every GPU from its reading, not from its values
OWN: dict[str, gpu_fields.Metric] = {
    f.name: f.metric for f in gpu_fields.GPU_FIELDS if f.metric is not None and not f.metric.dcgm and f.name != "lost"
}
_LOST = gpu_fields.BY_NAME["lost"].metric

DCGM_LABELS = ("gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "hostname", "DCGM_FI_DRIVER_VERSION")
OWN_LABELS = ("gpu", "uuid", "node")


@dataclass(slots=True)
class Snapshot:
    """What the last poll saw; swapped in whole, so a scrape never sees half a poll."""

    node: str
    driver_version: str
    readings: list[GpuReading] = field(default_factory=list)
    xids: dict[str, XidSummary] = field(default_factory=dict)
    xid_supported: dict[str, bool] = field(default_factory=dict)  # uuid -> XID events registered
    nvml_up: bool = False
    polls_total: int = 0
    poll_duration_s: float | None = None
    reinits_total: int = 0
    errors_by_field: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (gpu, uuid, field) -> n
    unsupported: list[tuple[str, str, str, str]] = field(default_factory=list)  # gpu, uuid, field, reason


class GpuCollector:
    """A prometheus-client collector rendering the latest Snapshot."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._snap: Snapshot | None = None
        registry.register(self)

    def update(self, snap: Snapshot) -> None:
        with self._lock:
            self._snap = snap

    def describe(self) -> list[Metric]:
        return []  # no collect at registration time: the first poll may not have happened

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snap = self._snap
        if snap is None:
            return
        families: dict[str, Metric] = {}

        def fam(name: str, typ: str, doc: str, labels: tuple[str, ...]) -> Metric:
            m = families.get(name)
            if m is None:
                if typ == "counter" and name.startswith("dcim_"):
                    m = CounterMetricFamily(name, doc, labels=labels)
                elif typ == "counter":
                    m = Metric(name, doc, "unknown")  # dcgm-exporter's counter names have no _total
                else:
                    m = GaugeMetricFamily(name, doc, labels=labels)
                families[name] = m
            return m

        for r in snap.readings:
            g = r.gpu
            dcgm_lv = {"gpu": str(g.index), "UUID": g.uuid, "pci_bus_id": g.pci_bus_id, "device": f"nvidia{g.index}",
                       "modelName": g.model, "Hostname": snap.node, "hostname": snap.node,
                       "DCGM_FI_DRIVER_VERSION": snap.driver_version}
            own_lv = [str(g.index), g.uuid, snap.node]
            values = dict(r.values)
            xid = snap.xids.get(g.uuid)
            if xid is not None and xid.last_code is not None:
                values["xid_last"] = xid.last_code
                values["xid_last_time_s"] = xid.last_time_s
            elif snap.xid_supported.get(g.uuid) and not r.lost:
                values["xid_last"] = 0  # dcgm-exporter's value before any XID: "no error", not "no data"
            if "nvlink_tx_bytes_total" in values and "nvlink_rx_bytes_total" in values:
                m = fam(NVLINK_TOTAL[0], "counter", NVLINK_TOTAL[1], DCGM_LABELS)
                m.add_sample(NVLINK_TOTAL[0], dcgm_lv,
                             (values["nvlink_tx_bytes_total"] + values["nvlink_rx_bytes_total"]) / 1024)
            for name, value in values.items():
                spec = DCGM.get(name)
                if spec is not None:
                    fam(spec.name, spec.type, spec.help, DCGM_LABELS).add_sample(
                        spec.name, dcgm_lv, float(value) * spec.factor)
                    continue
                spec = OWN.get(name)
                if spec is not None:
                    labels, lv = OWN_LABELS, own_lv
                    if spec.label is not None:
                        labels, lv = (*OWN_LABELS, spec.label[0]), [*own_lv, spec.label[1]]
                    elif name == "activity_pct":  # the source label is the activity_source field
                        labels, lv = (*OWN_LABELS, "source"), [*own_lv, str(values.get("activity_source", ""))]
                    fam(spec.name, spec.type, spec.help, labels).add_metric(lv, float(value) * spec.factor)
            fam(_LOST.name, _LOST.type, _LOST.help, OWN_LABELS).add_metric(own_lv, float(r.lost))
            if xid is not None:
                xf = fam("dcim_gpu_xid_errors", "counter", "XID errors seen by the agent, per code.",
                         (*OWN_LABELS, "xid"))
                for code, (count, _) in sorted(xid.per_code.items()):
                    xf.add_metric([*own_lv, str(code)], count)

        health = [
            ("dcim_gpu_agent_nvml_up", "gauge", "1 while the NVML library is open and usable.", float(snap.nvml_up)),
            ("dcim_gpu_agent_polls", "counter", "Polls done.", float(snap.polls_total)),
            ("dcim_gpu_agent_nvml_reinits", "counter", "Times NVML was re-opened (lost GPU, broken library).",
             float(snap.reinits_total)),
            ("dcim_gpu_agent_gpus", "gauge", "GPUs the agent knows of, lost ones included.", float(len(snap.readings))),
        ]
        if snap.poll_duration_s is not None:
            health.append(("dcim_gpu_agent_poll_duration_seconds", "gauge", "Duration of the last poll.",
                           snap.poll_duration_s))
        for name, typ, doc, value in health:
            fam(name, typ, doc, ("node",)).add_metric([snap.node], value)
        errs = fam("dcim_gpu_agent_poll_errors", "counter", "Failed field reads (omitted from the poll), per field.",
                   (*OWN_LABELS, "field"))
        for (gpu, uuid, fname), n in sorted(snap.errors_by_field.items()):
            errs.add_metric([gpu, uuid, snap.node, fname], n)
        uns = fam("dcim_gpu_agent_unsupported_field", "gauge",
                  "1 for each field a GPU does not give (reason: NVML code, or MIG when MIG mode hides it).",
                  (*OWN_LABELS, "field", "reason"))
        for gpu, uuid, fname, reason in snap.unsupported:
            uns.add_metric([gpu, uuid, snap.node, fname, reason], 1.0)
        yield from families.values()


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format 0.0.4, dcgm-exporter's counters typed ``counter``.

    prometheus-client renders a family it is given as ``unknown`` as ``untyped`` and leaves the
    name alone; only those lines of dcgm-exporter's counter names are retyped.
    """
    out = []
    for line in generate_latest(registry).decode().splitlines(keepends=True):
        if line.startswith("# TYPE ") and line.endswith(" untyped\n"):
            name = line[7:-9]
            if name in DCGM_COUNTERS:
                line = f"# TYPE {name} counter\n"
        out.append(line)
    return "".join(out).encode()


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def serve_gpu_metrics(registry: CollectorRegistry, host: str, port: int) -> Any:
    """Serve ``render(registry)`` on http://host:port/metrics (text format 0.0.4 only, as dcgm-exporter).

    prometheus-client's own server would answer OpenMetrics to a Prometheus that asks for it, and
    OpenMetrics has no counter without ``_total``. Returns a ``dcim.exporter.MetricsServer``.
    """
    from dcim.errors import ConfigError
    from dcim.exporter import MetricsServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = render(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: Any) -> None:  # scrapes are not worth a log line each
            pass

    try:
        httpd = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        msg = f"cannot serve /metrics on {host}:{port}: {exc.strerror or exc}"
        raise ConfigError(msg) from exc
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="gpu-metrics", daemon=True)
    thread.start()
    return MetricsServer(host, httpd.server_address[1], httpd, thread)
