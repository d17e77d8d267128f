"""``dcim dashboards``: build the JSON and provisioning files, check them, push them to Grafana."""

from __future__ import annotations

import os
from pathlib import Path

import click

from dcim.dashboards import build as builder
from dcim.dashboards.thresholds import DEFAULT_RULES_DIR
from dcim.config import default_site, load_site
from dcim.errors import DcimError

_site_opt = click.option("--site", "site_file", type=click.Path(dir_okay=False, exists=True),
                         help="Site file (default: the embedded default site).")
_rules_opt = click.option("--rules", "rules_dir", type=click.Path(file_okay=False), default=str(DEFAULT_RULES_DIR),
                          show_default=True, help="Alert rule pack the thresholds come from.")


def _context(site_file: str | None, rules_dir: str, **overrides: object) -> builder.Context:
    site = load_site(site_file) if site_file else default_site()
    if overrides:
        cfg = site.dashboards.model_copy(update={k: v for k, v in overrides.items() if v is not None})
        site = site.model_copy(update={"dashboards": cfg})
    ctx = builder.context(site, rules_dir)
    missing = ctx.thresholds.missing()
    if missing:
        click.echo(f"warning: no rule in {rules_dir} gives {', '.join(missing)}; using built-in defaults", err=True)
    return ctx


@click.group("dashboards")
def dashboards_group() -> None:
    """Grafana dashboards as code (grafana-foundation-sdk, InfluxQL)."""


@dashboards_group.command("build")
@_site_opt
@_rules_opt
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=str(builder.OUT_DIR), show_default=True)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when the files differ from what the code generates.")
def build_cmd(site_file: str | None, rules_dir: str, out_dir: str, check: bool) -> None:
    """Write dashboards/json/*.json and dashboards/provisioning/*."""
    ctx = _context(site_file, rules_dir)
    if check:
        problems = builder.check(ctx, Path(out_dir))
        for p in problems:
            click.echo(p, err=True)
        if problems:
            click.echo("dashboards are out of date: run `dcim dashboards build`", err=True)
            raise SystemExit(1)
        click.echo("dashboards are up to date")
        return
    for path in builder.write(ctx, Path(out_dir)):
        click.echo(f"wrote {path}")


@dashboards_group.command("push")
@click.option("--url", required=True, help="Grafana base URL, e.g. http://127.0.0.1:3000")
@click.option("--token-env", default="GRAFANA_TOKEN", show_default=True,
              help="Environment variable holding a Grafana service-account token.")
@click.option("--folder", default=None, help="Folder title (default: DashboardsConfig.folder).")
@click.option("--folder-uid", default=None, help="Folder uid (default: DashboardsConfig.folder_uid).")
@click.option("--datasource-uid", default=None, help="uid of the InfluxDB datasource in that Grafana.")
@click.option("--timeout-s", default=10.0, show_default=True, type=float)
@_site_opt
@_rules_opt
def push_cmd(url: str, token_env: str, folder: str | None, folder_uid: str | None, datasource_uid: str | None,
             timeout_s: float, site_file: str | None, rules_dir: str) -> None:
    """Upload every dashboard into a folder, overwriting older versions."""
    from dcim.dashboards.push import push

    token = os.environ.get(token_env, "")
    if not token:
        raise DcimError(f"environment variable {token_env} is not set (it must hold the Grafana token)")
    ctx = _context(site_file, rules_dir, datasource_uid=datasource_uid, folder=folder, folder_uid=folder_uid)
    cfg = ctx.cfg
    done = push(url, token, builder.dashboards(ctx), folder=cfg.folder, folder_uid=cfg.folder_uid,
                datasource_uid=cfg.datasource_uid, timeout_s=timeout_s)
    for d in done:
        click.echo(f"pushed {d.uid} (version {d.version}) {d.url or ''}".rstrip())


@dashboards_group.command("render")
@click.option("--influx-url", default=None, help="InfluxDB 1.x URL (default: DashboardsConfig.influx_url).")
@click.option("--database", default=None, help="Database (default: DashboardsConfig.database).")
@click.option("--last", "last", default="1h", show_default=True, help="Time range ending now, e.g. 15m, 6h.")
@click.option("--interval", default="10s", show_default=True, help="What $__interval becomes.")
@click.option("--var", "prefer", multiple=True, metavar="NAME=VALUE", help="Select a variable value, e.g. rack=B01.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="docs/img/dashboards", show_default=True)
@_site_opt
@_rules_opt
def render_cmd(influx_url: str | None, database: str | None, last: str, interval: str, prefer: tuple[str, ...],
               out_dir: str, site_file: str | None, rules_dir: str) -> None:
    """Draw each dashboard's layout with the data its queries return (a matplotlib sketch, PNG)."""
    import time

    from dcim.dashboards.expand import TimeRange, interval_ms
    from dcim.dashboards.render import influx_runner, render

    ctx = _context(site_file, rules_dir)
    run = influx_runner(influx_url or ctx.cfg.influx_url, database or ctx.cfg.database)
    now_ms = int(time.time() * 1000)
    tr = TimeRange(now_ms - interval_ms(last), now_ms)
    chosen = dict(p.split("=", 1) for p in prefer if "=" in p)
    for key, data in builder.dashboards(ctx).items():
        path = render(data, run, tr, Path(out_dir) / f"{key}.png", interval=interval, prefer=chosen)
        click.echo(f"wrote {path}")
