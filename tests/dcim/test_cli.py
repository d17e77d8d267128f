"""One console script: every subcommand loads and answers --help."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from dcim.app.cli import cli


def _walk(group: click.Group, ctx: click.Context, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    out = [path]
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, f"dcim {' '.join(path + (name,))} does not load"
        if isinstance(cmd, click.Group):
            out += _walk(cmd, click.Context(cmd, info_name=name, parent=ctx), path + (name,))
        else:
            out.append(path + (name,))
    return out


ALL = _walk(cli, click.Context(cli, info_name="dcim"), ())


def test_expected_commands_exist() -> None:
    names = {" ".join(p) for p in ALL}
    for expected in ("demo", "simulate", "agent gpu", "agent snmp", "collector", "alerts check", "alerts test",
                     "record", "replay", "dashboards build", "dashboards push", "config check", "schema"):
        assert expected in names


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "dcim")
def test_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    assert "Show this message and exit" in result.output
