"""The alert engine on the live stream: the collector's observer, with notifications on worker threads.

The collector calls ``observe(records)`` with each validated batch and writes the returned alert
records with it. Event time still drives the engine; a ticker thread advances it to the wall clock
(minus ``alerts.lateness_s``) every evaluation interval, so stale-data rules fire and a crossing
is evaluated within one interval even when no newer sample arrives. Transitions found by the
ticker are notified at once and written with the next batch. With ``state_path`` the alert state
(``Engine.snapshot``) is saved durably after every transition and while a ``keep_firing_for``
countdown runs (see ``_changed``), and restored on start (see ``Engine.restore``), so a restart, even
after a crash, neither resolves nor re-pages what is firing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dcim.alerts.actions import ActionRunner, make_runner
from dcim.alerts.engine import Engine
from dcim.alerts.state import Transition
from dcim.alerts.metrics import AlertMetrics
from dcim.alerts.notifiers import Dispatcher, Notifier, make_notifier
from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rules
from dcim.config import SiteConfig, default_site
from dcim.files import fsync_dir
from dcim.record import Record

log = logging.getLogger(__name__)

#: While a ``keep_firing_for`` countdown runs, the state is saved at least this often (event time):
#: a restart counts the clear time up to the last save, so a crash loses at most this much of it.
COUNTDOWN_SAVE_S = 60.0

_REPO_ROOT = DEFAULT_RULES_DIR.parent.parent


def rule_paths(site: SiteConfig) -> list[Path]:
    """The configured rule paths; a relative one that does not exist here is looked up beside the package
    (the default ``alerts/rules`` works from any working directory)."""
    out = []
    for p in site.alerts.rules:
        if not p.is_absolute() and not p.exists() and (_REPO_ROOT / p).exists():
            p = _REPO_ROOT / p
        out.append(p)
    return out


class LiveObserver:
    """Runs rules over each batch, notifies without blocking, returns the ``alert`` records to write."""

    def __init__(self, engine: Engine, notifiers: Sequence[Notifier], *, clock: Callable[[], float] = time.time,
                 lateness_s: float = 0.0, tick_s: float | None = None, ticker: bool = True,
                 actions: ActionRunner | None = None, state_path: Path | None = None,
                 grace_period_s: float = 600.0, outage_tolerance_s: float = 3600.0,
                 registry: Any = None) -> None:
        self.engine = engine
        self.actions = actions  # remediation (alerts.actions): planned here on event time, run on its own thread
        self.clock = clock
        self.lateness_ns = int(lateness_s * 1e9)
        self.dispatcher = Dispatcher(notifiers, clock=clock)
        self.metrics = AlertMetrics(registry, engine, notifiers) if registry is not None else None
        self.state_path = Path(state_path) if state_path is not None else None
        self._saved_countdowns: dict[str, int] = {}  # what the state file holds of Engine.countdowns()
        self._saved_ns: int | None = None  # the event time of the last save
        #: Firing alerts brought back from the state file (``restored`` transitions), resumed by the notifiers.
        self.restored: list[Transition] = []
        if self.state_path is not None:
            self.restored = self._restore(grace_period_s, outage_tolerance_s)
            self.dispatcher.submit(self.restored)
        self._lock = threading.Lock()
        self._held: list[Transition] = []  # found by the ticker, written with the next batch
        self._stop = threading.Event()
        self._tick_s = tick_s if tick_s is not None else engine.interval_ns / 1e9
        self._thread: threading.Thread | None = None
        self._ticked_actions: list[Any] = []  # planned by the ticker, written with the next batch
        if self.actions is not None and self.restored:
            # Restored alerts hold their nodes again: the planner learns what it took out before the
            # restart (the drivers find those nodes already out), so their resolves resume them.
            self._ticked_actions.extend(self.actions.plan(self.restored))
        if ticker:
            self._thread = threading.Thread(target=self._run, name="alerts-ticker", daemon=True)
            self._thread.start()

    def _restore(self, grace_period_s: float, outage_tolerance_s: float) -> list[Transition]:
        assert self.state_path is not None
        try:
            snap = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:  # a damaged file must not stop alerting
            log.error("alert state %s unreadable (%s): starting with no alert state", self.state_path, exc)
            return []
        ts = self.engine.restore(snap, now_ns=int(self.clock() * 1e9), grace_period_s=grace_period_s,
                                 outage_tolerance_s=outage_tolerance_s)
        log.info("alert state %s: restored %d firing alerts", self.state_path, len(ts))
        return ts

    def _changed(self, ts: Sequence[Transition]) -> None:
        """After an evaluation (lock held): save the state when it changed, update the active-alert gauges.

        A ``keep_firing_for`` countdown starts and stops without a transition and counts while nothing
        changes; it is saved when it starts or stops and every ``COUNTDOWN_SAVE_S`` while it runs, so a
        crash neither restarts it (a late resolve) nor restores one the condition had stopped.
        """
        if ts:
            self.save()
            if self.metrics is not None:
                self.metrics.set_active(self.engine.counts())
        elif self.state_path is not None:
            countdowns = self.engine.countdowns()
            if countdowns != self._saved_countdowns or (
                    countdowns and self.engine.clock_ns - (self._saved_ns or 0) >= COUNTDOWN_SAVE_S * 1e9):
                self.save()

    def save(self) -> None:
        """Write the engine's state (``Engine.snapshot``) durably, if a state path is set: a temporary
        file, fsynced, renamed over the old one, and the folder fsynced, so a crash at any point leaves
        the old state or the new one, whole."""
        if self.state_path is None:
            return
        countdowns = self.engine.countdowns()
        doc = json.dumps(self.engine.snapshot(), separators=(",", ":"), sort_keys=True)
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(doc)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.state_path)
            fsync_dir(self.state_path.parent)  # the rename itself
            self._saved_countdowns, self._saved_ns = countdowns, self.engine.clock_ns
        except OSError as exc:
            log.error("alert state %s not saved: %s", self.state_path, exc)

    def observe(self, records: list[Record]) -> list[Record]:
        with self._lock:
            ts = self.engine.process(records)
            held, self._held = self._held, []
            acts = self._plan(ts, self.engine.clock_ns)
            self._changed(ts)
        self.dispatcher.submit(ts)
        return [t.to_record() for t in (*held, *ts)] + [a.to_record() for a in acts]

    def _plan(self, ts: Sequence[Transition], now_ns: int | None = None) -> list[Any]:
        """Actions for these transitions, plus the driver outcomes since the last batch (held with the lock)."""
        if self.actions is None:
            return []
        acts = self.actions.plan(ts)
        if now_ns is not None:
            acts += self.actions.advance(now_ns)
        return [*self._held_actions(), *acts, *self.actions.take_outcomes()]

    def _held_actions(self) -> list[Any]:
        out, self._ticked_actions = self._ticked_actions, []
        return out

    def tick(self, now_ns: int | None = None) -> list[Transition]:
        """Advance event time to the wall clock (less the lateness); notify what that changes."""
        now_ns = int(self.clock() * 1e9) if now_ns is None else now_ns
        with self._lock:
            if self.engine.clock_ns is None:
                return []  # no data yet: nothing to be stale against
            ts = self.engine.advance(now_ns - self.lateness_ns)
            self._held.extend(ts)
            self._changed(ts)
            if self.actions is not None:
                self._ticked_actions.extend(self.actions.plan(ts) + self.actions.advance(now_ns - self.lateness_ns))
        self.dispatcher.submit(ts)
        return ts

    def _run(self) -> None:
        while not self._stop.wait(self._tick_s):
            try:
                self.tick()
            except Exception:  # the ticker must survive a bad evaluation
                log.exception("alert engine tick failed")

    def flush(self, timeout_s: float = 10.0) -> bool:
        ok = self.dispatcher.flush(timeout_s)
        return (self.actions.flush(timeout_s) if self.actions is not None else True) and ok

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            self.save()
        self.dispatcher.close()
        if self.actions is not None:
            self.actions.close()


def make_observer(site: SiteConfig | Any = None, *, notifiers: Sequence[Notifier] | None = None,
                  clock: Callable[[], float] = time.time, registry: Any = None) -> LiveObserver:
    """The collector's observer: rules and notifiers from ``site.alerts``.

    ``site`` may also be a collector-only configuration (no topology): then the embedded default
    hall's topology and alert section are used.
    """
    if not isinstance(site, SiteConfig):
        site = default_site()
    cfg = site.alerts
    rules = load_rules(rule_paths(site))
    engine = Engine(rules, site=site, evaluation_interval_s=cfg.evaluation_interval_s)
    if notifiers is None:
        notifiers = [make_notifier(n) for n in cfg.notifiers]
    return LiveObserver(engine, notifiers, clock=clock, lateness_s=cfg.lateness_s,
                        actions=make_runner(rules, site, registry=registry), state_path=cfg.state_path,
                        grace_period_s=cfg.for_grace_period_s, outage_tolerance_s=cfg.for_outage_tolerance_s,
                        registry=registry)
