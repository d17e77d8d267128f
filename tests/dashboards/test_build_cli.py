"""``dcim dashboards build`` writes the files; ``--check`` fails when the committed files drift from the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from dcim.dashboards.build import OUT_DIR, check, context, outputs, write

ROOT = Path(__file__).resolve().parents[2]


def _dcim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dcim.app.cli", "dashboards", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_committed_dashboards_are_what_the_code_generates() -> None:
    # The CI guard: edit dashboards/*.py, run `dcim dashboards build`, commit both.
    res = _dcim("build", "--check")
    assert res.returncode == 0, res.stderr
    assert "up to date" in res.stdout


def test_check_names_a_changed_a_missing_and_a_stale_file(tmp_path: Path) -> None:
    ctx = context()
    write(ctx, tmp_path)
    assert check(ctx, tmp_path) == []
    (tmp_path / "json" / "rack.json").write_text("{}\n")
    (tmp_path / "json" / "node.json").unlink()
    (tmp_path / "json" / "old.json").write_text("{}\n")
    problems = check(ctx, tmp_path)
    assert any(p.startswith("json/rack.json: differs") for p in problems)
    assert any(p.startswith("json/node.json: missing") for p in problems)
    assert any(p.startswith("json/old.json: not generated") for p in problems)
    res = _dcim("build", "--check", "--out", str(tmp_path))
    assert res.returncode == 1
    assert "json/rack.json" in res.stderr and "dcim dashboards build" in res.stderr
    res = _dcim("build", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert _dcim("build", "--check", "--out", str(tmp_path)).returncode == 1  # old.json is still there
    (tmp_path / "json" / "old.json").unlink()
    assert _dcim("build", "--check", "--out", str(tmp_path)).returncode == 0


def test_provisioning_files_point_grafana_at_influxql_and_the_json() -> None:
    ctx = context()
    files = {o.path: yaml.safe_load(o.text) for o in outputs(ctx) if o.path.startswith("provisioning/")}
    ds = files["provisioning/datasources/dcim.yaml"]["datasources"][0]
    assert ds["type"] == "influxdb" and ds["uid"] == ctx.cfg.datasource_uid
    assert ds["jsonData"]["version"] == "InfluxQL" and ds["jsonData"]["dbName"] == ctx.cfg.database
    assert ds["url"].startswith("http://127.0.0.1")
    provider = files["provisioning/dashboards/dcim.yaml"]["providers"][0]
    assert provider["type"] == "file" and provider["folderUid"] == ctx.cfg.folder_uid
    assert (OUT_DIR / "provisioning" / "datasources" / "dcim.yaml").is_file()
