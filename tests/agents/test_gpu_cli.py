"""``dcim agent gpu --simulate --once``: line protocol and /metrics output of one poll, and its errors."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from dcim.agents.gpu.cli import gpu_cmd
from dcim.config import SITES_DIR
from dcim.errors import ConfigError
from dcim.lineprotocol.decode import decode
from dcim.schema import validate

#: The H100 hall: nodes of 8 GPUs, the shape these expectations are written for.
H100_HALL = str(SITES_DIR / "h100-hall.yaml")


def test_once_lp_prints_valid_line_protocol_for_the_first_node() -> None:
    res = CliRunner().invoke(gpu_cmd, ["--simulate", "--once", "--format", "lp", "--site", H100_HALL], catch_exceptions=False)
    assert res.exit_code == 0
    records = list(decode(res.output))
    gpus = [r for r in records if r.measurement == "gpu"]
    assert len(gpus) == 8
    assert {r.tags["node"] for r in gpus} == {"A01-n01"}
    assert {r.tags["site"] for r in gpus} == {"dc1"}
    for r in records:
        assert validate(r, allow_extra_tags=False) == []
    assert all(r.fields["power_w"] > 0 and r.fields["temp_c"] > 0 for r in gpus)


def test_once_prometheus_has_dcgm_names_and_labels_for_the_chosen_node() -> None:
    res = CliRunner().invoke(gpu_cmd, ["--simulate", "--once", "--format", "prometheus", "--node", "B02-n03",
                                       "--site", H100_HALL],
                             catch_exceptions=False)
    assert res.exit_code == 0
    fams = {f.name: f for f in text_string_to_metric_families(res.output)}
    temp = fams["DCGM_FI_DEV_GPU_TEMP"]
    assert len(temp.samples) == 8
    labels = temp.samples[0].labels
    assert labels["Hostname"] == labels["hostname"] == "B02-n03"
    assert labels["UUID"].startswith("GPU-") and labels["modelName"] and labels["gpu"] == "0"
    # a counter in mJ with no _total, as dcgm-exporter writes it
    assert "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n" in res.output
    assert "\nDCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{" in res.output
    assert "dcim_gpu_agent_poll_duration_seconds" in fams


def test_config_file_and_unknown_node(tmp_path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "site: lab\nrooms:\n  - name: r1\n    rows:\n      - name: x\n        racks:\n"
        "          - name: R9\n            nodes: 1\n"
        "defaults:\n  gpus_per_node: 2\n"
    )
    res = CliRunner().invoke(gpu_cmd, ["--simulate", "--once", "--site", str(site)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    records = [r for r in decode(res.output) if r.measurement == "gpu"]
    assert [r.tags["rack"] for r in records] == ["R9", "R9"]
    assert records[0].tags["node"] == "R9-n01"
    res = CliRunner().invoke(gpu_cmd, ["--simulate", "--once", "--site", str(site), "--node", "nope"])
    assert isinstance(res.exception, ConfigError) and "pass --node" in str(res.exception)


def test_unknown_node_exits_2_with_one_line_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "dcim.app.cli", "agent", "gpu", "--simulate", "--once", "--node", "Z9"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: node 'Z9' is not in site") and "Traceback" not in proc.stderr


def test_docs_sample_config_parses_and_the_field_table_is_generated_from_the_rows() -> None:
    import re
    from pathlib import Path

    import yaml

    from dcim import gpu_fields
    from dcim.agents.gpu import docgen
    from dcim.config import GpuAgentConfig, MqttConfig

    path = Path(__file__).resolve().parents[2] / "docs" / "gpu-agent.md"
    doc = path.read_text()
    sample = re.search(r"```yaml\n(.*?)```", doc, re.S).group(1)
    data = yaml.safe_load(sample)
    assert GpuAgentConfig.model_validate(data["gpu_agent"]).queue_max == 10000
    assert MqttConfig.model_validate(data["mqtt"]).password.env == "DCIM_MQTT_PASSWORD"
    assert docgen.BLOCK.begin in doc.split("## Fields", 1)[1].split("\n## ", 1)[0]
    assert not docgen.BLOCK.stale(path, docgen.fields_markdown()), f"run: {docgen.BLOCK.command} docs/gpu-agent.md"
    # one line per row, in table order, naming what the row holds
    lines = docgen.BLOCK.current(path).splitlines()[2:]
    assert len(lines) == len(gpu_fields.GPU_FIELDS)
    for line, row in zip(lines, gpu_fields.GPU_FIELDS, strict=True):
        name, unit, source, _, _, metric, sim = (c.strip() for c in line.strip("|").split(" | "))
        assert (name, unit, sim) == (f"`{row.name}`", f"{row.type}, {row.unit}", "held" if row.sim else "derived")
        read = row.read
        for r in (read, getattr(read, "fallback", None)):
            if isinstance(r, gpu_fields.FieldId):
                assert f"`{r.name}` ({r.id}, {r.ctype})" in source, row.name
            elif isinstance(r, gpu_fields.Call | gpu_fields.Gpm):
                assert f"`{getattr(r, 'call', None) or r.name}" in source, row.name
            elif isinstance(r, gpu_fields.Agent):
                assert r.how in source, row.name
        assert (metric == "-") if row.metric is None else metric.startswith(f"`{row.metric.name}"), row.name


def test_a_host_not_in_the_site_file_is_refused_not_given_another_nodes_identity() -> None:
    import pytest

    from dcim.agents.gpu.cli import host_node
    from dcim.config import named_site

    site = named_site("h100-hall")
    assert host_node(site, "B02-n03") == "B02-n03"
    assert host_node(site, "B02-n03.hall1.example.net") == "B02-n03"  # the short name counts too
    with pytest.raises(ConfigError, match=r"this host \('gpu-server-17'\) is not a node of site 'dc1'.*--node"):
        host_node(site, "gpu-server-17")


def test_real_mode_on_an_unknown_host_exits_2_naming_the_host(monkeypatch) -> None:
    import socket

    monkeypatch.setattr(socket, "gethostname", lambda: "gpu-server-17")
    res = CliRunner().invoke(gpu_cmd, ["--no-simulate", "--once"])
    assert isinstance(res.exception, ConfigError) and "gpu-server-17" in str(res.exception)
