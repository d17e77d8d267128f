"""``dcim replay``: a recording through the alert engine, the timeline, what-if, report and Grafana export."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from dcim.alerts.recording import Header, RecordingReader, format_time, resolve_topology
from dcim.alerts.replay import Pacer, ReplayResult, replay, write_to_influx
from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rules
from dcim.errors import DcimError


def _speed(text: str | None) -> float | None:
    if text is None:
        return None
    t = text.strip().lower().removesuffix("x")
    try:
        v = float(t)
    except ValueError:
        v = 0.0
    if v <= 0:
        msg = f"--speed takes a positive factor like 10x, got {text!r}"
        raise DcimError(msg)
    return v


def load_rule_set(paths: tuple[Path, ...] | list[Path]) -> list[Any]:
    """Rules from files or directories, through the engine's loader."""
    return list(load_rules(list(paths)))


def make_engine(rules: list[Any], site: Any, header: Header | None = None) -> Any:
    """The engine as it ran live: the recording's own evaluation interval when it names one."""
    from dcim.alerts.engine import Engine

    interval_s = site.alerts.evaluation_interval_s if site is not None else 1.0
    if header is not None and "evaluation_interval_s" in header.extra:
        try:
            interval_s = float(header.extra["evaluation_interval_s"])
        except ValueError:
            msg = f"header evaluation_interval_s is not a number: {header.extra['evaluation_interval_s']!r}"
            raise DcimError(msg) from None
    return Engine(rules, site=site, evaluation_interval_s=interval_s)


def run_replay(reader: RecordingReader, rules: list[Any], site: Any, *, speed: float | None = None,
               progress: Callable[[int], None] | None = None) -> ReplayResult:
    """One replay of the whole recording through a fresh engine."""
    pacer = Pacer(speed) if speed else None
    return replay(reader.blocks(), make_engine(rules, site, reader.header), end_ns=reader.header.end_ns, pacer=pacer,
                  progress=progress)


class _Progress:
    """A progress bar on stderr by event time, only when stderr is a terminal (never in pipes or logs)."""

    def __init__(self, header: Header, label: str) -> None:
        self.bar = None
        if not sys.stderr.isatty() or header.start_ns is None or header.end_ns is None:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.start, self.span = header.start_ns, max(1, header.end_ns - header.start_ns)
        self.bar = Progress(TextColumn(label), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                            TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self.task = self.bar.add_task(label, total=self.span)

    def __enter__(self) -> Callable[[int], None] | None:
        if self.bar is None:
            return None
        self.bar.start()
        return lambda t: self.bar.update(self.task, completed=min(self.span, t - self.start))  # type: ignore[union-attr]

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


@click.command("replay")
@click.argument("recording", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rules", "rules", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Rule file or folder (repeatable; default: the shipped rule pack).")
@click.option("--compare", "compare", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="A second rule set: replay both and print the difference (what-if).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Timeline as text, or as JSON lines.")
@click.option("--speed", help="Pace the replay at N times event time (e.g. 10x); default: as fast as possible.")
@click.option("--report", "report", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML incident report here (and PNG plots beside it).")
@click.option("--to-influx", "influx_url", metavar="URL", help="Write the replayed data and alerts into InfluxDB.")
@click.option("--db", help="Scratch database for --to-influx.")
@click.option("--shift-to-now", is_flag=True, help="With --to-influx: move times so the recording ends now.")
@click.option("--user", help="InfluxDB user (with --to-influx).")
@click.option("--password-env", metavar="VAR", help="Environment variable holding the InfluxDB password.")
@click.option("--skip-bad", is_flag=True, help="Replay the good part of a damaged recording; list the problems.")
@click.option("--site", "site_file", type=click.Path(exists=True, dir_okay=False),
              help="Topology file (default: the one the recording names).")
def replay_cmd(recording: Path, rules: tuple[Path, ...], compare: tuple[Path, ...], fmt: str, speed: str | None,
               report: Path | None, influx_url: str | None, db: str | None, shift_to_now: bool, user: str | None,
               password_env: str | None, skip_bad: bool, site_file: str | None) -> None:
    """Replay RECORDING through the alert rules on event time and print the alert timeline.

    \b
    dcim replay pump.lp.gz --rules alerts/rules
    dcim replay pump.lp.gz --rules alerts/rules --compare my-rules/ --report pump.html
    dcim replay pump.lp.gz --format json > timeline.jsonl
    """
    if influx_url and not db:
        raise click.UsageError("--to-influx needs --db")
    pace = _speed(speed)
    rule_paths = list(rules) or [DEFAULT_RULES_DIR]
    rule_set = load_rule_set(rule_paths)
    reader = RecordingReader(recording, skip_bad=skip_bad)
    site = resolve_topology(site_file or reader.header.topology)
    with _Progress(reader.header, "replay") as progress:
        result = run_replay(reader, rule_set, site, speed=pace, progress=progress)
    problems = [str(p) for p in reader.problems]
    whatif = None
    if compare:
        from dcim.alerts.whatif import compare as compare_sets
        from dcim.alerts.whatif import format_whatif

        other = load_rule_set(list(compare))
        reader_b = RecordingReader(recording, skip_bad=skip_bad)
        with _Progress(reader.header, "replay B") as progress:
            result_b = run_replay(reader_b, other, site, speed=pace, progress=progress)
        whatif = compare_sets(result.transitions, result_b.transitions, a_name=" ".join(map(str, rule_paths)),
                              b_name=" ".join(map(str, compare)), horizon_ns=result.stats.last_ns)
    # Remediation actions the rules declare, planned on event time as the live runner would.
    from dcim.alerts import actions as act

    policy = act.Policy.from_config(site.alerts.actions)
    per, tail = act.plan_per_transition(result.transitions, rule_set, site, policy, end_ns=result.stats.last_ns)
    actions = [a for acts in per for a in acts] + tail
    drain_cmp = None
    if whatif is not None:
        actions_b = act.plan_actions(result_b.transitions, other, site, policy, end_ns=result.stats.last_ns)
        drain_cmp = act.compare_drains(actions, actions_b, a_name=" ".join(map(str, rule_paths)),
                                       b_name=" ".join(map(str, compare)), end_ns=result.stats.last_ns)
    out = (act.timeline_json(result.transitions, per, tail) if fmt == "json"
           else act.timeline_text(result.transitions, actions))
    if whatif is not None and fmt == "text":
        out += "\n" + format_whatif(whatif)
        if drain_cmp is not None and (drain_cmp["a"]["nodes"] or drain_cmp["b"]["nodes"]):
            out += "\n" + act.format_drains(drain_cmp)
    elif whatif is not None:
        import json

        out += json.dumps({"whatif": whatif.to_dict(), "whatif_actions": drain_cmp}, sort_keys=True,
                          separators=(",", ":")) + "\n"
    click.echo(out, nl=False)
    for p in problems:
        click.echo(f"warning: skipped: {p}", err=True)
    if report is not None:
        from dcim.alerts.report import write_report

        pngs = write_report(report, header=reader.header, recording=str(recording),
                            rules_name=" ".join(map(str, rule_paths)), rules=rule_set, stats=result.stats,
                            transitions=result.transitions, batches=_batches(recording, skip_bad), whatif=whatif,
                            problems=problems, actions=actions)
        click.echo(f"report: {report} ({len(pngs)} plots beside it)", err=True)
    if influx_url:
        password = os.environ.get(password_env) if password_env else None
        shift = 0
        if shift_to_now and result.stats.last_ns is not None:
            shift = time.time_ns() - (reader.header.end_ns or result.stats.last_ns)
        n = write_to_influx(influx_url, db or "", _batches(recording, skip_bad)(), [*result.transitions, *actions],
                            shift_ns=shift, username=user, password=password)
        when = f"shifted by {shift / 1e9:+.0f}s to end now" if shift else "at their recorded times"
        click.echo(f"influx: wrote {n} points to {db} {when}", err=True)
    stats = result.stats
    if stats.records == 0:
        click.echo("note: the recording has no records", err=True)
    elif sys.stderr.isatty():
        click.echo(f"replayed {stats.records:,} records ({_t(stats.first_ns)} to {_t(stats.last_ns)}) "
                   f"in {stats.wall_s:.2f}s", err=True)


def _batches(recording: Path, skip_bad: bool) -> Callable[[], Iterator[list[Any]]]:
    return lambda: RecordingReader(recording, skip_bad=skip_bad).batches()


def _t(ns: int | None) -> str:
    return format_time(ns) if ns is not None else "-"
