"""``dcim alerts``: validate rule files (check) and run their unit tests (test)."""

from __future__ import annotations

from collections import Counter

import click


def _site(path: str | None):
    from dcim.config import default_site, load_site

    return load_site(path) if path else default_site()


@click.group("alerts")
def alerts_group() -> None:
    """Alert rules: validate them and run their unit tests."""


@alerts_group.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
def check_cmd(paths: tuple[str, ...]) -> None:
    """Validate rule files (or directories of *.yaml); errors name the file, rule and field."""
    from dcim.alerts.rulefile import load_rules, rule_paths

    total = 0
    for p in rule_paths(paths):
        rules = load_rules([p])
        kinds = Counter(r.kind for r in rules)
        total += len(rules)
        detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        click.echo(f"{p}: ok ({len(rules)} rules{': ' + detail if detail else ''})")
    load_rules(paths)  # names must also be unique across all files given together
    click.echo(f"{total} rules ok")


@alerts_group.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--site", "site_path", type=click.Path(dir_okay=False, exists=True),
              help="Site file for topology (default: the embedded hall).")
@click.option("--run", "run", default=None, help="Only test groups whose name matches this regex.")
def test_cmd(paths: tuple[str, ...], site_path: str | None, run: str | None) -> None:
    """Run rule unit-test files (promtool-style series notation); exit 1 on a failure."""
    from dcim.alerts.ruletest import run_files

    result = run_files(paths, site=_site(site_path) if site_path else None, run=run)
    for f in result.failures:
        click.echo(f"FAILED {f}", err=True)
    untested = sorted(result.rules - result.covered)
    if untested:
        click.echo(f"rules with no test expecting them to fire: {', '.join(untested)}")
    status = "SUCCESS" if result.ok else "FAILED"
    click.echo(f"{status}: {result.files} files, {result.groups} groups, {result.cases} cases, "
               f"{len(result.failures)} failures")
    if not result.ok:
        raise SystemExit(1)
