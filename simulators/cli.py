"""``dcim simulate``: run the simulated hall through a scenario and write line protocol of every domain."""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import IO

import click

from dcim.config import DEFAULT_SITE, SITES_DIR, SiteConfig, load_site, named_site
from dcim.errors import ConfigError
from dcim.simulators.scenarios import list_scenarios, load_scenario, parse_duration


def parse_start(text: str, *, now_ns: int | None = None) -> int | None:
    """``now``, RFC 3339 (``2026-01-01T00:00:00Z``) or unix seconds -> ns since the epoch (None: default)."""
    if text is None:
        return None
    t = text.strip()
    if t == "now":
        return time.time_ns() if now_ns is None else now_ns
    try:
        secs = float(t)
    except ValueError:
        pass
    else:
        if not math.isfinite(secs):
            raise ConfigError(f"--start: not a time: {text!r}")
        return round(secs * 1e9)
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise ConfigError(f"--start: not RFC 3339, unix seconds or 'now': {text!r}") from None
    if dt.tzinfo is None:
        raise ConfigError(f"--start: give a time zone (e.g. Z or +00:00): {text!r}")
    return round(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def duration_option(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        secs = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if secs <= 0:
        raise click.BadParameter("must be positive")
    return secs


def site_file(path: str | None) -> str:
    """The file ``site_from(path)`` reads, for a recording's header (``dcim replay`` loads it from there)."""
    if path is None:
        path = SIMULATOR_SITE
    if not Path(path).exists() and "/" not in path and not path.endswith((".yaml", ".yml")):
        return str(SITES_DIR / f"{path}.yaml")
    return str(path)


#: What ``dcim simulate`` and ``dcim demo`` run without ``--site``: the embedded default site, an
#: AI-factory pod of 120 kW racks.
SIMULATOR_SITE = DEFAULT_SITE.stem


def site_from(path: str | None) -> SiteConfig:
    """``--site``: a site file, or the name of an embedded site (``ai-factory-pod``, ``h100-hall``);
    default: the pod (``SIMULATOR_SITE``)."""
    if path is None:
        return named_site(SIMULATOR_SITE)
    if not Path(path).exists() and "/" not in path and not path.endswith((".yaml", ".yml")):
        return named_site(path)
    return load_site(path)


@contextlib.contextmanager
def open_out(path: str):
    """Stdout for ``-``; gzip (reproducible: no name, mtime 0) when the name ends in .gz; else a file."""
    if path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    p = Path(path)
    try:
        raw = p.open("wb")
    except OSError as exc:
        raise ConfigError(f"cannot write: {exc.strerror}", file=str(p)) from exc
    with raw:
        if p.name.endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
                with io.TextIOWrapper(gz, encoding="utf-8", newline="") as text:
                    yield text
        else:
            with io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
                yield text


def simulate(site: SiteConfig, scenario, *, seed: int, start_ns: int | None, duration_s: float, step_s: float,
             out: IO[str], on_event=None) -> tuple[int, int, int]:
    """Write ``duration_s / step_s`` samples of the whole hall to ``out``; returns (samples, lines, chars)."""
    from dcim.simulators.hall import Hall

    hall = Hall(site, seed=seed, scenario=scenario, start_ns=start_ns)
    n = max(1, math.ceil(duration_s / step_s - 1e-9))
    lines = chars = 0
    for k in range(n):
        if k:
            hall.advance(step_s)
        if on_event is not None:
            for ev in hall.take_events():
                on_event(ev)
        text = hall.lines()
        out.write(text)
        lines += text.count("\n")
        chars += len(text)
    return n, lines, chars


@click.command("simulate")
@click.option("--site", "site_path", type=click.Path(dir_okay=False), default=None,
              help="Site file, or an embedded site by name: ai-factory-pod, h100-hall (default: ai-factory-pod).")
@click.option("--scenario", default="normal", show_default=True, help="Scenario name (see --list) or YAML file.")
@click.option("--duration", callback=duration_option, default=None, help="Simulated time, e.g. 10m (default: the scenario's).")
@click.option("--step", "step", callback=duration_option, default=None,
              help="Sample interval (default: the site's simulator.step_s, 1 s).")
@click.option("--out", "out_path", default="-", show_default=True, help="Output file (.gz: gzip), or - for stdout.")
@click.option("--seed", type=int, default=None, help="RNG seed (default: the site's simulator.seed).")
@click.option("--start", default=None, help="Start time: RFC 3339, unix seconds or 'now' (default: 2026-01-01T00:00:00Z).")
@click.option("--list", "list_only", is_flag=True, help="List the shipped scenarios and exit.")
@click.option("-q", "--quiet", is_flag=True, help="No events or summary on stderr.")
def simulate_cmd(site_path, scenario, duration, step, out_path, seed, start, list_only, quiet) -> None:
    """Run the simulated hall through a fault scenario and write line protocol of every domain."""
    if list_only:
        for name, desc in list_scenarios():
            click.echo(f"{name}\n    {desc}\n")
        return
    site = site_from(site_path)
    sc = load_scenario(scenario)
    sc.check_site(site)
    start_ns = parse_start(start) if start is not None else None
    duration_s = sc.duration if duration is None else duration
    seed = site.simulator.seed if seed is None else seed
    step = site.simulator.step_s if step is None else step

    def on_event(ev: tuple[int, str]) -> None:
        if not quiet:
            t_ns, text = ev
            click.echo(f"event {t_ns}: {text}", err=True)

    with open_out(out_path) as out:
        n, lines, chars = simulate(site, sc, seed=seed, start_ns=start_ns, duration_s=duration_s, step_s=step,
                                   out=out, on_event=on_event)
    if not quiet:
        click.echo(f"simulated {sc.name}: {n} samples x {step:g} s, {lines} lines, {chars} bytes -> {out_path}", err=True)
