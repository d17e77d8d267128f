"""Docs and code cite public sources (MIB, nvml.h, vendor and project docs), never a path of one machine."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Build outputs, environments and caches; everything else in the checkout is read.
SKIP_DIRS = {".git", ".hypothesis", ".pytest_cache", ".ruff_cache", ".mypy_cache", "__pycache__", "build",
             "dist", "out", "var", "node_modules"}
SKIP_SUFFIXES = {".png", ".jpg", ".gz", ".pyc", ".whl"}

# What a citation must not be. The real-device data beside the clone (../shared/librenms-snmp,
# ../shared/lp-cases) is test input, not a citation, so those two folders may be named.
FORBIDDEN = {
    "a development machine's notes folder": re.compile(r"shared/reference"),
    "a file beside the clone other than the test data": re.compile(
        r"\.\./shared/(?!(?:librenms-snmp|lp-cases)\b)[\w.-]*"),
    "a section of a notes file (cite the public source it stands for)": re.compile(
        r"(?<![\w/.-])(?:pdu|gpu|pipeline|style|alerts)\.md\s*§"),
    "a path on a development machine": re.compile(r"(?<![\w.-])(?:/work/|/home/[\w.-]+/|/root/|/Users/[\w.-]+/)"),
}


def _files() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.startswith(".venv") or part.endswith(".egg-info")
               or part.startswith("dcim-demo-") for part in rel.parts):
            continue
        if path.is_file() and path.suffix not in SKIP_SUFFIXES and path != Path(__file__).resolve():
            yield path


def test_no_citation_of_a_machine_path_or_private_notes() -> None:
    found = []
    read = 0
    for path in _files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        read += 1
        for lineno, line in enumerate(text.splitlines(), 1):
            for why, pattern in FORBIDDEN.items():
                m = pattern.search(line)
                if m:
                    found.append(f"{path.relative_to(ROOT)}:{lineno}: {m.group(0)!r} is {why}")
    assert read > 200, f"read only {read} files"  # the walk itself found the checkout
    assert not found, "\n".join(found)


def test_the_patterns_catch_what_they_are_for() -> None:
    bad = ["see ../shared/reference/pdu.md", "(pdu.md §4.4)", "reference alerts.md §7.3", "/work/main/docs",
           "/home/alice/notes.txt", "../shared/DESIGN.md"]
    good = ["../shared/librenms-snmp", "`../shared/lp-cases`", "docs/alerts.md", "/tmp/soak", "nvml.h",
            "beside the clone in ../shared)", "lives in `../shared` and"]
    for text in bad:
        assert any(p.search(text) for p in FORBIDDEN.values()), text
    for text in good:
        assert not any(p.search(text) for p in FORBIDDEN.values()), text
