"""Vendor profiles against real device walks (LibreNMS's recorded walks in ../shared): exact records, and
every reading LibreNMS took from the same walk reported with the same value (its impossible ones excluded)."""

from __future__ import annotations

import json
import math
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from dcim.agents.snmp import snmprec
from dcim.agents.snmp.profile import load_profiles, parse
from dcim import schema
from dcim.lineprotocol.encode import encode_record

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "librenms-snmp"
PROFILES = load_profiles()
BASE = {"site": "dc1", "rack": "A01", "pdu": "dev", "ups": "dev", "cdu": "dev", "loop": "dev"}

#: the profile each walk is read with (detection's choice; these tests pin the profile, not detection)
PROFILE_OF = {
    "generex-ups_cs141": "ups_mib", "huaweiups_ups2000": "ups_mib", "netmanplus_204": "ups_mib",
    "deltaups_rfc1628string": "ups_mib_delta", "liebert_apm": "liebert_ups", "eatonups": "eaton_ups",
    "apc_smt750x-nmc2": "apc_ups", "apc_symmetralx": "apc_ups", "cyberpower": "cyberpower_ups",
    "liebert": "liebert_pdu", "liebert_mph2rg": "liebert_pdu", "eatonpdu_2": "eaton_epdu",
    "raritan-pdu": "raritan_px1", "raritan-pdu_px2": "raritan_pdu2", "raritan-pdu_px2-temp": "raritan_pdu2",
    "raritan-pdu_px3": "raritan_pdu2", "raritan-pdu_px4": "raritan_pdu2", "sentry3": "sentry3",
    "sentry3_3phase": "sentry3", "sentry4": "sentry4", "sentry4_switched8i": "sentry4",
    "apc_inrow-dx": "apc_cooling", "apc_uniflair-sp": "apc_cooling", "apc_airfm": "apc_airfm",
}

#: LibreNMS sensor classes compared, and the factors from our SI field to LibreNMS's unit
CLASSES = {"power", "current", "voltage", "power_consumed", "temperature", "humidity", "frequency", "load",
           "runtime", "charge"}

#: (stem, LibreNMS sensor OID) -> why LibreNMS's reading is not one to compare with
EXCLUDED: dict[tuple[str, str], str] = {
    **{("generex-ups_cs141", f"1.3.6.1.2.1.33.1.4.4.1.4.{i}"):
       "upsOutputPower is a NonNegativeInteger (RFC 1628); the card answers -4 and -26 W, which LibreNMS reports"
       for i in (1, 3)},
    **{("deltaups_rfc1628string", oid):
       "this Delta card answers AC voltages in 0.1 V (2300 for 230 V mains, next to 0.1 Hz frequencies and a "
       "55.4 V battery); LibreNMS reports 2300 V"
       for oid in ("1.3.6.1.2.1.33.1.3.3.1.3.1", "1.3.6.1.2.1.33.1.4.4.1.2.1", "1.3.6.1.2.1.33.1.5.3.1.2.1")},
    **{("huaweiups_ups2000", oid):
       "UPS-MIB frequencies are 0.1 Hz (raw 500 = 50.0 Hz); LibreNMS divides by 100 and reports 5 Hz"
       for oid in ("1.3.6.1.2.1.33.1.3.3.1.2.1", "1.3.6.1.2.1.33.1.4.2.0", "1.3.6.1.2.1.33.1.5.1.0")},
    ("huaweiups_ups2000", "1.3.6.1.2.1.33.1.2.3.0"):
        "upsEstimatedMinutesRemaining answers 4294967295 (not available); LibreNMS reports a runtime of 4.29e9 min",
    **{("netmanplus_204", f"1.3.6.1.2.1.33.1.3.3.1.4.{i}"):
       "upsInputCurrent is a NonNegativeInteger; the card answers -1 (not available), LibreNMS reports -0.1 A"
       for i in (1, 2, 3)},
    ("netmanplus_204", "1.3.6.1.2.1.33.1.2.6.0"):
        "the card answers -1 for every column it does not measure (input currents included); LibreNMS reports "
        "-0.1 A battery current",
    **{("apc_inrow-dx", f"1.3.6.1.4.1.318.1.1.27.1.4.1.2.1.3.1.{row}"):
       "the walk has no such row (the unit has no probe there); LibreNMS reports 0 degC for it"
       for row in (34, 36, 40)},
}


def _corpus() -> Path:
    if not (CORPUS / "snmprec").is_dir() or not (CORPUS / "expected").is_dir():
        msg = f"real-device corpus not found at {CORPUS} (LibreNMS's walks live beside the clone in ../shared)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return CORPUS


@cache
def _parsed(stem: str) -> Any:
    prof = PROFILES[PROFILE_OF[stem]]
    entries = snmprec.read((_corpus() / "snmprec" / f"{stem}.snmprec").read_text())
    return parse(prof, snmprec.walk_columns(entries, prof.columns()), BASE, 7, sources=True)


def poll(stem: str) -> tuple[dict[tuple, dict], set[str]]:
    """Records of one walk keyed by (measurement, tags that are not the device's own), and unsupported fields."""
    res = _parsed(stem)
    out: dict[tuple, dict] = {}
    for r in res.records:
        assert schema.validate(r, allow_extra_tags=False) == [], r
        key = (r.measurement, *sorted((k, v) for k, v in r.tags.items() if BASE.get(k) != v))
        assert key not in out, f"two records for {key}"
        out[key] = r.fields
    return out, res.unsupported


# --- exact records ------------------------------------------------------------------------------


def test_ups_mib_generex_three_phase_and_a_negative_output_power_left_out() -> None:
    recs, unsupported = poll("generex-ups_cs141")
    assert recs[("ups",)] == {"on_battery_time_s": 0.0, "battery_runtime_s": 544 * 60.0, "battery_charge_pct": 100.0,
                              "battery_voltage_v": 271.6, "battery_current_a": 0.0, "battery_temp_c": 25.0,
                              "on_battery": False, "output_frequency_hz": 50.0, "bypass_frequency_hz": 50.0}
    assert recs[("ups", ("phase", "L2"))] == {"input_frequency_hz": 50.0, "input_voltage_v": 233.0,
                                              "output_voltage_v": 233.0, "output_current_a": 2.1,
                                              "output_power_w": 469.0, "load_pct": 14.0, "bypass_voltage_v": 233.0}
    # raw -4 W on L1 and -26 W on L3: outside the NonNegativeInteger range, so no field (and said so)
    assert "output_power_w" not in recs[("ups", ("phase", "L1"))]
    assert "output_power_w" not in recs[("ups", ("phase", "L3"))]
    assert unsupported == {"ups.output_power_w"}


def test_ups_mib_netman_minus_one_and_huawei_max_gauge_are_unsupported() -> None:
    recs, unsupported = poll("netmanplus_204")
    assert recs[("ups", ("phase", "L1"))] == {
        "input_frequency_hz": 50.1, "input_voltage_v": 242.0, "input_power_w": 0.0, "output_voltage_v": 231.0,
        "output_current_a": 1.1, "output_power_w": 184.0, "load_pct": 8.0, "bypass_voltage_v": 242.0,
        "bypass_current_a": 0.0, "bypass_power_w": 0.0}
    assert "battery_current_a" not in recs[("ups",)]
    assert unsupported == {"ups.battery_current_a", "ups.input_current_a"}
    recs, unsupported = poll("huaweiups_ups2000")
    assert recs[("ups",)] == {"on_battery_time_s": 0.0, "battery_charge_pct": 100.0, "battery_voltage_v": 270.7,
                              "battery_current_a": 0.4, "battery_temp_c": 21.0, "on_battery": False,
                              "output_frequency_hz": 50.0, "bypass_frequency_hz": 50.0}
    assert recs[("ups", ("phase", "L1"))]["input_frequency_hz"] == 50.0
    assert unsupported == {"ups.battery_runtime_s"}


def test_delta_mini_snmp_ac_voltages_in_tenths() -> None:
    recs, unsupported = poll("deltaups_rfc1628string")
    assert recs[("ups", ("phase", "L1"))] == {
        "input_frequency_hz": 50.0, "input_voltage_v": 236.0, "output_voltage_v": 230.0, "output_current_a": 0.0,
        "output_power_w": 122.0, "load_pct": 8.0, "bypass_voltage_v": 235.0, "bypass_current_a": 0.0,
        "bypass_power_w": 0.0}
    assert recs[("ups",)]["battery_voltage_v"] == 55.4
    assert unsupported == set()


def test_liebert_apm_ups_mib_plus_flexible_power_and_env_points() -> None:
    recs, _ = poll("liebert_apm")
    assert recs[("ups",)] == {"battery_runtime_s": 72 * 60.0, "on_battery": False, "output_frequency_hz": 49.9,
                              "bypass_frequency_hz": 49.9, "alarms_present": 0, "output_power_w": 20000.0,
                              "battery_temp_c": 22.0, "internal_temp_c": 25.0}
    assert recs[("ups", ("phase", "L2"))] == {"input_voltage_v": 229.0, "input_current_a": 40.0,
                                              "output_voltage_v": 231.0, "output_current_a": 30.0,
                                              "bypass_voltage_v": 228.0}


def test_eaton_xups() -> None:
    recs, unsupported = poll("eatonups")
    assert recs[("ups",)] == {"battery_runtime_s": 8620.0, "battery_voltage_v": 78.0, "battery_current_a": 0.0,
                              "battery_charge_pct": 100.0, "input_frequency_hz": 50.0, "load_pct": 25.0,
                              "output_frequency_hz": 50.0, "on_battery": False, "bypass_frequency_hz": 50.0,
                              "internal_temp_c": 29.0}
    assert recs[("ups", ("phase", "L3"))] == {"input_voltage_v": 231.0, "input_current_a": 5.0,
                                              "output_voltage_v": 230.0, "output_current_a": 5.0,
                                              "output_power_w": 882.0, "bypass_voltage_v": 232.0}
    assert unsupported == set()


def test_apc_smart_ups_high_precision_and_uio_probe() -> None:
    recs, unsupported = poll("apc_smt750x-nmc2")
    assert recs == {
        ("ups",): {"battery_charge_pct": 100.0, "internal_temp_c": 23.4, "battery_runtime_s": 109762.0,
                   "battery_voltage_v": 54.7, "input_voltage_v": 119.1, "input_frequency_hz": 60.0,
                   "on_battery": False, "output_voltage_v": 119.1, "output_frequency_hz": 60.0, "load_pct": 0.0,
                   "output_current_a": 0.0},
        ("env", ("sensor", "Equipment Room")): {"temp_c": 20.0},
    }
    assert unsupported == {"env.humidity_pct"}  # uioSensorStatusHumidity -1: a temperature-only probe
    recs, _ = poll("apc_symmetralx")
    assert recs[("ups",)]["output_current_a"] == 34.7
    assert recs[("ups",)]["battery_runtime_s"] == 840.0  # 84000 TimeTicks


def test_cyberpower_rmcard_ups_and_fahrenheit_probe() -> None:
    recs, unsupported = poll("cyberpower")
    assert recs[("ups",)] == {"battery_charge_pct": 100.0, "battery_temp_c": 36.0, "battery_runtime_s": 1740.0,
                              "input_voltage_v": 119.5, "input_frequency_hz": 60.0, "on_battery": False,
                              "output_voltage_v": 120.2, "output_frequency_hz": 60.0, "output_current_a": 6.5,
                              "output_power_w": 500.0}
    probe = recs[("env", ("sensor", "probe"))]
    assert probe["temp_c"] == pytest.approx((68.3 - 32) * 5 / 9)  # 683 = 68.3 degF
    assert probe["humidity_pct"] == 56.0
    assert unsupported == set()


def test_liebert_pdu_supply_line_branch_and_aux_sensors() -> None:
    recs, _ = poll("liebert")
    assert recs == {
        ("pdu",): {"power_w": 2411.0},
        ("pdu_phase", ("phase", "N")): {"current_a": 20.4},
        ("pdu_phase", ("phase", "L1")): {"voltage_v": 119.6, "current_a": 20.45},
        ("pdu_bank", ("bank", "1-1")): {"current_a": 14.28, "current_before_alarm_a": 4.71},
        ("pdu_bank", ("bank", "1-2")): {"current_a": 1.96, "current_before_alarm_a": 17.04},
        ("pdu_bank", ("bank", "1-3")): {"current_a": 4.19, "current_before_alarm_a": 14.8},
        ("env", ("sensor", "SNSR: 1-2")): {"temp_c": 17.5},
        ("env", ("sensor", "SNSR: 1-3")): {"temp_c": 20.1},
        ("env", ("sensor", "SNSR: 1-1")): {"humidity_pct": 14.2},
        ("env", ("sensor", "SNSR: 1-4")): {"humidity_pct": 17.2},
    }
    recs, _ = poll("liebert_mph2rg")
    assert recs[("pdu",)] == {"power_w": 514.0, "apparent_power_va": 551.0, "power_factor": 0.0}
    assert recs[("pdu_outlet", ("outlet", "2.15"))] == {"voltage_v": 238.0, "current_a": 1.0, "power_w": 239.0,
                                                         "apparent_power_va": 229.0, "power_factor": 0.99}
    assert len([k for k in recs if k[0] == "pdu_outlet"]) == 16


def test_raritan_px1_milliamps_millivolts_and_probe_digits() -> None:
    recs, _ = poll("raritan-pdu")
    assert recs[("pdu",)] == {"current_a": 2.971, "voltage_v": 230.0, "power_w": 580.0, "apparent_power_va": 692.0,
                              "power_factor": 0.83}
    assert recs[("pdu_phase", ("phase", "L1"))] == {"current_a": 2.971, "voltage_v": 230.5}
    assert recs[("pdu_outlet", ("outlet", "3"))] == {"current_a": 2.192, "apparent_power_va": 507.0}
    assert recs[("env", ("sensor", "AEI8850418"))] == {"humidity_pct": 39.0, "temp_c": 20.5}
    assert recs[("env", ("sensor", "processor"))] == {"temp_c": 36.0}


def test_raritan_pdu2_inlet_level_values_and_overcurrent_protectors() -> None:
    recs, _ = poll("raritan-pdu_px2")
    assert recs[("pdu",)] == {"current_a": 0.68, "voltage_v": 233.0, "power_w": 138.0, "frequency_hz": 50.0}
    recs, _ = poll("raritan-pdu_px3")
    assert recs[("pdu",)] == {"current_a": 7.467, "voltage_v": 229.0, "power_w": 1665.0, "apparent_power_va": 1751.0,
                              "power_factor": 0.98, "energy_j": 74057676 * 3600.0, "frequency_hz": 50.0}
    assert recs[("pdu_bank", ("bank", "C1"))] == {"current_a": 0.485, "load_state": "normal"}
    assert recs[("pdu_bank", ("bank", "C2"))] == {"current_a": 0.333, "load_state": "normal"}
    assert recs[("pdu_outlet", ("outlet", "1"))] == {
        "current_a": 0.633, "voltage_v": 228.0, "power_w": 143.0, "apparent_power_va": 151.0, "power_factor": 0.99,
        "energy_j": 5812658 * 3600.0, "on": True, "frequency_hz": 50.0}
    recs, _ = poll("raritan-pdu_px4")
    assert recs[("pdu_bank", ("bank", "C2"))] == {"current_a": 6.554, "load_state": "normal"}
    assert len([k for k in recs if k[0] == "pdu_outlet"]) == 36
    recs, _ = poll("raritan-pdu_px2-temp")
    assert recs[("env", ("sensor", "Relative Humidity 1"))] == {"humidity_pct": 15.0}


def test_sentry3_infeeds_towers_and_fahrenheit_probes() -> None:
    recs, _ = poll("sentry3")
    assert recs == {
        ("pdu_phase", ("phase", "AA")): {"current_a": 3.62, "voltage_v": 209.3},
        ("pdu_phase", ("pdu", "dev-B"), ("phase", "BA")): {"current_a": 5.02, "voltage_v": 205.9},
        ("env", ("sensor", "A1")): {"temp_c": 20.0, "humidity_pct": 52.0},  # 680 = 68.0 degF
        ("env", ("sensor", "A2")): {"temp_c": pytest.approx(23.611111111), "humidity_pct": 43.0},
    }
    recs, unsupported = poll("sentry3_3phase")
    assert recs[("pdu",)] == {"power_w": 279.0, "power_factor": 1.0}
    assert recs[("pdu_phase", ("phase", "AD"))] == {"current_a": 2.12}  # the neutral: no voltage, no power
    assert {"pdu_phase.voltage_v", "pdu_phase.power_w"} <= unsupported


def test_sentry4_line_and_phase_circuits_are_separate() -> None:
    recs, _ = poll("sentry4")
    # line L1 (the conductor) and the L1-L2 circuit of a delta unit never share a record
    assert recs[("pdu_phase", ("phase", "L1"))] == {"current_a": 5.6}
    assert recs[("pdu_phase", ("circuit", "L1-L2"), ("phase", "L1"))] == {"voltage_v": 207.9, "current_a": 2.09,
                                                                           "power_w": 415.0}
    assert recs[("pdu_phase", ("circuit", "L3-L1"), ("pdu", "dev-B"), ("phase", "L3"))] == {
        "voltage_v": 208.2, "current_a": 2.01, "power_w": 403.0}
    assert recs[("pdu",)] == {"power_w": 1701.0, "apparent_power_va": 1790.0, "power_factor": 0.95,
                              "energy_j": 8937 * 360000.0, "frequency_hz": 60.0}
    recs, _ = poll("sentry4_switched8i")
    assert recs[("env", ("pdu", "dev-E"), ("sensor", "H1"))] == {"humidity_pct": 37.0}
    assert recs[("pdu_phase", ("circuit", "L-L/N"), ("phase", "L1"))] == {"voltage_v": 211.7, "current_a": 4.03,
                                                                           "power_w": 806.0}


def test_apc_cooling_inrow_dx_and_uniflair_rows_by_their_own_labels() -> None:
    recs, _ = poll("apc_inrow-dx")
    assert recs[("cooling_sensor", ("sensor", "Supply Temperature"))] == {"temp_c": 19.4}
    assert recs[("cooling_sensor", ("sensor", "Cool Output"))] == {"power_w": 10800.0}
    assert recs[("cooling_sensor", ("sensor", "Humidity"))] == {"humidity_pct": 30.6}
    assert recs[("cooling_sensor", ("sensor", "Suction Pressure"))] == {"pressure_kpa": 1180.0}  # 11.8 bar, not psi
    assert recs[("cooling_sensor", ("sensor", "Condenser Fan Speed"))] == {"fan_speed_pct": 16.3}
    assert not [k for k in recs if k[0] == "coolant_loop"]  # a DX unit has no coolant loop
    recs, _ = poll("apc_uniflair-sp")
    assert recs[("cooling_sensor", ("sensor", "Condensing Temperature"))] == {"temp_c": 23.2}  # the C row, not F
    assert recs[("cooling_sensor", ("sensor", "Discharge Pressure"))] == {"pressure_kpa": 1480.0}
    assert len(recs) == 7


def test_apc_airfm_points() -> None:
    recs, _ = poll("apc_airfm")
    assert recs[("cooling_sensor", ("sensor", "M1 Supply Air"))] == {"temp_c": 14.8, "humidity_pct": 71.9}
    assert recs[("cooling_sensor", ("sensor", "M1 Blower 2"))] == {"frequency_hz": 42.8, "voltage_v": 243.7}
    assert recs[("cooling_sensor", ("sensor", "M1 Coil"))] == {"pressure_kpa": 0.122}
    assert recs[("cooling_sensor", ("sensor", "Dehumidifier Setpoint"))] == {"humidity_pct": 55.0}


# --- every LibreNMS reading -----------------------------------------------------------------------


def _librenms(stem: str) -> list[dict]:
    data = json.loads((_corpus() / "expected" / f"{stem}.json").read_text())
    return [s for s in data["sensors"] if s["class"] in CLASSES]


def _as_librenms(cls: str, field: str, value: float) -> list[float]:
    """Our SI value in the units LibreNMS may have used for this class."""
    if field.endswith("_j"):
        return [value / 3.6e6]  # kWh
    if cls == "runtime":
        return [value / 60]  # minutes
    if cls == "power":
        return [value, value / 1000]  # W, or kW where LibreNMS shows a cooling unit's kW rows as they are
    return [value]


@pytest.mark.parametrize("stem", sorted(PROFILE_OF))
def test_every_librenms_reading_is_reported_with_the_same_value(stem: str) -> None:
    by_oid = {s.oid: s for s in _parsed(stem).sources or []}
    wrong, missing = [], []
    for s in _librenms(stem):
        oid = s["oid"].lstrip(".")
        if (stem, oid) in EXCLUDED:
            continue
        got = by_oid.get(oid)
        if got is None:
            missing.append((s["class"], s["descr"], oid, s["value"]))
            continue
        ours = _as_librenms(s["class"], got.field, float(got.value))
        if not any(math.isclose(v, s["value"], rel_tol=1e-6) or abs(v - s["value"]) <= 0.005 for v in ours):
            wrong.append((s["class"], s["descr"], oid, s["value"], got.measurement, got.field, got.value))
    assert wrong == []
    assert missing == []


def test_exclusions_name_readings_that_exist() -> None:
    for (stem, oid), why in EXCLUDED.items():
        assert why
        assert oid in {s["oid"].lstrip(".") for s in _librenms(stem)}, (stem, oid)


# --- the samples in docs/snmp.md ----------------------------------------------------------------

DOC_SAMPLE = re.compile(r"^### `(\w+)` on a real device \(walk `([^`]+)`\)\n.*?```text\n(.*?)```", re.S | re.M)
DOC_DEVICE = {"pdu": "pdu-a", "ups": "ups-a", "cooling": "crac-1"}
DOC_TAG = {"pdu": "pdu", "ups": "ups", "cooling": "cdu"}


def test_docs_samples_are_what_the_profiles_report() -> None:
    samples = DOC_SAMPLE.findall((REPO / "docs" / "snmp.md").read_text())
    assert {prof for prof, _, _ in samples} >= set(PROFILE_OF.values())
    for prof, stem, block in samples:
        p = PROFILES[prof]
        entries = snmprec.read((_corpus() / "snmprec" / f"{stem}.snmprec").read_text())
        base = {"site": "dc1", "rack": "A01", DOC_TAG[p.kind]: DOC_DEVICE[p.kind]}
        res = parse(p, snmprec.walk_columns(entries, p.columns()), base, 1_700_000_000_000_000_000)
        out = {encode_record(r) for r in res.records}
        for line in block.strip().splitlines():
            assert line in out, (prof, stem, line)


# --- quirks without the corpus (synthetic walks, run everywhere) ----------------------------------


def _walk(profile: str, rows: dict[str, list]) -> dict[str, list]:
    walk = {c: [] for c in PROFILES[profile].columns()}
    walk.update(rows)
    return walk


@pytest.mark.parametrize(("scale", "want"), [(None, 23.4), (0, 23.4), (1, pytest.approx((74.1 - 32) * 5 / 9))])
def test_sentry4_temperature_follows_the_unit_wide_scale(scale: int | None, want: float) -> None:
    rows = {"1.3.6.1.4.1.1718.4.1.9.3.1.1": [((1, 1), 234 if scale != 1 else 741), ((1, 2), -410)],
            "1.3.6.1.4.1.1718.4.1.9.1.10": [] if scale is None else [((0,), scale)]}
    res = parse(PROFILES["sentry4"], _walk("sentry4", rows), {"pdu": "p"})
    assert [(r.tags, r.fields) for r in res.records] == [({"pdu": "p", "sensor": "T1"}, {"temp_c": want})]
    assert res.unsupported == {"env.temp_c"}  # -410: no probe on the second port


def test_ups_mib_sentinels_and_out_of_range_values_are_unsupported() -> None:
    b = "1.3.6.1.2.1.33.1"
    rows = {f"{b}.2.3": [((0,), 4294967295)], f"{b}.2.4": [((0,), 101)], f"{b}.2.6": [((0,), -12)],
            f"{b}.2.7": [((0,), -5)], f"{b}.4.4.1.4": [((1,), -4), ((2,), 2147483647), ((3,), 800)],
            f"{b}.3.3.1.4": [((1,), -1)], f"{b}.6.1": [((0,), 2)]}
    res = parse(PROFILES["ups_mib"], _walk("ups_mib", rows), {"ups": "u"})
    recs = {r.tags.get("phase"): r.fields for r in res.records}
    # a charging battery (-1.2 A) and a cold one (-5 degC) are real readings; 101 % and 2^32-1 min are not
    assert recs[None] == {"battery_current_a": -1.2, "battery_temp_c": -5.0, "alarms_present": 2}
    assert recs["L3"] == {"output_power_w": 800.0}
    assert set(recs) == {None, "L3"}
    assert res.unsupported == {"ups.battery_runtime_s", "ups.battery_charge_pct", "ups.output_power_w",
                               "ups.input_current_a"}


@pytest.mark.parametrize(("extra", "message"), [
    ("  tag_extract: {nope: '(.*)'}\n", "unknown column 'nope'"),
    ("  tag_extract: {v: '[^:]*:.*'}\n", "exactly one group"),
    ("  tag_extract: {v: '(unclosed'}\n", "bad regex"),
])
def test_tag_extract_errors_name_the_problem(tmp_path: Path, extra: str, message: str) -> None:
    from dcim.agents.snmp.profile import load_profile
    from dcim.errors import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntitle: x\nmib: x\nkind: pdu\ntables:\n- name: t\n  measurement: pdu_bank\n  index: [i]\n"
                   "  tags: {bank: '{v}'}\n  columns: {v: 1.3.6.1.2, c: 1.3.6.1.3}\n"
                   "  fields: [{name: current_a, column: c}]\n" + extra)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_profile(bad)


def test_tag_extract_keeps_a_label_that_does_not_match() -> None:
    rows = {"1.3.6.1.4.1.1718.4.1.5.2.1.4": [((1, 1, 1), b"AA:L1-N"), ((1, 1, 2), b"L2-N")],
            "1.3.6.1.4.1.1718.4.1.5.3.1.3": [((1, 1, 1), 2300), ((1, 1, 2), 2310)]}
    res = parse(PROFILES["sentry4"], _walk("sentry4", rows), {"pdu": "p"})
    assert sorted((r.tags["circuit"], r.fields["voltage_v"]) for r in res.records) == [("L1-N", 230.0),
                                                                                        ("L2-N", 231.0)]
