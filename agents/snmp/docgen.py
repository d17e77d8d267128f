"""Render the profiles section of docs/snmp.md from the profile files, so the docs cannot drift.

    python -m dcim.agents.snmp.docgen docs/snmp.md     # rewrite the block between the profile markers
"""

from __future__ import annotations

from pathlib import Path

import yaml

from dcim.agents.snmp.profile import PROFILE_DIR, Profile, load_profiles
from dcim.docblock import DocBlock

BLOCK = DocBlock("profiles", "python -m dcim.agents.snmp.docgen")
BEGIN, END = BLOCK.begin, BLOCK.end
ORDER = ["apc_rpdu2", "apc_rpdu2_nps", "apc_rpdu", "apc_epdu", "apc_cpdu", "raritan_pdu2", "sentry4", "eaton_epdu", "cyberpower_epdu2", "ups_mib",
         "if_mib", "liebert_flexible", "apc_cooling"]


def _header(path: Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").rstrip())
    return " ".join(lines)


def _scaling(p: Profile, t, f) -> str:  # noqa: ANN001
    if f.map:
        return "map " + ", ".join(f"{k}→{str(v).lower() if isinstance(v, bool) else v}" for k, v in f.map.items())
    parts = []
    if f.scale != 1:
        parts.append(f"× {f.scale:g}")
    if f.decimals:
        parts.append(f"÷ 10^(`{t.columns[f.decimals].oid}`)")
    if f.divisor:
        parts.append(f"÷ `{t.columns[f.divisor].oid}`")
    if f.unit:
        parts.append(f"× factor of unit `{t.columns[f.unit].oid}` (table `{f.units}`)")
    if f.offset:
        parts.append(f"+ {f.offset:g}")
    return "; ".join(parts) or "as is"


def _values(v) -> str:  # noqa: ANN001
    return " or ".join("absent" if x is None else str(x) for x in (v if isinstance(v, list) else [v]))


def _rows(t, f) -> str:  # noqa: ANN001
    notes = []
    if f.when:
        notes.append("rows where " + ", ".join(f"{k} = {_values(v)}" for k, v in f.when.items()))
    if f.unless:
        notes.append("rows except " + ", ".join(f"{k} = {_values(v)}" for k, v in f.unless.items()))
    sentinels = f.sentinels if f.sentinels is not None else t.sentinels
    if sentinels:
        notes.append(", ".join(map(str, sentinels)) + " = unsupported, omitted")
    if f.range is not None:
        notes.append(f"raw outside {f.range[0]}..{f.range[1]} = unsupported, omitted")
    return "; ".join(notes)


def profiles_markdown(directory: Path = PROFILE_DIR) -> str:
    profiles = load_profiles(directory)
    files = {yaml.safe_load(f.read_text())["name"]: f for f in directory.glob("*.yaml")}
    names = [n for n in ORDER if n in profiles] + sorted(set(profiles) - set(ORDER))
    out = []
    for name in names:
        p = profiles[name]
        out.append(f"### `{p.name}`: {p.title}\n")
        out.append(f"{_header(files[name])} (file `agents/snmp/profiles/{files[name].name}`)\n")
        if p.detect.sys_object_id:
            detect = f" Candidate for sysObjectID under {', '.join(f'`{o}`' for o in p.detect.sys_object_id)}"
        elif p.detect.standard:
            detect = " A standard MIB: probed on every device, whatever its sysObjectID"
        else:
            detect = f" Not auto-detected: set `profile: {p.name}`"
        if p.detect.sys_object_id or p.detect.standard:
            probes = p.detect.probe or [c for c, _ in p.probes()]
            detect += "; probes " + ", ".join(f"`{c}`" for c in probes)
        if p.detect.supersedes:
            detect += "; wins over " + ", ".join(f"`{n}`" for n in p.detect.supersedes) + " whenever it answers"
        out.append(f"MIB: {p.mib}.{detect}.\n")
        out.append("| measurement | field | column OID | scaling to SI | rows / notes |")
        out.append("|---|---|---|---|---|")
        for t in p.tables:
            for f in t.fields:
                out.append(f"| `{t.measurement}` | `{f.name}` | `{t.columns[f.column].oid}` | {_scaling(p, t, f)} "
                           f"| {_rows(t, f)} |")
        tags = [(t.name, t.tags, t.tag_maps, t.tag_extract) for t in p.tables if t.tags]
        if tags:
            text = "; ".join(f"{tn}: " + ", ".join(f"`{k}` = `{v}`" for k, v in tg.items())
                             + "".join(f" (`{k}`: " + ", ".join(f"{a}→{b}" for a, b in m.items()) + ")"
                                       for k, m in maps.items())
                             + "".join(f" (`{k}` reduced to the group of `{rx}`)" for k, rx in extract.items())
                             for tn, tg, maps, extract in tags)
            out.append(f"\nRow tags: {text}. Names in braces are index parts or columns of the YAML.")
        for un, tab in p.units.items():
            out.append(f"\nUnit table `{un}` (device code → factor, or [factor, offset], to the field's unit): "
                       + ", ".join(f"{k}: {v}" for k, v in tab.items()) + ".")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    BLOCK.main(profiles_markdown, "docs/snmp.md")
