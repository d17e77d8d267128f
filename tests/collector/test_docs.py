"""docs/collector.md stays true: its sample configuration parses, its metric list is the real one."""

from __future__ import annotations

import re
from pathlib import Path

from dcim.collector.cli import check
from dcim.collector.metrics import CollectorMetrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "collector.md"


def section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_sample_configuration_checks(tmp_path, monkeypatch):
    (block,) = re.findall(r"```yaml\n(.*?)```", section("Configuration"), re.S)
    p = tmp_path / "collector.yaml"
    p.write_text(block)
    monkeypatch.setenv("DCIM_MQTT_PASSWORD", "x")
    monkeypatch.setenv("DCIM_INFLUX_PASSWORD", "y")
    out = check(p)
    assert out[0].endswith(": ok")
    assert any("cdu-gateway, bms-cdu" in line for line in out)


def test_metric_list_matches_the_registry():
    documented = set(re.findall(r"`([a-z_]+)(?:\{[a-z_,]+\})?`", section("Self-metrics (`/metrics`)")))
    registry = CollectorMetrics().registry
    real = set()
    for fam in registry.collect():
        name = fam.name.removeprefix("dcim_collector_")
        real.add(name + "_total" if fam.type == "counter" else name)
    assert real <= documented, real - documented
    assert {d for d in documented if not d.startswith("dcim")} - real == set()


def test_sinks_sample_parses():
    import yaml

    from dcim.config import CollectorConfig

    (block,) = re.findall(r"```yaml\n(.*?)```", section("Sinks"), re.S)
    cfg = CollectorConfig(**yaml.safe_load(block)["collector"])
    assert [(s.kind, s.name) for s in cfg.sinks] == [("influxdb_v1", "old"), ("influxdb_v2", "new"),
                                                      ("embedded", "local")]
