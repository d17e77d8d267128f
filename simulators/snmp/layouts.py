"""Vendor MIB layouts of the simulated devices: a PduState / LoopState as the OIDs a real unit serves.

Each layout returns ``[(oid, tag, value)]`` with snmprec type tags (2 INTEGER, 4 OCTET STRING,
6 OID, 65 Counter32, 66 Gauge32, 67 TimeTicks, 70 Counter64). Values are the vendor's fixed-point
integers computed from the SI state, so a poller that scales correctly gets the state back.
"""

from __future__ import annotations

from collections.abc import Callable

from dcim.simulators.state import LoopState, PduState

Row = tuple[str, int, object]

INTEGER, OCTETS, OID, COUNTER32, GAUGE32, TIMETICKS, COUNTER64 = 2, 4, 6, 65, 66, 67, 70

SYS_OBJECT_ID = {
    "apc": "1.3.6.1.4.1.318.1.3.4.6",          # APC masterSwitchrPDU2 family
    "raritan": "1.3.6.1.4.1.13742.6",          # Raritan PX2/PX3 (PDU2-MIB registration)
    "liebert": "1.3.6.1.4.1.476.1.42.4.3.29",  # Liebert/Vertiv XDU family (lgpIcomPAtypeXDU branch)
    "apc_cooling": "1.3.6.1.4.1.318.1.3.14.12",  # APC cooling unit (InRow / CDU family)
}

J_PER_KWH = 3.6e6


def _system(descr: str, object_id: str, name: str, uptime_cs: int = 0) -> list[Row]:
    return [
        ("1.3.6.1.2.1.1.1.0", OCTETS, descr),
        ("1.3.6.1.2.1.1.2.0", OID, object_id),
        ("1.3.6.1.2.1.1.3.0", TIMETICKS, uptime_cs),
        ("1.3.6.1.2.1.1.5.0", OCTETS, name),
    ]


#: (low, near overload, overload) as fractions of the breaker rating; the hall's Params defaults,
#: so the state a simulated PDU reports matches the hall's own pdu_phase.load_state
THRESHOLDS = (0.05, 0.8, 0.95)


def load_state(current_a: float, rating_a: float, thresholds: tuple[float, float, float] = THRESHOLDS) -> int:
    """APC-style load state code: 1 low, 2 normal, 3 near overload, 4 overload."""
    low, near, over = thresholds
    frac = current_a / rating_a if rating_a > 0 else 0.0
    if frac >= over:
        return 4
    if frac >= near:
        return 3
    if frac < low:
        return 1
    return 2


def apc_rpdu2(pdu: PduState, uptime_cs: int = 0, thresholds: tuple[float, float, float] = THRESHOLDS) -> list[Row]:
    """PowerNet-MIB rPDU2: 0.01 kW, 0.1 A, 0.1 kWh, whole volts, 0.01 power factor, 0.1 degC."""
    base = "1.3.6.1.4.1.318.1.1.26"
    rows = _system(f"APC Web/SNMP Management Card (sim) {pdu.rack}/{pdu.name}", SYS_OBJECT_ID["apc"],
                   f"{pdu.rack}-{pdu.name}", uptime_cs)
    pf = pdu.power_w / pdu.apparent_power_va if pdu.apparent_power_va > 0 else pdu.power_factor
    worst = max((load_state(ph.current_a, ph.breaker_a, thresholds) for ph in pdu.phases), default=2)
    dev = f"{base}.4.3.1"
    rows += [
        (f"{dev}.1.1", INTEGER, 1),
        (f"{dev}.2.1", INTEGER, 1),
        (f"{dev}.3.1", OCTETS, pdu.name),
        (f"{dev}.4.1", INTEGER, worst),
        (f"{dev}.5.1", INTEGER, round(pdu.power_w / 10)),
        (f"{dev}.6.1", INTEGER, round(pdu.peak_power_w / 10)),
        (f"{dev}.9.1", INTEGER, round(pdu.energy_j / J_PER_KWH * 10)),
        (f"{dev}.16.1", INTEGER, round(pdu.apparent_power_va / 10)),
        (f"{dev}.17.1", INTEGER, round(pf * 100)),
    ]
    ph_t = f"{base}.6.3.1"
    bank_t = f"{base}.8.3.1"
    for i, ph in enumerate(pdu.phases, start=1):
        ppf = ph.power_w / ph.apparent_power_va if ph.apparent_power_va > 0 else pdu.power_factor
        rows += [
            (f"{ph_t}.1.{i}", INTEGER, i),
            (f"{ph_t}.2.{i}", INTEGER, 1),
            (f"{ph_t}.3.{i}", INTEGER, i),
            (f"{ph_t}.4.{i}", INTEGER, load_state(ph.current_a, ph.breaker_a, thresholds)),
            (f"{ph_t}.5.{i}", INTEGER, round(ph.current_a * 10)),
            (f"{ph_t}.6.{i}", INTEGER, round(ph.voltage_v)),
            (f"{ph_t}.7.{i}", INTEGER, round(ph.power_w / 10)),
            (f"{ph_t}.8.{i}", INTEGER, round(ph.apparent_power_va / 10)),
            (f"{ph_t}.9.{i}", INTEGER, round(ppf * 100)),
            # one breaker bank per phase: the bank carries the phase's outlets
            (f"{bank_t}.1.{i}", INTEGER, i),
            (f"{bank_t}.2.{i}", INTEGER, 1),
            (f"{bank_t}.3.{i}", INTEGER, i),
            (f"{bank_t}.4.{i}", INTEGER, load_state(ph.current_a, ph.breaker_a, thresholds)),
            (f"{bank_t}.5.{i}", INTEGER, round(ph.current_a * 10)),
        ]
    met = f"{base}.9.4.3.1"
    sw = f"{base}.9.2.3.1"
    for o in pdu.outlets:
        n = o.number
        rows += [
            (f"{sw}.1.{n}", INTEGER, n),
            (f"{sw}.3.{n}", OCTETS, f"Outlet {n}"),
            (f"{sw}.4.{n}", INTEGER, n),
            (f"{sw}.5.{n}", INTEGER, 2 if o.on else 1),
            (f"{met}.1.{n}", INTEGER, n),
            (f"{met}.3.{n}", OCTETS, f"Outlet {n}"),
            (f"{met}.4.{n}", INTEGER, n),
            (f"{met}.6.{n}", INTEGER, round(o.current_a * 10)),
            (f"{met}.7.{n}", INTEGER, round(o.power_w)),
            (f"{met}.11.{n}", INTEGER, round(o.energy_j / J_PER_KWH * 10)),
        ]
    env = f"{base}.10.2.2.1"
    rows += [
        (f"{env}.1.1", INTEGER, 1),
        (f"{env}.3.1", OCTETS, "inlet"),
        (f"{env}.7.1", INTEGER, round((pdu.temp_c * 9 / 5 + 32) * 10)),
        (f"{env}.8.1", INTEGER, round(pdu.temp_c * 10)),
        (f"{env}.10.1", INTEGER, round(pdu.humidity_pct)),
    ]
    return rows


# Raritan sensor types (PDU2-MIB SensorTypeEnumeration) and units (SensorUnitsEnumeration)
RMS_CURRENT, RMS_VOLTAGE, ACTIVE_POWER, APPARENT_POWER, POWER_FACTOR, ACTIVE_ENERGY, ON_OFF = 1, 4, 5, 6, 7, 8, 14
U_NONE, U_VOLT, U_AMP, U_WATT, U_VA, U_WH = -1, 1, 2, 3, 4, 5

#: decimal digits the simulated PX3 reports, per sensor and place (real units vary per model)
RARITAN_DIGITS = {
    "inlet": {RMS_CURRENT: 2, RMS_VOLTAGE: 0, ACTIVE_POWER: 0, APPARENT_POWER: 0, POWER_FACTOR: 2, ACTIVE_ENERGY: 0},
    "pole": {RMS_CURRENT: 2, RMS_VOLTAGE: 1, ACTIVE_POWER: 0, APPARENT_POWER: 0, POWER_FACTOR: 2, ACTIVE_ENERGY: 0},
    "outlet": {RMS_CURRENT: 3, ACTIVE_POWER: 1, ACTIVE_ENERGY: 0, ON_OFF: 0},
}
RARITAN_UNITS = {RMS_CURRENT: U_AMP, RMS_VOLTAGE: U_VOLT, ACTIVE_POWER: U_WATT, APPARENT_POWER: U_VA,
                 POWER_FACTOR: U_NONE, ACTIVE_ENERGY: U_WH, ON_OFF: U_NONE}


def raritan_state(current_a: float, rating_a: float, thresholds: tuple[float, float, float] = THRESHOLDS) -> int:
    """PDU2-MIB SensorStateEnumeration: belowLowerWarning(3), normal(4), aboveUpperWarning(5), aboveUpperCritical(6)."""
    code = load_state(current_a, rating_a, thresholds)
    return {1: 3, 2: 4, 3: 5, 4: 6}[code]


def raritan_pdu2(pdu: PduState, uptime_cs: int = 0, thresholds: tuple[float, float, float] = THRESHOLDS) -> list[Row]:
    """PDU2-MIB: every value an unsigned integer scaled by its own decimal-digits column."""
    rows = _system(f"Raritan PX3 (sim) {pdu.rack}/{pdu.name}", SYS_OBJECT_ID["raritan"],
                   f"{pdu.rack}-{pdu.name}", uptime_cs)
    cfg_inlet, meas_inlet = "1.3.6.1.4.1.13742.6.3.3.4.1", "1.3.6.1.4.1.13742.6.5.2.3.1"
    cfg_pole, meas_pole = "1.3.6.1.4.1.13742.6.3.3.6.1", "1.3.6.1.4.1.13742.6.5.2.4.1"
    cfg_out, meas_out = "1.3.6.1.4.1.13742.6.3.5.4.1", "1.3.6.1.4.1.13742.6.5.4.3.1"

    def sensor(cfg: str, meas: str, place: str, idx: str, stype: int, value: float,
               state: int = 4) -> list[Row]:
        d = RARITAN_DIGITS[place][stype]
        return [
            (f"{cfg}.6.{idx}.{stype}", INTEGER, RARITAN_UNITS[stype]),
            (f"{cfg}.7.{idx}.{stype}", GAUGE32, d),
            (f"{meas}.2.{idx}.{stype}", INTEGER, 1),  # IsAvailable: true(1)
            (f"{meas}.3.{idx}.{stype}", INTEGER, state),
            (f"{meas}.4.{idx}.{stype}", GAUGE32, max(0, round(value * 10**d))),
        ]

    pf = pdu.power_w / pdu.apparent_power_va if pdu.apparent_power_va > 0 else pdu.power_factor
    total_a = sum(ph.current_a for ph in pdu.phases)
    mean_v = sum(ph.voltage_v for ph in pdu.phases) / max(1, len(pdu.phases))
    for stype, value in ((RMS_CURRENT, total_a), (RMS_VOLTAGE, mean_v), (ACTIVE_POWER, pdu.power_w),
                         (APPARENT_POWER, pdu.apparent_power_va), (POWER_FACTOR, pf),
                         (ACTIVE_ENERGY, pdu.energy_j / 3600.0)):
        rows += sensor(cfg_inlet, meas_inlet, "inlet", "1.1", stype, value)
    for p, ph in enumerate(pdu.phases, start=1):
        ppf = ph.power_w / ph.apparent_power_va if ph.apparent_power_va > 0 else pdu.power_factor
        state = raritan_state(ph.current_a, ph.breaker_a, thresholds)
        for stype, value in ((RMS_CURRENT, ph.current_a), (RMS_VOLTAGE, ph.voltage_v),
                             (ACTIVE_POWER, ph.power_w), (APPARENT_POWER, ph.apparent_power_va),
                             (POWER_FACTOR, ppf), (ACTIVE_ENERGY, ph.energy_j / 3600.0)):
            rows += sensor(cfg_pole, meas_pole, "pole", f"1.1.{p}", stype, value,
                           state if stype == RMS_CURRENT else 4)
    for o in pdu.outlets:
        idx = f"1.{o.number}"
        rows += sensor(cfg_out, meas_out, "outlet", idx, RMS_CURRENT, o.current_a)
        rows += sensor(cfg_out, meas_out, "outlet", idx, ACTIVE_POWER, o.power_w)
        rows += sensor(cfg_out, meas_out, "outlet", idx, ACTIVE_ENERGY, o.energy_j / 3600.0)
        on_rows = sensor(cfg_out, meas_out, "outlet", idx, ON_OFF, 1 if o.on else 0, 7 if o.on else 8)
        rows += on_rows
    return rows


# Liebert lgpFlexible unit codes (LIEBERT-GP-FLEXIBLE-MIB lgpFlexibleEntryUnitsOfMeasureEnum)
L_NONE, L_DEGC, L_BARS, L_LPM, L_PERCENT, L_KW = 0, 4125, 4141, 4158, 4124, 4115

#: (point id, label, unit, decimal position, attribute of LoopState or a function of it)
LIEBERT_POINTS: list[tuple[int, str, int, int, Callable[[LoopState], float]]] = [
    (5001, "Supply Fluid Temperature", L_DEGC, 1, lambda s: s.supply_temp_c),
    (5002, "Return Fluid Temperature", L_DEGC, 1, lambda s: s.return_temp_c),
    (5003, "Supply Fluid Temperature Set Point", L_DEGC, 1, lambda s: s.setpoint_c),
    (5004, "Fluid Flow Rate", L_LPM, 1, lambda s: s.flow_lpm),
    (5005, "Supply Fluid Pressure", L_BARS, 2, lambda s: s.supply_pressure_kpa / 100.0),
    (5006, "Return Fluid Pressure", L_BARS, 2, lambda s: s.return_pressure_kpa / 100.0),
    (5007, "Pump Speed", L_PERCENT, 1, lambda s: s.pump_speed_pct),
    (5008, "Heat Load", L_KW, 2, lambda s: s.heat_w / 1000.0),
    (5009, "Facility Supply Fluid Temperature", L_DEGC, 1, lambda s: s.facility_supply_temp_c),
    (5010, "Leak Detected", L_NONE, 0, lambda s: 1.0 if s.leak else 0.0),
]


def liebert_flexible(loop: LoopState, uptime_cs: int = 0) -> list[Row]:
    """LIEBERT-GP-FLEXIBLE-MIB: label + string value (basic table), integer + decimal position + unit enum."""
    rows = _system(f"Liebert XDU (sim) {loop.cdu}", SYS_OBJECT_ID["liebert"], loop.cdu, uptime_cs)
    basic, ext = "1.3.6.1.4.1.476.1.42.3.9.20.1", "1.3.6.1.4.1.476.1.42.3.9.30.1"
    for point, label, unit, dec, get in LIEBERT_POINTS:
        idx = f"4.1.2.1.{point}"  # an OID index, length-prefixed (not IMPLIED)
        value = get(loop)
        raw = round(value * 10**dec)
        rows += [
            (f"{basic}.10.{idx}", OCTETS, label),
            (f"{basic}.20.{idx}", OCTETS, f"{raw / 10**dec:.{dec}f}"),
            (f"{ext}.10.{idx}", INTEGER, raw),
            (f"{ext}.30.{idx}", GAUGE32, dec),
            (f"{ext}.60.{idx}", INTEGER, unit),
        ]
    return rows


#: (description, units text, scale, value getter) of coolingUnitStatusAnalogTable rows
APC_ANALOG: list[tuple[str, str, int, Callable[[LoopState], float]]] = [
    ("Supply Fluid Temperature", "C", 10, lambda s: s.supply_temp_c),
    ("Return Fluid Temperature", "C", 10, lambda s: s.return_temp_c),
    ("Supply Temperature Setpoint", "C", 10, lambda s: s.setpoint_c),
    ("Fluid Flow", "L/min", 10, lambda s: s.flow_lpm),
    ("Supply Pressure", "kPa", 1, lambda s: s.supply_pressure_kpa),
    ("Return Pressure", "kPa", 1, lambda s: s.return_pressure_kpa),
    ("Pump Speed", "%", 1, lambda s: s.pump_speed_pct),
    ("Cooling Output", "kW", 100, lambda s: s.heat_w / 1000.0),
    ("Facility Supply Temperature", "C", 10, lambda s: s.facility_supply_temp_c),
]


def apc_cooling(loop: LoopState, uptime_cs: int = 0) -> list[Row]:
    """PowerNet-MIB coolingUnit: self-describing rows (description, value, units text, scale divisor)."""
    rows = _system(f"APC Cooling Unit (sim) {loop.cdu}", SYS_OBJECT_ID["apc_cooling"], loop.cdu, uptime_cs)
    analog, discrete = "1.3.6.1.4.1.318.1.1.27.1.4.1.2.1", "1.3.6.1.4.1.318.1.1.27.1.4.2.2.1"
    for i, (descr, units, scale, get) in enumerate(APC_ANALOG, start=1):
        rows += [
            (f"{analog}.1.1.{i}", INTEGER, 1),
            (f"{analog}.2.1.{i}", OCTETS, descr),
            (f"{analog}.3.1.{i}", INTEGER, round(get(loop) * scale)),
            (f"{analog}.4.1.{i}", OCTETS, units),
            (f"{analog}.5.1.{i}", INTEGER, scale),
        ]
    rows += [
        (f"{discrete}.2.1.1", OCTETS, "Leak Detected"),
        (f"{discrete}.3.1.1", OCTETS, "Yes" if loop.leak else "No"),
        (f"{discrete}.4.1.1", INTEGER, 1 if loop.leak else 0),
    ]
    return rows


PDU_LAYOUTS: dict[str, Callable[..., list[Row]]] = {"apc": apc_rpdu2, "raritan": raritan_pdu2}
LOOP_LAYOUTS: dict[str, Callable[[LoopState, int], list[Row]]] = {"liebert": liebert_flexible, "apc": apc_cooling}
