"""Alert templates for labels and annotations: the Go text/template subset Prometheus rules use, with its
number printing and ``humanize*`` functions (https://prometheus.io/docs/prometheus/latest/configuration/template_reference/).

Supported inside ``{{ ... }}``: ``$value``, ``$threshold``, ``$labels.NAME`` (also ``.Value``,
``.Labels.NAME``), ``$location``, ``$rule``, ``$severity``, ``$state``; string and number
literals; pipelines (``$value | humanize``) and calls (``humanize $value``, ``printf "%.1f" $value``)
of ``humanize``, ``humanize1024``, ``humanizeDuration``, ``humanizePercentage``, ``printf``,
``toUpper``, ``toLower``, ``title``; and this project's ``$value:.1f`` (a Python format spec).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from dcim.errors import TemplateError

#: Variables a template may use; labels may not use the ones that change while an alert is active.
VARIABLES = frozenset({"value", "threshold", "location", "rule", "severity", "state", "labels"})
LABEL_VARIABLES = frozenset({"location", "rule", "severity", "labels"})


# --- printing numbers as Go (and so Prometheus) does -------------------------------------------


def go_float(v: float) -> str:
    """``fmt.Sprint(float64)``: strconv 'g' with the shortest digits, %e from exponent -5 and 6 up.

    Go prints 88.125, 1.234567e+06, 1e-05, +Inf and NaN where Python prints 1234567.0 or inf.
    """
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    sign, digits, exp = Decimal(repr(v)).as_tuple()
    ds = list(digits)
    while len(ds) > 1 and ds[-1] == 0:
        ds.pop()
        exp += 1
    nd = len(ds)
    dp = nd + int(exp)  # position of the decimal point among the digits
    text = "".join(map(str, ds))
    neg = "-" if sign else ""
    x = dp - 1
    if x < -4 or x >= 6:  # Go: "if precision was the shortest possible, use precision 6 for this decision"
        mant = text[0] + ("." + text[1:] if nd > 1 else "")
        return f"{neg}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{text}"
    if dp >= nd:
        return f"{neg}{text}{'0' * (dp - nd)}"
    return f"{neg}{text[:dp]}.{text[dp:]}"


def _g4(v: float) -> str:
    """Go's ``%.4g``: the same as Python's for finite values; Go spells infinities +Inf/-Inf and NaN."""
    if math.isnan(v) or math.isinf(v):
        return go_float(v)
    return "%.4g" % v


def _num(v: Any, fn: str) -> float:
    if isinstance(v, bool) or v is None:
        raise TemplateError(f"{fn}: needs a number, got {v!r}")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise TemplateError(f"{fn}: needs a number, got {v!r}") from None


def humanize(v: Any) -> str:
    """Prometheus ``humanize``: SI prefixes with 4 significant digits (1234567 -> 1.235M, 0.12 -> 120m)."""
    v = _num(v, "humanize")
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    prefix = ""
    if abs(v) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
        return _g4(v) + prefix
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return _g4(v) + prefix


def humanize1024(v: Any) -> str:
    """Prometheus ``humanize1024``: binary prefixes (1048576 -> 1Mi)."""
    v = _num(v, "humanize1024")
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix, v = p, v / 1024
    return _g4(v) + prefix


def humanize_duration(v: Any) -> str:
    """Prometheus ``humanizeDuration`` of seconds: ``1d 1h 0m 0s``, ``14m 59s``, ``1.234s``, ``100ms``."""
    v = _num(v, "humanizeDuration")
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    if v == 0:
        return _g4(v) + "s"
    if abs(v) >= 1:
        sign = ""
        if v < 0:
            sign, v = "-", -v
        whole = int(v)
        seconds, minutes, hours, days = whole % 60, whole // 60 % 60, whole // 3600 % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(v)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{_g4(v)}{prefix}s"


def humanize_percentage(v: Any) -> str:
    """Prometheus ``humanizePercentage``: a ratio as percent, 4 significant digits (0.1234567 -> 12.35%)."""
    return _g4(_num(v, "humanizePercentage") * 100) + "%"


_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def printf(fmt: str, *args: Any) -> str:
    """Go's ``fmt.Sprintf`` for the verbs alert templates use: %v %s %d %f %e %g %x %q %%."""
    out, pos, i = [], 0, 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.group(1), m.group(2) or "", m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if i >= len(args):
            out.append(f"%!{verb}(MISSING)")  # what Go prints
            continue
        arg = args[i]
        i += 1
        spec = flags + width + (f".{prec}" if prec is not None else "")
        if verb in "fFeEgG" and isinstance(arg, (int, float)) and not isinstance(arg, bool):
            x = float(arg)
            if math.isnan(x) or math.isinf(x):
                out.append(go_float(x))
            elif verb in "gG" and prec is None:
                out.append(go_float(x))
            else:
                out.append(("%" + spec + verb) % x)
        elif verb == "d" and isinstance(arg, (int, float)) and not isinstance(arg, bool) and float(arg).is_integer():
            out.append(("%" + spec + "d") % int(arg))
        elif verb in "xX" and isinstance(arg, int) and not isinstance(arg, bool):
            out.append(("%" + spec + verb) % arg)
        elif verb == "q":
            out.append('"' + str(arg).replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif verb in "sv":
            out.append(("%" + spec + "s") % _print(arg))
        else:
            out.append(f"%!{verb}({type(arg).__name__}={_print(arg)})")  # Go's bad-verb marker
    out.append(fmt[pos:])
    if i < len(args):
        out.append("%!(EXTRA " + ", ".join(_print(a) for a in args[i:]) + ")")
    return "".join(out)


def _title(s: Any) -> str:
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m.group(1) + m.group(2).upper(), str(s))


FUNCTIONS: dict[str, Any] = {
    "humanize": humanize,
    "humanize1024": humanize1024,
    "humanizeDuration": humanize_duration,
    "humanizePercentage": humanize_percentage,
    "printf": printf,
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "title": _title,
}
_ARITY = {"printf": (1, None), "toUpper": (1, 1), "toLower": (1, 1), "title": (1, 1)}


def _print(v: Any) -> str:
    """How text/template prints a value (fmt.Sprint)."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float(v)
    return str(v)


def fmt(v: float | None) -> str:
    """A value as a template prints it (Go's shortest 'g'; ``n/a`` when there is none)."""
    return _print(v)


# --- parsing ------------------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{-?(.*?)-?\}\}", re.S)
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)|(?P<pipe>\|)|(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)'
                    r'|(?P<var>\$[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?(?::[^\s|}]+)?)|(?P<dot>\.[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)'
                    r'|(?P<ident>[A-Za-z_]\w*))')


@dataclass(frozen=True, slots=True)
class _Operand:
    kind: str  # var, lit, func
    name: str = ""
    attr: str | None = None
    spec: str | None = None
    value: Any = None


def _operand(m: re.Match[str]) -> _Operand:
    kind = m.lastgroup
    text = m.group(kind)
    if kind == "str":
        body = text[1:-1]
        if text[0] == '"':
            body = bytes(body, "utf-8").decode("unicode_escape")
        return _Operand("lit", value=body)
    if kind == "num":
        return _Operand("lit", value=float(text) if any(c in text for c in ".eE") else int(text))
    if kind == "dot":
        parts = text[1:].split(".")
        head = {"Value": "value", "Labels": "labels"}.get(parts[0])
        if head is None:
            raise TemplateError(f"unknown field .{parts[0]} (known: .Value, .Labels.NAME)")
        return _var(head, parts[1] if len(parts) > 1 else None, None)
    if kind == "var":
        name, _, spec = text[1:].partition(":")
        var, _, attr = name.partition(".")
        return _var(var, attr or None, spec or None)
    if text not in FUNCTIONS:
        raise TemplateError(f"unknown function {text!r} (known: {', '.join(sorted(FUNCTIONS))})")
    return _Operand("func", name=text)


def _var(var: str, attr: str | None, spec: str | None) -> _Operand:
    if var not in VARIABLES:
        raise TemplateError(f"unknown template variable ${var} (known: {', '.join('$' + v for v in sorted(VARIABLES))})")
    if (var == "labels") != (attr is not None):
        raise TemplateError("write $labels.NAME, and no attribute on $" + var)
    if spec:
        try:
            format(1.5, spec)
        except ValueError:
            raise TemplateError(f"bad format spec {spec!r}") from None
    return _Operand("var", name=var, attr=attr, spec=spec)


def _parse_action(text: str) -> list[list[_Operand]]:
    commands: list[list[_Operand]] = [[]]
    pos = 0
    body = text.strip()
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if m is None or m.end() == pos:
            raise TemplateError(f"cannot parse {body[pos:]!r} in {{{{ {body} }}}}")
        pos = m.end()
        if m.lastgroup == "pipe":
            commands.append([])
        else:
            commands[-1].append(_operand(m))
    if not body or any(not c for c in commands):
        raise TemplateError(f"empty command in {{{{ {body} }}}}")
    for i, cmd in enumerate(commands):
        head = cmd[0]
        if head.kind != "func" and len(cmd) > 1:
            raise TemplateError(f"{{{{ {body} }}}}: only a function takes arguments")
        if head.kind != "func" and i > 0:
            raise TemplateError(f"{{{{ {body} }}}}: only a function can follow |")
        if head.kind == "func":
            nargs = len(cmd) - 1 + (1 if i > 0 else 0)
            lo, hi = _ARITY.get(head.name, (1, 1))
            if nargs < lo or (hi is not None and nargs > hi):
                raise TemplateError(f"{{{{ {body} }}}}: wrong number of arguments for {head.name}")
        if any(op.kind == "func" for op in cmd[1:]):
            raise TemplateError(f"{{{{ {body} }}}}: a function name cannot be an argument (use |)")
    return commands


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: literal text and actions in order."""

    parts: tuple[str | list[list[_Operand]], ...]

    def variables(self) -> set[str]:
        return {op.name for p in self.parts if not isinstance(p, str) for cmd in p for op in cmd if op.kind == "var"}


@lru_cache(maxsize=4096)
def parse(text: str) -> Template:
    """Parse once (cached); TemplateError names the bad action."""
    parts: list[Any] = []
    pos = 0
    for m in _ACTION.finditer(text):
        parts.append(text[pos:m.start()])
        parts.append(_parse_action(m.group(1)))
        pos = m.end()
    rest = text[pos:]
    if "{{" in rest:
        raise TemplateError("unclosed or malformed {{ ... }} template")
    parts.append(rest)
    return Template(tuple(p for p in parts if p != ""))


def check(text: str, *, label: bool = False) -> None:
    """Parse and render with sample values; raises TemplateError saying why it cannot render."""
    tmpl = parse(text)
    if label:
        moving = tmpl.variables() - LABEL_VARIABLES
        if moving:
            raise TemplateError(f"${sorted(moving)[0]} changes while the alert is active; a label is the alert's "
                                "identity (put it in an annotation)")
    _execute(tmpl, {"value": 1.5, "threshold": 1.0, "rule": "Rule", "severity": "warning", "state": "firing",
                    "location": "site", "labels": {}})


# --- rendering ----------------------------------------------------------------------------------


def _execute(tmpl: Template, env: dict[str, Any]) -> str:
    out = []
    for part in tmpl.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        val: Any = None
        for i, cmd in enumerate(part):
            head = cmd[0]
            if head.kind != "func":
                val = _eval(head, env)
                if head.spec and isinstance(val, (int, float)) and not isinstance(val, bool):
                    val = format(val, head.spec)
                continue
            args = [_eval(op, env) for op in cmd[1:]]
            if i > 0:
                args.append(val)
            try:
                val = FUNCTIONS[head.name](*args)
            except TemplateError:
                raise
            except (TypeError, ValueError) as exc:
                raise TemplateError(f"{head.name}: {exc}") from None
        out.append(_print(val))
    return "".join(out)


def _eval(op: _Operand, env: dict[str, Any]) -> Any:
    if op.kind == "lit":
        return op.value
    if op.name == "labels":
        return env["labels"].get(op.attr or "", "")
    return env[op.name]


def location_text(labels: dict[str, str]) -> str:
    """``dc1/hall1/A/A01 node A01-n01 gpu 3``: the place path, then the device."""
    path = "/".join(labels[k] for k in ("site", "room", "row", "rack") if k in labels)
    if "rack" not in labels and "loop" in labels:
        path = "/".join([p for p in (path, "loop " + labels["loop"]) if p])
    dev = " ".join(f"{k} {labels[k]}" for k in ("pdu", "phase", "node", "gpu", "xid") if k in labels)
    return " ".join(p for p in (path, dev) if p) or "site"


def render(text: str, *, rule: str, severity: str, state: str, value: float | None, threshold: float | None,
           labels: dict[str, str]) -> str:
    """Expand a template; a failure at run time reads as Prometheus's ``<error expanding template: …>``."""
    env = {"value": value, "threshold": threshold, "rule": rule, "severity": severity, "state": state,
           "location": location_text(labels), "labels": labels}
    try:
        return _execute(parse(text), env)
    except TemplateError as exc:
        return f"<error expanding template: {exc}>"
