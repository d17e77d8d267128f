"""Table tests: every vendor profile against recorded walks (.snmprec by model), exact SI values."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcim.agents.snmp import snmprec
from dcim.agents.snmp.profile import Profile, detect_candidates, load_profiles, parse
from dcim import schema
from dcim.errors import ConfigError

WALKS = Path(__file__).with_name("snmp_walks")
PROFILES = load_profiles()


def poll_file(walk: str, profile: str) -> tuple[dict, set[str]]:
    prof = PROFILES[profile]
    w = snmprec.load_walk(WALKS / walk, prof.columns())
    res = parse(prof, w, {"site": "dc1", "rack": "A01", "pdu": "dev"}, 123)
    for r in res.records:
        assert schema.validate(r) == [], r
        assert r.time_ns == 123
    out = {}
    for r in res.records:
        key = (r.measurement, *sorted((k, v) for k, v in r.tags.items()
                                      if k not in ("site", "rack") and (k, v) != ("pdu", "dev")))
        assert key not in out, f"two records for {key}"
        out[key] = r.fields
    return out, res.unsupported


def test_every_shipped_profile_loads_and_names_schema_fields() -> None:
    assert {"apc_rpdu2", "apc_rpdu2_nps", "apc_rpdu", "raritan_pdu2", "sentry4", "eaton_epdu", "cyberpower_epdu2", "ups_mib",
            "if_mib", "liebert_flexible", "apc_cooling"} <= set(PROFILES)
    for p in PROFILES.values():
        assert p.columns(), p.name


def test_apc_rpdu2_simulated_ap8886() -> None:
    recs, unsupported = poll_file("apc_ap8886_sim.snmprec", "apc_rpdu2")
    assert unsupported == set()
    dev = recs[("pdu",)]
    assert dev == {"power_w": 15050.0, "peak_power_w": 15050.0, "energy_j": 196726 * 360000.0,
                   "apparent_power_va": 15360.0, "power_factor": 0.98, "load_state": "normal"}
    l1 = recs[("pdu_phase", ("phase", "L1"))]
    assert l1 == {"current_a": 22.3, "voltage_v": 230.0, "power_w": 5020.0, "apparent_power_va": 5120.0,
                  "power_factor": 0.98, "load_state": "normal"}
    o1 = recs[("pdu_outlet", ("outlet", "1"))]
    assert o1 == {"current_a": 5.5, "power_w": 1229.0, "energy_j": 10195 * 360000.0, "on": True}
    o5 = recs[("pdu_outlet", ("outlet", "5"))]
    assert o5["current_a"] == 0.0 and o5["power_w"] == 0.0
    assert len([k for k in recs if k[0] == "pdu_outlet"]) == 24
    assert len([k for k in recs if k[0] == "pdu_bank"]) == 3
    assert set(recs[("env", ("sensor", "inlet"))]) == {"temp_c", "humidity_pct"}


def test_apc_rpdu2_sentinels_and_missing_columns_are_omitted() -> None:
    recs, unsupported = poll_file("apc_ap8959_sentinels.snmprec", "apc_rpdu2")
    # -1 = unsupported: no field, and the health record can say which
    assert recs[("pdu",)] == {"power_w": 12340.0, "energy_j": 98765 * 360000.0, "load_state": "near_overload"}
    assert unsupported == {"pdu.peak_power_w", "pdu.apparent_power_va", "pdu_phase.voltage_v",
                           "pdu_outlet.current_a", "env.temp_c"}
    assert recs[("pdu_phase", ("phase", "L1"))] == {"current_a": 53.1, "power_w": 12340.0,
                                                     "load_state": "near_overload"}
    assert recs[("pdu_bank", ("bank", "1"))] == {"current_a": 16.5, "load_state": "overload"}
    assert recs[("pdu_bank", ("bank", "2"))] == {"current_a": 0.0, "load_state": "low"}
    # outlet 2 has only a sentinel current: no record at all; outlet 1 has no switched table (metered only)
    assert recs[("pdu_outlet", ("outlet", "1"))] == {"current_a": 1.2, "power_w": 275.0, "energy_j": 4321 * 360000.0}
    assert ("pdu_outlet", ("outlet", "2")) not in recs
    assert recs[("env", ("sensor", "Rack front"))] == {"humidity_pct": 55.0}


def test_apc_legacy_rpdu_phases_then_banks() -> None:
    recs, _ = poll_file("apc_ap7941_legacy.snmprec", "apc_rpdu")
    assert recs[("pdu",)] == {"power_w": 2450.0, "power_factor": 0.95, "apparent_power_va": 2579.0}
    assert recs[("pdu_phase", ("phase", "L1"))] == {"current_a": 10.7, "load_state": "normal"}
    assert ("pdu_phase", ("phase", "L2")) not in recs  # rows 2 and 3 are banks of phase 1
    assert recs[("pdu_bank", ("bank", "1"))] == {"current_a": 4.8, "load_state": "normal"}
    assert recs[("pdu_bank", ("bank", "2"))] == {"current_a": 5.9, "load_state": "near_overload"}


def test_raritan_pdu2_divides_by_each_rows_decimal_digits() -> None:
    recs, unsupported = poll_file("raritan_px3_sim.snmprec", "raritan_pdu2")
    assert unsupported == set()
    dev = recs[("pdu",)]
    # power digits 0 (W), power factor digits 2, energy in Wh -> J; inlet-level RMS current and voltage
    assert dev == {"power_w": 15049.0, "apparent_power_va": 15356.0, "power_factor": 0.98,
                   "energy_j": 23535538 * 3600.0, "current_a": 66.93, "voltage_v": 229.0}
    l2 = recs[("pdu_phase", ("phase", "L2"))]
    assert l2["current_a"] == 22.31  # raw 2231, inletPoleSensorDecimalDigits 2
    assert l2["load_state"] == "normal"
    o3 = recs[("pdu_outlet", ("outlet", "3"))]
    # outlet current digits 3, power digits 1, energy Wh
    assert o3 == {"current_a": 5.466, "power_w": 1229.1, "energy_j": 1039385 * 3600.0, "on": True}


def test_raritan_unavailable_sensor_and_missing_digits_are_omitted() -> None:
    prof = PROFILES["raritan_pdu2"]
    base = "1.3.6.1.4.1.13742.6"
    walk = {c: [] for c in prof.columns()}
    walk[f"{base}.5.4.3.1.4"] = [((1, 7, 1), 1234), ((1, 7, 5), 99), ((1, 7, 4), 230)]
    walk[f"{base}.5.4.3.1.2"] = [((1, 7, 1), 2), ((1, 7, 5), 1), ((1, 7, 4), 1)]  # current not available
    # voltage has no decimal-digits row: without its scale it is not reported
    walk[f"{base}.3.5.4.1.7"] = [((1, 7, 1), 3), ((1, 7, 5), 0)]
    # the sensor type fixes the unit (PDU2-MIB sensorType): the units column is not needed
    assert [(r.tags, r.fields) for r in parse(prof, walk).records] == [({"outlet": "7"}, {"power_w": 99.0})]


def test_sentry4_cords_lines_phases_outlets() -> None:
    recs, unsupported = poll_file("sentry4_pro2.snmprec", "sentry4")
    assert recs[("pdu",)] == {"power_w": 5210.0, "apparent_power_va": 5380.0, "power_factor": 0.97,
                                     "energy_j": 123456 * 360000.0}
    # a line (input conductor) and a phase (load pair, under the unit's own label) are separate circuits
    assert recs[("pdu_phase", ("phase", "L1"))] == {"current_a": 8.12}
    assert recs[("pdu_phase", ("phase", "L2"))] == {"current_a": 7.95}
    assert recs[("pdu_phase", ("circuit", "L1-N"), ("phase", "L1"))] == {
        "voltage_v": 231.2, "power_w": 1820.0, "power_factor": 0.96, "energy_j": 45678 * 360000.0}
    assert recs[("pdu_phase", ("circuit", "L2-N"), ("phase", "L2"))] == {"voltage_v": 229.8}
    # outlet energy is Wh, cord energy 0.1 kWh
    assert recs[("pdu_outlet", ("outlet", "1"))] == {"current_a": 1.25, "power_w": 281.0,
                                                      "energy_j": 98765 * 3600.0}
    assert recs[("env", ("sensor", "T1"))] == {"temp_c": 23.4}
    assert ("env", ("sensor", "T2")) not in recs  # -410: no probe
    assert {"pdu.frequency_hz", "pdu_phase.current_a", "pdu_outlet.energy_j", "env.temp_c"} <= unsupported
    # the linked unit B and the second cord are records of their own, not overwritten rows
    assert recs[("pdu", ("pdu", "dev:2"))] == {"power_w": 4100.0}
    assert recs[("pdu", ("pdu", "dev-B"))] == {"power_w": 990.0}
    assert recs[("pdu_outlet", ("outlet", "1"), ("pdu", "dev-B"))] == {"current_a": 0.5}


def test_eaton_epdu_milliamps_and_millivolts() -> None:
    recs, _ = poll_file("eaton_epdu_g3.snmprec", "eaton_epdu")
    assert recs[("pdu_outlet", ("outlet", "1"), ("pdu", "dev-1"))] == {"current_a": 0.25}  # chained unit 1
    assert recs[("pdu",)] == {"frequency_hz": 49.9}
    assert recs[("pdu_phase", ("phase", "L1"))] == {"current_a": 12.345, "load_state": "normal", "voltage_v": 230.15,
                                                     "apparent_power_va": 2841.0, "power_w": 2777.0,
                                                     "energy_j": 5000 * 3600.0}
    # the third voltage row is phase 2 to 3 (meas type 6): not a line-to-neutral voltage, left out
    assert recs[("pdu_phase", ("phase", "L2"))] == {"current_a": 9.87, "load_state": "near_overload",
                                                     "voltage_v": 229.87}
    assert ("pdu_phase", ("phase", "L3")) not in recs
    assert recs[("pdu_outlet", ("outlet", "1"))] == {"current_a": 1.5, "power_w": 340.0, "energy_j": 7200 * 3600.0}


def test_cyberpower_epdu2() -> None:
    recs, unsupported = poll_file("cyberpower_pdu81005.snmprec", "cyberpower_epdu2")
    assert recs[("pdu",)] == {"energy_j": 4567 * 360000.0}
    assert recs[("pdu_phase", ("phase", "L1"))] == {"current_a": 25.4, "voltage_v": 230.1, "power_w": 5720.0,
                                                     "load_state": "near_overload"}
    assert recs[("pdu_outlet", ("outlet", "1"))] == {"current_a": 3.1, "power_w": 702.0}
    assert unsupported == {"pdu_outlet.current_a"}


def test_ups_mib() -> None:
    recs, _ = poll_file("ups_rfc1628.snmprec", "ups_mib")
    assert recs[("ups",)] == {"battery_runtime_s": 2520.0, "battery_charge_pct": 97.0, "battery_temp_c": 27.0,
                              "on_battery": True}
    assert recs[("ups", ("phase", "L1"))] == {"input_voltage_v": 231.0, "output_voltage_v": 230.0,
                                              "output_current_a": 18.7, "output_power_w": 4200.0, "load_pct": 64.0}


def test_if_mib_counter64_and_oper_status() -> None:
    recs, _ = poll_file("switch_tor_ifmib.snmprec", "if_mib")
    e1 = recs[("netif", ("ifname", "Ethernet1/1"))]
    assert e1["rx_bytes_total"] == 18446744073709551000
    assert type(e1["rx_bytes_total"]).__name__ == "UInt"
    assert e1 == {"rx_bytes_total": 18446744073709551000, "tx_bytes_total": 123456789012345, "speed_bps": 400e9,
                  "oper_up": True, "rx_discards_total": 3, "rx_errors_total": 7, "tx_discards_total": 1,
                  "tx_errors_total": 0}
    assert recs[("netif", ("ifname", "Ethernet1/2"))]["oper_up"] is False


def test_liebert_flexible_cdu_labels_decimals_and_units() -> None:
    recs, _ = poll_file("liebert_xdu_sim.snmprec", "liebert_flexible")
    (key,) = list(recs)
    loop = recs[key]
    entries = snmprec.read((WALKS / "liebert_xdu_sim.snmprec").read_text())
    ext = "1.3.6.1.4.1.476.1.42.3.9.30.1"
    raw = {pid: snmprec.get(entries, f"{ext}.10.4.1.2.1.{pid}") for pid in range(5001, 5011)}
    assert loop["supply_temp_c"] == raw[5001] / 10
    assert loop["return_temp_c"] == raw[5002] / 10
    assert loop["flow_lpm"] == raw[5004] / 10
    assert loop["supply_pressure_kpa"] == pytest.approx(raw[5005] / 100 * 100)  # bars, 2 decimals -> kPa
    assert loop["heat_w"] == pytest.approx(raw[5008] / 100 * 1000)  # kW, 2 decimals -> W
    assert loop["leak"] is False
    assert set(loop) == set(schema.COOLANT_LOOP.fields) - {"diff_pressure_kpa"}


def test_apc_cooling_unit_scale_column() -> None:
    recs, _ = poll_file("apc_cdu_sim.snmprec", "apc_cooling")
    (loop,) = recs.values()
    entries = snmprec.read((WALKS / "apc_cdu_sim.snmprec").read_text())
    val = "1.3.6.1.4.1.318.1.1.27.1.4.1.2.1.3.1"
    assert loop["supply_temp_c"] == snmprec.get(entries, f"{val}.1") / 10
    assert loop["heat_w"] == pytest.approx(snmprec.get(entries, f"{val}.8") / 100 * 1000)
    assert loop["supply_pressure_kpa"] == float(snmprec.get(entries, f"{val}.5"))
    assert loop["leak"] is False


def _cands(sys_object_id: str) -> list[tuple[str, str]]:
    return [(c.profile.name, c.why) for c in detect_candidates(PROFILES.values(), sys_object_id)]


def test_detection_candidates_prefix_then_vendor_then_standard_mibs() -> None:
    standard = [n for n, p in PROFILES.items() if p.detect.standard]
    assert "ups_mib" in standard
    raritan = [n for n, _ in _cands("1.3.6.1.4.1.13742.6")]
    assert raritan[0] == "raritan_pdu2" and raritan[-len(standard):] == standard
    apc = [n for n, why in _cands("1.3.6.1.4.1.318.1.3.4.6") if why.startswith("sysObjectID under")]
    assert {"apc_rpdu2", "apc_rpdu", "apc_epdu"} <= set(apc)  # a tie the probes of each one's tables resolve
    # an unknown vendor: only the standard MIBs are probed
    assert [n for n, _ in _cands("1.3.6.1.4.1.99999")] == standard
    # a known vendor's unknown product: that vendor's profiles, then the standard MIBs
    other = _cands("1.3.6.1.4.1.318.9.9")
    assert other and all(why.startswith("same vendor") for n, why in other if n not in standard)


def test_profile_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntitle: x\nmib: x\nkind: pdu\ntables:\n- name: t\n  measurement: pdu\n  index: [i]\n"
                   "  columns: {v: 1.3.6.1}\n  fields: [{name: power_kw, column: v}]\n")
    with pytest.raises(ConfigError, match="power_kw"):
        from dcim.agents.snmp.profile import load_profile
        load_profile(bad)


def test_profile_yaml_round_trips_through_the_model() -> None:
    for p in PROFILES.values():
        assert Profile.model_validate(p.model_dump()).model_dump() == p.model_dump()


def test_raritan_external_sensors_by_type_with_own_digits() -> None:
    prof = PROFILES["raritan_pdu2"]
    base = "1.3.6.1.4.1.13742.6"
    walk = {c: [] for c in prof.columns()}
    walk[f"{base}.5.5.3.1.4"] = [((1, 1), 245), ((1, 2), 415), ((1, 3), 99)]
    walk[f"{base}.5.5.3.1.2"] = [((1, 1), 1), ((1, 2), 1), ((1, 3), 2)]
    walk[f"{base}.3.6.3.1.2"] = [((1, 1), 10), ((1, 2), 11), ((1, 3), 10)]
    walk[f"{base}.3.6.3.1.4"] = [((1, 1), b"Inlet temp"), ((1, 2), b"Inlet RH"), ((1, 3), b"Rear")]
    walk[f"{base}.3.6.3.1.17"] = [((1, 1), 1), ((1, 2), 1), ((1, 3), 0)]
    recs = {r.tags["sensor"]: r.fields for r in parse(prof, walk).records}
    assert recs == {"Inlet temp": {"temp_c": 24.5}, "Inlet RH": {"humidity_pct": 41.5}}


def test_apc_nps_group_members_are_pdus_of_their_own() -> None:
    recs, _ = poll_file("apc_ap8841_nps_pair.snmprec", "apc_rpdu2_nps")
    assert recs[("pdu",)] == {"power_w": 3100.0, "load_state": "normal"}
    assert recs[("pdu", ("pdu", "dev-2"))] == {"power_w": 7250.0, "load_state": "near_overload"}
    assert recs[("pdu_phase", ("phase", "L1"))] == {"current_a": 13.5}
    assert recs[("pdu_phase", ("pdu", "dev-2"), ("phase", "L1"))] == {"current_a": 31.6}
    # both members number their outlets from 1; the rows are 1 and 25 of the group
    assert recs[("pdu_outlet", ("outlet", "1"))] == {"current_a": 2.2}
    assert recs[("pdu_outlet", ("outlet", "1"), ("pdu", "dev-2"))] == {"current_a": 4.1}
    # the plain profile on the same walk merges them (why the NPS variant exists)
    plain, _ = poll_file("apc_ap8841_nps_pair.snmprec", "apc_rpdu2")
    assert len([k for k in plain if k[0] == "pdu_outlet"]) == 1
