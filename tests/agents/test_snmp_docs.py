"""docs/snmp.md stays true: its samples parse, and every profile's OIDs are documented."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from dcim.agents.snmp.profile import Profile, load_profiles
from dcim.config import SiteConfig

DOC = Path(__file__).parents[2] / "docs" / "snmp.md"


def _yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)


def test_sample_site_configuration_parses() -> None:
    site = SiteConfig.model_validate(yaml.safe_load(_yaml_blocks()[0]))
    names = [d.name for d in site.snmp_agent.devices]
    assert names == ["A01-pdu-a", "cdu-a"]
    assert site.snmp_agent.devices[1].v3 is not None


def test_sample_profile_parses() -> None:
    prof = Profile.model_validate(yaml.safe_load(_yaml_blocks()[1]))
    assert prof.columns() == ["1.3.6.1.4.1.318.1.1.26.6.3.1.3", "1.3.6.1.4.1.318.1.1.26.6.3.1.5"]


def test_every_profile_and_column_is_documented() -> None:
    text = DOC.read_text()
    for p in load_profiles().values():
        assert f"### `{p.name}`" in text, p.name
        for t in p.tables:
            for f in t.fields:
                assert t.columns[f.column].oid in text, (p.name, f.name)


def test_profiles_section_is_generated_from_the_profiles() -> None:
    from dcim.agents.snmp.docgen import BEGIN, END, profiles_markdown

    text = DOC.read_text()
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert block.strip() == profiles_markdown().strip(), "run: python -m dcim.agents.snmp.docgen docs/snmp.md"
