"""Render the field table of docs/gpu-agent.md from the GPU field table (dcim.gpu_fields), so the docs cannot drift.

    python -m dcim.agents.gpu.docgen docs/gpu-agent.md     # rewrite the block between the fields markers
"""

from __future__ import annotations

from dcim import gpu_fields as table
from dcim.docblock import DocBlock

BLOCK = DocBlock("gpu-fields", "python -m dcim.agents.gpu.docgen")

_MIG = {"mode": "; hidden in MIG mode", "instances": "; hidden while MIG instances exist"}


def _number(x: float) -> str:
    """1000, 1048576, 1e9: whole numbers in full up to a million, powers of ten beyond as 1eN."""
    if float(x).is_integer():
        n = int(x)
        s = str(n)
        if n >= 10**7 and s.rstrip("0") == "1":
            return f"1e{len(s) - 1}"
        return s
    return f"{x:g}"


def _factor(f: float) -> str:
    """A multiplier as the reader would write it: x 1024, ÷ 1000 (never x 0.001)."""
    if f < 1 and abs(round(1 / f) * f - 1) < 1e-12:
        return f"÷ {_number(round(1 / f))}"
    return f"× {_number(f)}"


def _conversion(unit: str, scale: float) -> str:
    return unit if scale == 1 else f"{unit} {_factor(scale)}"


def _take(take: str) -> str:
    if take.startswith("."):
        return f" `{take}`"
    if take.startswith("[") and take.endswith("]"):
        return f" item {take[1:-1]}"
    if take == "len":
        return " (count)"
    if take.startswith("&"):
        return f" bit {take[1:]}"
    if take.startswith("="):
        return f" ({take[1:]} when it answers)"
    return ""


def _call(c: table.Call) -> str:
    args = f"({', '.join(c.args)})" if c.args else ""
    return f"`{c.call}{args}`{_take(c.take)}"


def _field_id(f: table.FieldId) -> str:
    return f"`{f.name}` ({f.id}, {f.ctype})"


def _source(r: table.GpuField) -> str:
    read = r.read
    if isinstance(read, table.FieldId):
        text = f"`nvmlDeviceGetFieldValues` {_field_id(read)}"
        if read.links:
            text += ", summed over links (scope UINT_MAX) or link by link"
        if read.fallback is not None:
            text += f"; {_field_id(read.fallback)} where that is unsupported"
        return text
    if isinstance(read, table.Call):
        text = _call(read)
        if read.fallback is not None:
            text += f"; {_call(read.fallback)} where the driver or binding lacks it"
        return text
    if isinstance(read, table.Gpm):
        return f"`nvmlGpmMetricsGet` `{read.name}`"
    return f"agent: {read.how}"


def _nvml_unit(r: table.GpuField) -> str:
    read = r.read
    take = getattr(read, "take", "")
    if isinstance(read, table.Agent) or take.startswith("="):  # "=": which call answered, not a reading
        return "-"
    if take.startswith("&"):
        return f"one bit of the {read.unit}"
    text = _conversion(read.unit, read.scale)
    fallback = getattr(read, "fallback", None)
    if fallback is not None and (fallback.unit, fallback.scale) != (read.unit, read.scale):
        text += f"; fallback {_conversion(fallback.unit, fallback.scale)}"
    return text


def _when(r: table.GpuField) -> str:
    read = r.read
    if isinstance(read, table.Agent):
        return "by the agent"
    if isinstance(read, table.Gpm):
        return "per poll, from the second"
    when = "once per GPU" if isinstance(read, table.Call) and read.static else "per poll"
    return when + _MIG.get(read.mig or "", "")


def _metric(r: table.GpuField) -> str:
    m = r.metric
    if m is None:
        return "-"
    # prometheus-client adds _total to our counters; dcgm-exporter's counter names have none
    name = m.name + ("_total" if m.type == "counter" and not m.dcgm else "")
    if m.label is not None:
        name += f'{{{m.label[0]}="{m.label[1]}"}}'
    text = f"`{name}` {m.type}"
    if m.factor != 1:
        text += f", {_factor(m.factor)}"
    return text


def fields_markdown() -> str:
    out = [
        "| field | type, unit | NVML source | NVML unit → schema | read | /metrics | simulated |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table.GPU_FIELDS:
        out.append(f"| `{r.name}` | {r.type}, {r.unit} | {_source(r)} | {_nvml_unit(r)} | {_when(r)} "
                   f"| {_metric(r)} | {'held' if r.sim else 'derived'} |")
    return "\n".join(out)


if __name__ == "__main__":
    BLOCK.main(fields_markdown, "docs/gpu-agent.md")
