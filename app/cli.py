"""The one command line, ``dcim``. Subcommands live beside the code they run and load on first use."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from dcim import __version__
from dcim.errors import DcimError


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used, so ``dcim --help`` stays fast."""

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module_name, attr = self.lazy[name].split(":")
            module = importlib.import_module(module_name)
            return getattr(module, attr)
        return super().get_command(ctx, name)


@click.group(
    cls=LazyGroup,
    lazy={
        "demo": "dcim.app.demo:demo_cmd",
        "simulate": "dcim.simulators.cli:simulate_cmd",
        "collector": "dcim.collector.cli:collector_cmd",
        "alerts": "dcim.alerts.cli:alerts_group",
        "record": "dcim.app.record:record_cmd",
        "replay": "dcim.alerts.replay_cli:replay_cmd",
        "dashboards": "dcim.dashboards.cli:dashboards_group",
    },
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="dcim")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Telemetry for GPU data halls: agents, collector, alerts, dashboards, simulators."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@cli.group(
    cls=LazyGroup,
    lazy={"gpu": "dcim.agents.gpu.cli:gpu_cmd", "snmp": "dcim.agents.snmp.cli:snmp_cmd"},
)
def agent() -> None:
    """Node agents: read devices and publish their records."""


@cli.command("schema")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True)
def schema_cmd(fmt: str) -> None:
    """Print every measurement, tag and field (type, unit, kind, description)."""
    import json

    from dcim import schema

    if fmt == "markdown":
        click.echo(schema.markdown(), nl=False)
        return
    data = {
        m.name: {
            "description": m.description,
            "tags": list(m.tags),
            "fields": {f.name: {"type": f.type, "unit": f.unit, "kind": f.kind, "description": f.description}
                       for f in m.fields.values()},
        }
        for m in schema.MEASUREMENTS.values()
    }
    click.echo(json.dumps(data, indent=2))


@cli.group()
def config() -> None:
    """Configuration files."""


@config.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def config_check(files: tuple[str, ...]) -> None:
    """Validate site configuration files; errors name the file, path and line."""
    from dcim.config import load_site

    for f in files:
        site = load_site(f)
        racks = list(site.racks())
        gpus = sum(n.gpus for r in racks for n in r.nodes)
        click.echo(f"{f}: ok (site {site.site}: {len(racks)} racks, {gpus} GPUs, {len(site.loops)} loops)")


def main(argv: list[str] | None = None) -> None:
    """Entry point: our own errors print as one clear line and exit 2, never as a traceback."""
    try:
        cli.main(args=argv, prog_name="dcim", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DcimError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
