"""Acceptance on real devices: every walk of LibreNMS's corpus, served by snmpsim and polled with
profile auto, is detected and read right (0 wrong values, >= 95 % of LibreNMS's readings)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.agents import librenms_corpus as corpus

pytestmark = pytest.mark.integration

MIN_COVERAGE_PCT = 95.0


@pytest.fixture(scope="module")
def results(snmpsim_factory) -> list[corpus.DeviceResult]:
    corpus.require_corpus()
    sim = snmpsim_factory(data_dir=corpus.CORPUS / "snmprec")
    return corpus.run(port=sim.port)


def test_every_device_is_detected_and_read(results) -> None:
    refused = {r.stem: r.error for r in results if not r.detected}
    assert not refused, refused
    assert len(results) == len(corpus.stems())
    # detection finds the profile a person would configure, or a richer one
    devices = json.loads((corpus.CORPUS / "devices.json").read_text())["devices"]
    configured = {d["stem"]: d["expected_profile"] for d in devices if d.get("expected_profile")}
    got = {r.stem: r.profile for r in results}
    richer = {"apc_cooling": {"apc_airfm"}, "ups_mib": {"liebert_ups", "ups_mib_delta"}}
    for stem, want in configured.items():
        assert got[stem] == want or got[stem] in richer.get(want, ()), (stem, got[stem], want)


def test_no_wrong_values(results) -> None:
    wrong = [f"{r.stem}: {x.cls} {x.descr!r} {x.oid}: LibreNMS {x.expected}, ours {x.got} ({x.ours})"
             for r in results for x in r.wrong]
    assert wrong == []


def test_coverage_of_librenms_readings(results) -> None:
    t = corpus.totals(results)
    assert t["readings"] > 800  # the whole corpus was compared, not a part of it
    assert t["coverage_pct"] >= MIN_COVERAGE_PCT, corpus.misses(results)


def test_excluded_librenms_values_are_real_and_what_we_report_instead_is_checked(results) -> None:
    by_key = {(r.stem, x.oid): x for r in results for x in r.readings}
    for key, ex in corpus.EXCLUDED.items():
        assert ex.reason, key
        assert key in by_key, f"exclusion of a reading LibreNMS does not have: {key}"
        x = by_key[key]
        if ex.ours is None:
            assert x.got is None, (key, x.got, x.ours)
        else:
            assert x.got is not None and math.isclose(x.got, ex.ours, abs_tol=corpus.TOLERANCE), (key, x.got)


def test_omitted_sentinels_are_listed_as_unsupported(results) -> None:
    # e.g. a UPS-MIB card answering 2^32-1 for runtime: no value, and the health record says so
    huawei = next(r for r in results if r.stem == "huaweiups_ups2000")
    assert "ups.battery_runtime_s" in huawei.unsupported


def test_docs_table_is_this_run(results) -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "snmp.md"
    assert corpus.docs_block(doc) == corpus.docs_markdown(results).strip(), (
        "run: python -m tests.agents.librenms_corpus --write-docs docs/snmp.md")
