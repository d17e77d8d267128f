"""``dcim demo``: the whole pipeline on the simulated hall, accelerated, with a live view of a scripted incident.

The demo is a loop that steps the hall, lets the pipeline (app/pipeline.py: GPU agents, SNMP
poller, collector, store, alert engine) take the step, and hands it to pluggable consumers (a view,
the summary). Pacing uses an injected clock and sleep. See docs/demo.md.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import click
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dcim.alerts.replay import location
from dcim.app.pipeline import Pipeline, PipelineOptions, default_out_dir
from dcim.config import SiteConfig
from dcim.simulators.cli import duration_option, site_file, site_from
from dcim.simulators.hall import Hall
from dcim.simulators.overview import Overview, overview
from dcim.simulators.scenarios import Scenario, load_scenario

DEFAULT_SCENARIO = "pump-degradation"
DEFAULT_WALL_S = 60.0  # the default speed makes the whole scenario play in about a minute
#: GPUs up to which the demo polls them every 10 s; a bigger site (the pod: 640) is polled every 30 s
SMALL_SITE_GPUS = 256


class Consumer(Protocol):
    """Something that takes the hall after every step: a view, a recorder, an agent, a pipeline stage."""

    def on_step(self, hall: Hall, events: list[tuple[int, str]]) -> None: ...

    def close(self, hall: Hall) -> None: ...


def _clock(t_s: float) -> str:
    m, s = divmod(int(round(t_s)), 60)
    return f"+{m}m{s:02d}s"


class Summary:
    """Remembers the extremes of the run and says them in a few lines at the end.

    With the pipeline's alert board (``board``), "at the end" also counts the alerts still firing,
    so the summary never says "all clear" over alerts the board lists as firing.
    """

    def __init__(self, scenario: Scenario, board: Any = None) -> None:
        self.scenario = scenario
        self.board = board  # dcim.app.pipeline.AlertBoard
        self.events: list[tuple[float, str]] = []
        self.max_temp = (-math.inf, "", 0.0)
        self.max_thermal = (0, 0.0)
        self.peak_power_w = 0.0
        self.min_flow: dict[str, float] = {}
        self.max_phase_load = 0.0
        self.lost = 0
        self.util_sum = 0.0
        self.util_n = 0
        self.util_good_pct = 90.0
        self.min_util = (math.inf, 0.0)
        self.final: Overview | None = None

    def on_step(self, hall: Hall, events: list[tuple[int, str]]) -> None:
        ov = overview(hall, top=1)
        self.events += [((t - hall.start_ns) / 1e9, text) for t, text in events]
        if ov.hottest and not ov.hottest[0].lost and ov.hottest[0].temp_c > self.max_temp[0]:
            g = ov.hottest[0]
            self.max_temp = (g.temp_c, f"{g.node} GPU {g.gpu}", ov.t_s)
        if ov.thermal_throttled > self.max_thermal[0]:
            self.max_thermal = (ov.thermal_throttled, ov.t_s)
        self.peak_power_w = max(self.peak_power_w, ov.power_w)
        self.max_phase_load = max(self.max_phase_load, ov.max_phase_load)
        self.lost = max(self.lost, ov.lost)
        self.util_sum += ov.util_pct
        self.util_n += 1
        if ov.util_pct < self.min_util[0]:
            self.min_util = (ov.util_pct, ov.t_s)
        self.util_good_pct = hall.site.dashboards.util_good_pct
        for lp in ov.loops:
            if lp.answering:
                self.min_flow[lp.name] = min(self.min_flow.get(lp.name, math.inf), lp.flow_lpm)
        self.final = ov

    def close(self, hall: Hall) -> None:
        pass

    def text(self, wall_s: float) -> str:
        ov = self.final
        sim_s = ov.t_s if ov else 0.0
        lines = [
            f"demo finished: scenario {self.scenario.name}, {sim_s:.0f} simulated s in {wall_s:.1f} wall s "
            f"({sim_s / max(wall_s, 1e-9):.0f}x)",
            f"  events: {len(self.events)}",
        ]
        if self.max_temp[1]:
            t, who, at = self.max_temp
            lines.append(f"  hottest GPU: {t:.1f} C ({who}, at {_clock(at)})")
        n, at = self.max_thermal
        lines.append(f"  most GPUs thermally throttled at once: {n}" + (f" (at {_clock(at)})" if n else ""))
        if self.min_flow:
            lines.append("  lowest flow: " + ", ".join(f"{k} {v:.0f} L/min" for k, v in self.min_flow.items()))
        if self.util_n:
            low, at = self.min_util
            lines.append(f"  fleet GPU utilization: mean {self.util_sum / self.util_n:.1f} %, lowest {low:.1f} % "
                         f"(at {_clock(at)}); good at {self.util_good_pct:g} % or more")
        if ov:
            lines.append(f"  peak hall power: {self.peak_power_w / 1000:.1f} kW of {ov.budget_w / 1000:.0f} kW rated; "
                         f"highest phase load {self.max_phase_load:.0%} of breaker")
            still = []
            if ov.thermal_throttled:
                still.append(f"{ov.thermal_throttled} GPUs still throttled")
            if ov.lost:
                still.append(f"{ov.lost} GPUs lost")
            if any(lp.leak for lp in ov.loops):
                still.append("leak")
            if self.board is not None and (self.board.firing or self.board.inhibited_now):
                # the same counts as the board's own "alerts:" line
                n_firing, n_held = len(self.board.firing), len(self.board.inhibited_now)
                if n_firing:
                    still.append(f"{n_firing} alert{'s' if n_firing != 1 else ''} still firing")
                if n_held:
                    still.append(f"{n_held} inhibited alert{'s' if n_held != 1 else ''} still active")
            lines.append("  at the end: " + (", ".join(still) if still else "all clear"))
        return "\n".join(lines)


class TextView:
    """Plain periodic lines (and every event at once) for logs and pipes."""

    def __init__(self, echo: Callable[[str], None], every_s: float = 30.0, board: Any = None) -> None:
        self.echo = echo
        self.every_s = every_s
        self.board = board  # dcim.app.pipeline.AlertBoard: its notifications become ALERT lines
        self._seen = 0
        self._next = 0.0

    def on_step(self, hall: Hall, events: list[tuple[int, str]]) -> None:
        for t, text in events:
            self.echo(f"{_clock((t - hall.start_ns) / 1e9)} EVENT {text}")
        if self.board is not None:
            for t, text in self.board.notes[self._seen:]:
                self.echo(f"{_clock((t - hall.start_ns) / 1e9)} ALERT {text}")
            self._seen = len(self.board.notes)
        if hall.t_s + 1e-9 >= self._next:
            self._next = hall.t_s + self.every_s
            ov = overview(hall, top=1)
            hot = ov.hottest[0] if ov.hottest else None
            loops = " ".join(f"{lp.name} {lp.supply_c:.1f}/{lp.return_c:.1f}C {lp.flow_lpm:.0f}L/min" for lp in ov.loops)
            hot_s = f"hottest {hot.temp_c:.1f}C {hot.node}/{hot.gpu}" if hot and not hot.lost else ""
            self.echo(
                f"{_clock(ov.t_s)} power {ov.power_w / 1000:.1f}/{ov.budget_w / 1000:.0f} kW util {ov.util_pct:.0f}% {hot_s} "
                f"thermal-throttled {ov.thermal_throttled} lost {ov.lost} | {loops}"
            )

    def close(self, hall: Hall) -> None:
        pass


class LiveView:
    """A rich Live terminal view: hall and rack power, hottest GPUs, loops, events."""

    def __init__(self, scenario: Scenario, speed: float, console=None, refresh_s: float = 0.25,
                 clock: Callable[[], float] = time.monotonic, board: Any = None) -> None:
        self.scenario = scenario
        self.speed = speed
        self.console = console or Console()
        self.refresh_s = refresh_s
        self.clock = clock
        self.board = board  # dcim.app.pipeline.AlertBoard, shown as an alerts panel
        self._seen = 0
        self._start_ns = 0
        self.util_good_pct = 90.0
        self._cooling: dict[str, str] = {}
        self.events: list[str] = []
        self._last = -math.inf
        self.live = Live(console=self.console, auto_refresh=False, transient=False)
        self.live.start()
        # log lines (an agent's warning about a lost GPU) go through rich's stderr proxy, above the
        # view, instead of through the terminal under it
        self._log_streams = []
        for h in logging.getLogger().handlers:
            if isinstance(h, logging.StreamHandler) and h.stream in (sys.__stderr__, sys.__stdout__):
                self._log_streams.append((h, h.setStream(sys.stderr)))

    def on_step(self, hall: Hall, events: list[tuple[int, str]]) -> None:
        self._start_ns = hall.start_ns
        self.util_good_pct = hall.site.dashboards.util_good_pct
        self._cooling = {rack: f"{lp.cdu} (liquid)" for lp in hall.site.loops for rack in lp.racks}
        self.events += [f"{_clock((t - hall.start_ns) / 1e9)} {text}" for t, text in events]
        new_alerts = False
        if self.board is not None and len(self.board.notes) > self._seen:
            self.events += [f"{_clock((t - hall.start_ns) / 1e9)} ALERT {text}" for t, text in self.board.notes[self._seen:]]
            self._seen = len(self.board.notes)
            new_alerts = True
        now = self.clock()
        if events or new_alerts or now - self._last >= self.refresh_s:
            self._last = now
            self.live.update(self.render(overview(hall, top=6)), refresh=True)

    def render(self, ov: Overview):
        head = Text.assemble(
            (f"dcim demo  scenario {self.scenario.name}  ", "bold"),
            f"{_clock(ov.t_s)} of {_clock(self.scenario.duration)}  ({self.speed:g}x)   ",
            (f"hall {ov.power_w / 1000:.1f} kW / {ov.budget_w / 1000:.0f} kW rated   ", "bold"),
            (f"fleet GPU utilization {ov.util_pct:.1f} %", "bold green" if ov.util_pct >= self.util_good_pct else "bold red"),
        )
        racks = Table(title="racks", expand=True)
        for col in ("rack", "power kW", "of rating", "cooled by", "hottest GPU C", "thermal-throttled"):
            racks.add_column(col, justify="right")
        for r in ov.racks:
            frac = r.power_w / r.budget_w if r.budget_w else 0.0
            style = "red" if r.throttled else ""
            racks.add_row(r.name, f"{r.power_w / 1000:.1f}", f"{frac:.0%}", self._cooling.get(r.name, "air"),
                          f"{r.max_temp_c:.1f}", str(r.throttled), style=style)
        gpus = Table(title="hottest GPUs", expand=True)
        for col in ("node/gpu", "temp C", "power W", "SM MHz", "clock-event reasons"):
            gpus.add_column(col, justify="right")
        for g in ov.hottest:
            if g.lost:
                gpus.add_row(f"{g.node}/{g.gpu}", "-", "-", "-", "LOST (XID 79)", style="bold red")
            else:
                gpus.add_row(f"{g.node}/{g.gpu}", f"{g.temp_c:.1f}", f"{g.power_w:.0f}", f"{g.sm_clock_mhz:.0f}", g.reasons,
                             style="red" if "thermal" in g.reasons else "")
        loops = Table(title="coolant loops", expand=True)
        for col in ("loop", "supply C", "return C", "setpoint C", "flow L/min", "pump %", "heat kW", "state"):
            loops.add_column(col, justify="right")
        for lp in ov.loops:
            state = "NO ANSWER" if not lp.answering else ("LEAK" if lp.leak else "ok")
            loops.add_row(lp.name, f"{lp.supply_c:.1f}", f"{lp.return_c:.1f}", f"{lp.setpoint_c:.1f}", f"{lp.flow_lpm:.0f}",
                          f"{lp.pump_pct:.0f}", f"{lp.heat_w / 1000:.1f}", state, style="" if state == "ok" else "bold red")
        events = Text("\n".join(self.events[-8:]) or "(none yet)")
        parts = [head, racks, gpus, loops]
        if self.board is not None:
            parts.append(self.render_alerts())
        parts.append(Panel(events, title="events and notifications"))
        return Group(*parts)

    def render_alerts(self):

        b = self.board  # filled by the notifier thread: take copies (sorted, len) in one go
        table = Table(title=f"firing alerts: {len(b.firing)}   inhibited beneath them: {len(b.inhibited_now)}   "
                            f"(fired {len(b.fired)}, resolved {len(b.resolved)})", expand=True)
        for col in ("severity", "alert", "where", "since", "summary"):
            table.add_column(col)
        rows = sorted(b.firing.values(), key=lambda t: (t.severity != "critical", t.time_ns))
        for t in rows[:6]:
            table.add_row(t.severity, t.rule, location(t.labels), _clock((t.time_ns - self._start_ns) / 1e9), t.summary,
                          style="bold red" if t.severity == "critical" else "yellow")
        if len(rows) > 6:
            table.add_row("", f"... and {len(rows) - 6} more", "", "", "")
        return table

    def close(self, hall: Hall) -> None:
        self._start_ns = hall.start_ns
        self.live.update(self.render(overview(hall, top=6)), refresh=True)
        self.live.stop()
        for h, stream in self._log_streams:
            h.setStream(stream)


def run(
    hall: Hall,
    consumers: Sequence[Consumer],
    *,
    duration_s: float,
    step_s: float = 1.0,
    speed: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Step the hall ``duration_s`` simulated seconds at ``speed`` x real time; returns the wall seconds taken.

    The same loop as ``run_async``, driven without an event loop of the caller's (tests, scripts).
    """

    async def pause(seconds: float) -> None:
        if seconds > 0:
            sleep(seconds)

    return asyncio.run(run_async(hall, consumers, duration_s=duration_s, step_s=step_s, speed=speed,
                                 clock=clock, sleep=pause))


async def run_async(
    hall: Hall,
    consumers: Sequence[Consumer],
    *,
    duration_s: float,
    step_s: float = 1.0,
    speed: float = 10.0,
    stage: Callable[[], Awaitable[None]] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> float:
    """``run`` inside an event loop, with ``stage`` (the pipeline's step) awaited after each hall step."""
    t0 = clock()
    n = max(1, math.ceil(duration_s / step_s - 1e-9))
    try:
        for k in range(n + 1):
            if k:
                hall.advance(step_s)
            events = hall.take_events()
            if stage is not None:
                await stage()
            for c in consumers:
                c.on_step(hall, events)
            delay = t0 + (k + 1) * step_s / speed - clock()
            if delay > 0 and k < n:
                await sleep(delay)
            elif k % 8 == 0:
                await sleep(0)  # let the SNMP responders, publishers and collector tasks run
    finally:
        for c in consumers:
            c.close(hall)
    return clock() - t0


async def run_pipeline(hall: Hall, site: SiteConfig, options: Any, make_consumers: Callable[[Any], list[Consumer]], *,
                       duration_s: float, speed: float, scenario: str, seed: int,
                       echo: Callable[[str], None] | None = None) -> tuple[float, Any, Any]:
    """The demo with the whole pipeline: (wall seconds, the pipeline's alert board, the files it wrote)."""
    async with Pipeline(hall, site, options) as pipe:
        consumers = make_consumers(pipe.board)
        wall_s = await run_async(hall, consumers, duration_s=duration_s, step_s=site.simulator.step_s, speed=speed,
                                 stage=pipe.step)
        await pipe.finish()
    if echo is not None:
        echo(f"writing the recording and the incident report to {options.out_dir} ...")
    result = await asyncio.to_thread(pipe.write_outputs, scenario, seed)
    return wall_s, pipe, result


@click.command("demo")
@click.option("--scenario", default=DEFAULT_SCENARIO, show_default=True, help="Scenario name or YAML file.")
@click.option("--speed", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Simulated seconds per wall second (default: the scenario plays in about 60 s).")
@click.option("--duration", callback=duration_option, default=None, help="Simulated time (default: the scenario's).")
@click.option("--seed", type=int, default=None, help="RNG seed (default: the site's).")
@click.option("--site", "site_path", type=click.Path(dir_okay=False), default=None,
              help="Site file, or an embedded site by name: ai-factory-pod, h100-hall (default: ai-factory-pod).")
@click.option("--no-live", is_flag=True, help="Plain periodic text instead of the live view (also when not a terminal).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the store, recording and report (default: ./dcim-demo-<UTC time>).")
@click.option("--mqtt", "mqtt_url", metavar="URL", default=None,
              help="Send through this MQTT broker (mqtt://host:port) instead of the in-process bus.")
@click.option("--influx", "influx_url", metavar="URL", default=None,
              help="Write to this InfluxDB v1 (http://host:8086) instead of the embedded store.")
@click.option("--influx-db", default="dcim", show_default=True, help="Database for --influx.")
@click.option("--alertmanager", "alertmanager_url", metavar="URL", default=None,
              help="Also notify this Alertmanager (http://host:9093), beside the console.")
@click.option("--gpu-interval", callback=duration_option, default=None,
              help="GPU agent poll interval, simulated time (default: 10s; 30s, dcgm-exporter's default, for sites of "
                   f"more than {SMALL_SITE_GPUS} GPUs, so the demo keeps pace on 2 cores).")
@click.option("--snmp-interval", callback=duration_option, default="10s", show_default=True,
              help="SNMP poll interval of the coolant units, simulated time.")
@click.option("--pdu-interval", callback=duration_option, default="30s", show_default=True,
              help="SNMP poll interval of the PDUs, simulated time.")
def demo_cmd(scenario, speed, duration, seed, site_path, no_live, out_dir, mqtt_url, influx_url, influx_db,
             alertmanager_url, gpu_interval, snmp_interval, pdu_interval) -> None:
    """Run the whole pipeline on a simulated GPU hall through a scripted incident, live (default: pump degradation
    that recovers): GPU agents, SNMP poller, collector, store, alert engine, notifications; then write a recording
    and an HTML incident report."""
    site: SiteConfig = site_from(site_path)
    if gpu_interval is None:
        gpus = sum(n.gpus for r in site.racks() for n in r.nodes)
        gpu_interval = 10.0 if gpus <= SMALL_SITE_GPUS else 30.0
    options = PipelineOptions(out_dir=out_dir, mqtt_url=mqtt_url, influx_url=influx_url, influx_db=influx_db,
                              alertmanager_url=alertmanager_url, gpu_interval_s=gpu_interval,
                              snmp_interval_s=snmp_interval, pdu_interval_s=pdu_interval,
                              topology=site_file(site_path))
    live = not no_live and sys.stdout.isatty()
    run_demo(site, load_scenario(scenario), options, speed=speed, duration_s=duration, seed=seed, echo=click.echo,
             live=live)


@dataclass
class DemoRun:
    """What ``run_demo`` leaves: the wall time, the summary, the pipeline (its alert board) and the files."""

    wall_s: float
    summary: Summary
    pipeline: Any
    result: Any


def run_demo(site: SiteConfig, sc: Scenario, options: Any, *, speed: float | None = None,
             duration_s: float | None = None, seed: int | None = None, echo: Callable[[str], None] = click.echo,
             live: bool = False) -> DemoRun:
    """The demo end to end (``dcim demo`` minus option parsing): run, then say what happened and where the files are."""
    duration_s = sc.duration if duration_s is None else duration_s
    speed = speed or max(duration_s / DEFAULT_WALL_S, 1.0)
    seed = site.simulator.seed if seed is None else seed
    # the run ends about when the simulated clock reaches the wall clock: every timestamp is in the
    # past (InfluxDB, Alertmanager and Grafana's "last 15 minutes" all see the incident)
    start_ns = (time.time_ns() // 1_000_000_000 - math.ceil(duration_s)) * 1_000_000_000
    hall = Hall(site, seed=seed, scenario=sc, start_ns=start_ns)
    summary = Summary(sc)
    if options.out_dir is None:
        options.out_dir = default_out_dir()
    out = Path(options.out_dir)

    def consumers(board: Any) -> list[Consumer]:
        view: Consumer = (LiveView(sc, speed, board=board) if live
                          else TextView(echo, every_s=max(10.0, 2 * speed), board=board))
        summary.board = board
        return [view, summary]

    echo(f"dcim demo: scenario {sc.name}, {duration_s:.0f} simulated s at {speed:g}x; "
         f"bus {options.mqtt_url or 'in-process'}, store {options.influx_url or out / 'store'}"
         + (f", Alertmanager {options.alertmanager_url}" if options.alertmanager_url else ""))
    wall_s, pipe, result = asyncio.run(run_pipeline(hall, site, options, consumers, duration_s=duration_s,
                                                    speed=speed, scenario=sc.name, seed=seed, echo=echo))
    echo(summary.text(wall_s))
    for line in pipe.board.summary_lines():
        echo(line)
    for line in pipe.scheduler.summary_lines():
        echo(line)
    t = pipe.timings
    echo(f"  pipeline wall time: GPU agents {t['gpu']:.1f} s, waiting for SNMP walks {t['snmp_wait']:.1f} s, "
         f"collector and alerts {t['collector']:.1f} s")
    if result.counts:
        echo("  records stored: " + ", ".join(f"{m} {n}" for m, n in sorted(result.counts.items())))
    if result.recording is not None:
        echo(f"  recording: {result.recording}  (replay: dcim replay {result.recording})")
    if result.report is not None:
        echo(f"  incident report: {result.report}")
    return DemoRun(wall_s, summary, pipe, result)
