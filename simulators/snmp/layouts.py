"""Vendor MIB layouts of the simulated devices: a PduState / LoopState as the OIDs a real unit serves.

Each layout returns ``[(oid, tag, value)]`` with snmprec type tags (2 INTEGER, 4 OCTET STRING,
6 OID, 65 Counter32, 66 Gauge32, 67 TimeTicks, 70 Counter64). Values are the vendor's fixed-point
integers computed from the SI state, so a poller that scales correctly gets the state back.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from dcim.errors import ConfigError
from dcim.simulators.state import LoopState, PduState, PhaseState
from dcim.vendors import pdu_vendor

Row = tuple[str, int, object]

INTEGER, OCTETS, OID, COUNTER32, GAUGE32, TIMETICKS, COUNTER64 = 2, 4, 6, 65, 66, 67, 70

SYS_OBJECT_ID = {
    "apc": "1.3.6.1.4.1.318.1.3.4.6",          # APC masterSwitchrPDU2 family
    "raritan": "1.3.6.1.4.1.13742.6",          # Raritan PX2/PX3 (PDU2-MIB registration)
    "servertech": "1.3.6.1.4.1.1718.4",        # ServerTech Sentry4 (what PRO1/PRO2 units report)
    "eaton": "1.3.6.1.4.1.534.6.6.7",          # Eaton ePDU G3/G4 (EATON-EPDU-MIB root)
    "cyberpower": "1.3.6.1.4.1.3808.1.1.6",    # CyberPower ePDU2 branch of CPS-MIB
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


def _power_factor(power_w: float, apparent_power_va: float, unloaded: float) -> float:
    """Real over apparent power, as a meter computes it; ``unloaded`` (the configured one) at no load."""
    return power_w / apparent_power_va if apparent_power_va > 0 else unloaded


def apc_rpdu2(pdu: PduState, uptime_cs: int = 0, thresholds: tuple[float, float, float] = THRESHOLDS) -> list[Row]:
    """PowerNet-MIB rPDU2: 0.01 kW, 0.1 A, 0.1 kWh, whole volts, 0.01 power factor, 0.1 degC."""
    base = "1.3.6.1.4.1.318.1.1.26"
    rows = _system(f"APC Web/SNMP Management Card (sim) {pdu.rack}/{pdu.name}", SYS_OBJECT_ID["apc"],
                   f"{pdu.rack}-{pdu.name}", uptime_cs)
    pf = _power_factor(pdu.power_w, pdu.apparent_power_va, pdu.power_factor)
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
        ppf = _power_factor(ph.power_w, ph.apparent_power_va, pdu.power_factor)
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

    pf = _power_factor(pdu.power_w, pdu.apparent_power_va, pdu.power_factor)
    total_a = sum(ph.current_a for ph in pdu.phases)
    mean_v = sum(ph.voltage_v for ph in pdu.phases) / max(1, len(pdu.phases))
    for stype, value in ((RMS_CURRENT, total_a), (RMS_VOLTAGE, mean_v), (ACTIVE_POWER, pdu.power_w),
                         (APPARENT_POWER, pdu.apparent_power_va), (POWER_FACTOR, pf),
                         (ACTIVE_ENERGY, pdu.energy_j / 3600.0)):
        rows += sensor(cfg_inlet, meas_inlet, "inlet", "1.1", stype, value)
    for p, ph in enumerate(pdu.phases, start=1):
        ppf = _power_factor(ph.power_w, ph.apparent_power_va, pdu.power_factor)
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


def _phase_of(pdu: PduState, name: str) -> PhaseState | None:
    return next((ph for ph in pdu.phases if ph.phase == name), None)


#: Sentry4-MIB DeviceState: on(1) off(2), the st4*State column of every monitor table
ST4_ON, ST4_OFF = 1, 2


def sentry4(pdu: PduState, uptime_cs: int = 0, thresholds: tuple[float, float, float] = THRESHOLDS) -> list[Row]:
    """Sentry4-MIB (ServerTech PRO1/PRO2, 1.3.6.1.4.1.1718.4): one unit (A) with one input cord (AA).

    Currents 0.01 A, voltages 0.1 V, power W and VA, power factor 0.01, energy 0.1 kWh for the cord
    and its phases but Wh for outlets, temperature 0.1 degC (st4TempSensorScale celsius(0)),
    humidity %RH. Rows are indexed unit.cord[.line|.phase|.branch|.outlet] and labelled as real
    units label them ("AA:L1", "AA:L1-N" on a wye unit, "AA:L-L/N" single-phase, "AA:L1-N-BR1").
    Status columns (st4*Status) are not served: their thresholds live in the unit, not the hall.
    """
    st4 = "1.3.6.1.4.1.1718.4.1"
    rows = _system(f"Sentry Smart PDU (sim) {pdu.rack}/{pdu.name}", SYS_OBJECT_ID["servertech"],
                   f"{pdu.rack}-{pdu.name}", uptime_cs)
    cord = "1.1"
    rating_a = max((ph.breaker_a for ph in pdu.phases), default=0.0)
    capacity_va = sum(ph.voltage_v * ph.breaker_a for ph in pdu.phases)
    pf = _power_factor(pdu.power_w, pdu.apparent_power_va, pdu.power_factor)
    rows += [
        (f"{st4}.2.2.1.5.1", OCTETS, pdu_vendor("servertech").model),          # st4UnitModel
        (f"{st4}.3.2.1.2.{cord}", OCTETS, "AA"),                                # st4InputCordID
        (f"{st4}.3.2.1.3.{cord}", OCTETS, "Master_Cord_A"),                     # st4InputCordName
        (f"{st4}.3.2.1.10.{cord}", INTEGER, round(rating_a)),                   # ...CurrentCapacity, A
        (f"{st4}.3.2.1.12.{cord}", INTEGER, round(capacity_va)),                # ...PowerCapacity, VA
        (f"{st4}.3.3.1.1.{cord}", INTEGER, ST4_ON),                             # st4InputCordState
        (f"{st4}.3.3.1.3.{cord}", INTEGER, round(pdu.power_w)),                 # ...ActivePower, W
        (f"{st4}.3.3.1.5.{cord}", INTEGER, round(pdu.apparent_power_va)),       # ...ApparentPower, VA
        # ...PowerUtilized, 0.1 % of the cord's power capacity (truncated, as the real unit does)
        (f"{st4}.3.3.1.7.{cord}", INTEGER,
         int(pdu.apparent_power_va / capacity_va * 1000) if capacity_va > 0 else 0),
        (f"{st4}.3.3.1.8.{cord}", INTEGER, round(pf * 100)),                    # ...PowerFactor, 0.01
        (f"{st4}.3.3.1.10.{cord}", INTEGER, round(pdu.energy_j / J_PER_KWH * 10)),  # ...Energy, 0.1 kWh
    ]
    single = len(pdu.phases) == 1
    for i, ph in enumerate(pdu.phases, start=1):
        idx = f"{cord}.{i}"
        phase_label = "AA:L-L/N" if single else f"AA:L{i}-N"
        ppf = _power_factor(ph.power_w, ph.apparent_power_va, pdu.power_factor)
        rows += [
            (f"{st4}.4.2.1.4.{idx}", OCTETS, f"AA:L{i}"),                       # st4LineLabel
            (f"{st4}.4.3.1.1.{idx}", INTEGER, ST4_ON),                          # st4LineState
            (f"{st4}.4.3.1.3.{idx}", INTEGER, round(ph.current_a * 100)),       # st4LineCurrent, 0.01 A
            (f"{st4}.5.2.1.4.{idx}", OCTETS, phase_label),                      # st4PhaseLabel
            (f"{st4}.5.3.1.1.{idx}", INTEGER, ST4_ON),                          # st4PhaseState
            (f"{st4}.5.3.1.3.{idx}", INTEGER, round(ph.voltage_v * 10)),        # st4PhaseVoltage, 0.1 V
            (f"{st4}.5.3.1.6.{idx}", INTEGER, round(ph.current_a * 100)),       # st4PhaseCurrent, 0.01 A
            (f"{st4}.5.3.1.8.{idx}", INTEGER, round(ph.power_w)),               # st4PhaseActivePower, W
            (f"{st4}.5.3.1.9.{idx}", INTEGER, round(ph.apparent_power_va)),     # st4PhaseApparentPower, VA
            (f"{st4}.5.3.1.10.{idx}", INTEGER, round(ppf * 100)),               # st4PhasePowerFactor, 0.01
            (f"{st4}.5.3.1.13.{idx}", INTEGER, round(ph.energy_j / J_PER_KWH * 10)),  # st4PhaseEnergy
            # one branch (breaker) per phase, carrying that phase's outlets
            (f"{st4}.7.2.1.4.{idx}", OCTETS, f"{phase_label}-BR{i}"),           # st4BranchLabel
            (f"{st4}.7.3.1.1.{idx}", INTEGER, ST4_ON),                          # st4BranchState
            (f"{st4}.7.3.1.3.{idx}", INTEGER, round(ph.current_a * 100)),       # st4BranchCurrent, 0.01 A
        ]
    for o in pdu.outlets:
        idx = f"{cord}.{o.number}"
        rows += [
            (f"{st4}.8.2.1.2.{idx}", OCTETS, f"AA{o.number}"),                  # st4OutletID
            (f"{st4}.8.2.1.3.{idx}", OCTETS, f"Outlet_A{o.number}"),            # st4OutletName
            (f"{st4}.8.3.1.1.{idx}", INTEGER, ST4_ON if o.on else ST4_OFF),     # st4OutletState
            (f"{st4}.8.3.1.3.{idx}", INTEGER, round(o.current_a * 100)),        # st4OutletCurrent, 0.01 A
            (f"{st4}.8.3.1.7.{idx}", INTEGER, round(o.power_w)),                # st4OutletActivePower, W
            (f"{st4}.8.3.1.14.{idx}", INTEGER, round(o.energy_j / 3600.0)),     # st4OutletEnergy, Wh
        ]
    rows += [
        (f"{st4}.9.1.10.0", INTEGER, 0),                                        # st4TempSensorScale: celsius
        (f"{st4}.9.2.1.2.1.1", OCTETS, "A1"),                                   # st4TempSensorID
        (f"{st4}.9.2.1.3.1.1", OCTETS, "Temp_Sensor_A1"),                       # st4TempSensorName
        (f"{st4}.9.3.1.1.1.1", INTEGER, round(pdu.temp_c * 10)),                # st4TempSensorValue, 0.1 deg
        (f"{st4}.10.2.1.2.1.1", OCTETS, "A1"),                                  # st4HumidSensorID
        (f"{st4}.10.2.1.3.1.1", OCTETS, "Humid_Sensor_A1"),                     # st4HumidSensorName
        (f"{st4}.10.3.1.1.1.1", INTEGER, round(pdu.humidity_pct)),              # st4HumidSensorValue, %RH
    ]
    return rows


#: EATON-EPDU-MIB inputType singlePhase(1) threePhaseWye(4); inputCurrentMeasType singlePhase(1)
#: neutral(2) phase1(3) phase2(4) phase3(5); inputVoltageMeasType singlePhase(1) phase1toN(2)..phase3toN(4);
#: inputPowerMeasType phase1(1)..phase3(3)
EATON_SINGLE, EATON_WYE = 1, 4


def eaton_state(current_a: float, rating_a: float, thresholds: tuple[float, float, float] = THRESHOLDS) -> int:
    """inputCurrentThStatus: good(0) lowWarning(1) highWarning(3) highCritical(4), against the
    thresholds the layout serves (the hall's low / near-overload / overload fractions)."""
    return {1: 1, 2: 0, 3: 3, 4: 4}[load_state(current_a, rating_a, thresholds)]


def _neutral_a(currents: list[float]) -> float:
    """Neutral current of a wye feed whose phase currents are 120 degrees apart at one power factor."""
    a, b, c = (currents + [0.0, 0.0, 0.0])[:3]
    return math.sqrt(max(0.0, a * a + b * b + c * c - a * b - b * c - c * a))


def eaton_epdu(pdu: PduState, uptime_cs: int = 0, thresholds: tuple[float, float, float] = THRESHOLDS) -> list[Row]:
    """EATON-EPDU-MIB (ePDU G3/G4, 1.3.6.1.4.1.534.6.6.7): the unit polled is strapping index 0, input 1.

    Current in mA, voltage in mV, power W and VA, energy Wh (Unsigned32). A three-phase unit is wye:
    three line-to-neutral voltages, three phase currents plus the neutral's (inputCurrentIndex 4),
    three phase power rows, and the input's totals in inputTotalPowerTable. Current thresholds are
    served with the status they give, so the hall's load state is what the unit reports.
    """
    base = "1.3.6.1.4.1.534.6.6.7"
    model = pdu_vendor("eaton").model
    rows = _system(f"Eaton ePDU {model} (sim) {pdu.rack}/{pdu.name}", SYS_OBJECT_ID["eaton"],
                   f"{pdu.rack}-{pdu.name}", uptime_cs)
    inp = "0.1"  # strappingIndex 0 (this unit), inputIndex 1
    single = len(pdu.phases) == 1
    n_current = 1 if single else len(pdu.phases) + 1
    rows += [
        (f"{base}.3.1.1.2.{inp}", INTEGER, EATON_SINGLE if single else EATON_WYE),  # inputType
        (f"{base}.3.1.1.5.{inp}", INTEGER, len(pdu.phases)),                  # inputVoltageCount
        (f"{base}.3.1.1.6.{inp}", INTEGER, n_current),                        # inputCurrentCount
        (f"{base}.3.1.1.7.{inp}", INTEGER, len(pdu.phases)),                  # inputPowerCount
        (f"{base}.3.1.1.10.{inp}", OCTETS, f"Feed {pdu.feed}"),               # inputFeedName
        (f"{base}.3.5.1.3.{inp}", INTEGER, round(pdu.apparent_power_va)),     # inputTotalVA
        (f"{base}.3.5.1.4.{inp}", INTEGER, round(pdu.power_w)),               # inputTotalWatts
        (f"{base}.3.5.1.5.{inp}", GAUGE32, round(pdu.energy_j / 3600.0)),     # inputTotalWh
        (f"{base}.3.5.1.9.{inp}", INTEGER,                                    # inputPowerCapacity, VA
         round(sum(ph.voltage_v * ph.breaker_a for ph in pdu.phases))),
    ]
    low, near, over = thresholds
    for i, ph in enumerate(pdu.phases, start=1):
        idx = f"{inp}.{i}"
        rows += [
            (f"{base}.3.2.1.2.{idx}", INTEGER, 1 if single else 1 + i),       # inputVoltageMeasType
            (f"{base}.3.2.1.3.{idx}", INTEGER, round(ph.voltage_v * 1000)),   # inputVoltage, mV
            (f"{base}.3.2.1.4.{idx}", INTEGER, 0),                            # inputVoltageThStatus: good
            (f"{base}.3.3.1.2.{idx}", INTEGER, 1 if single else 2 + i),       # inputCurrentMeasType
            (f"{base}.3.3.1.3.{idx}", INTEGER, round(ph.breaker_a * 1000)),   # inputCurrentCapacity, mA
            (f"{base}.3.3.1.4.{idx}", INTEGER, round(ph.current_a * 1000)),   # inputCurrent, mA
            (f"{base}.3.3.1.5.{idx}", INTEGER, eaton_state(ph.current_a, ph.breaker_a, thresholds)),
            (f"{base}.3.3.1.6.{idx}", INTEGER, round(low * ph.breaker_a * 1000)),   # ...ThLowerWarning
            (f"{base}.3.3.1.7.{idx}", INTEGER, -1),                                 # ...ThLowerCritical: off
            (f"{base}.3.3.1.8.{idx}", INTEGER, round(near * ph.breaker_a * 1000)),  # ...ThUpperWarning
            (f"{base}.3.3.1.9.{idx}", INTEGER, round(over * ph.breaker_a * 1000)),  # ...ThUpperCritical
            (f"{base}.3.3.1.11.{idx}", INTEGER,                               # inputCurrentPercentLoad
             round(ph.current_a / ph.breaker_a * 100) if ph.breaker_a > 0 else 0),
            (f"{base}.3.4.1.2.{idx}", INTEGER, i),                            # inputPowerMeasType
            (f"{base}.3.4.1.3.{idx}", INTEGER, round(ph.apparent_power_va)),  # inputVA
            (f"{base}.3.4.1.4.{idx}", INTEGER, round(ph.power_w)),            # inputWatts
            (f"{base}.3.4.1.5.{idx}", GAUGE32, round(ph.energy_j / 3600.0)),  # inputWh
        ]
    if not single:
        idx = f"{inp}.{n_current}"
        rows += [
            (f"{base}.3.3.1.2.{idx}", INTEGER, 2),                            # inputCurrentMeasType: neutral
            (f"{base}.3.3.1.4.{idx}", INTEGER, round(_neutral_a([ph.current_a for ph in pdu.phases]) * 1000)),
            (f"{base}.3.3.1.5.{idx}", INTEGER, 0),
        ]
    for o in pdu.outlets:
        idx = f"0.{o.number}"
        ph = _phase_of(pdu, o.phase)
        volts = ph.voltage_v if ph is not None else 0.0
        rows += [
            (f"{base}.6.1.1.2.{idx}", OCTETS, str(o.number)),                 # outletID
            (f"{base}.6.1.1.3.{idx}", OCTETS, f"Outlet A{o.number}"),         # outletName
            (f"{base}.6.1.1.6.{idx}", OCTETS, f"A{o.number}"),                # outletDesignator
            (f"{base}.6.4.1.3.{idx}", INTEGER, round(o.current_a * 1000)),    # outletCurrent, mA
            (f"{base}.6.5.1.2.{idx}", INTEGER, round(o.current_a * volts)),   # outletVA
            (f"{base}.6.5.1.3.{idx}", INTEGER, round(o.power_w)),             # outletWatts
            (f"{base}.6.5.1.4.{idx}", GAUGE32, round(o.energy_j / 3600.0)),   # outletWh
        ]
    return rows


def _line_to_line_v(va: float, vb: float) -> float:
    """Voltage between two phases of a wye feed, 120 degrees apart."""
    return math.sqrt(va * va + vb * vb + va * vb)


#: CPS-MIB ePDU2PhaseStatusLoadState normal(1) lowLoad(2) nearOverload(3) overload(4), from the
#: APC-style code of :func:`load_state`; ePDU2DeviceStatusLoadState noLoadAlarm(1) underCurrentAlarm(2)
#: nearOverCurrentAlarm(3) overCurrentAlarm(4) takes the same numbers
CPS_LOAD_STATE = {1: 2, 2: 1, 3: 3, 4: 4}


def cyberpower_epdu2(pdu: PduState, uptime_cs: int = 0,
                     thresholds: tuple[float, float, float] = THRESHOLDS) -> list[Row]:
    """CPS-MIB ePDU2 (CyberPower switched/metered PDUs, 1.3.6.1.4.1.3808.1.1.6), a standalone unit.

    Current 0.1 A, voltage 0.1 V, power W and VA, power factor 0.01, energy 0.1 kWh (device and
    outlets). Tables are indexed by a running row number with the unit's module index in a column.
    Phase thresholds (whole amps) are served with the load state they give.
    """
    base = "1.3.6.1.4.1.3808.1.1.6"
    model = pdu_vendor("cyberpower").model
    rows = _system(f"CyberPower {model} (sim) {pdu.rack}/{pdu.name}", SYS_OBJECT_ID["cyberpower"],
                   f"{pdu.rack}-{pdu.name}", uptime_cs)
    pf = _power_factor(pdu.power_w, pdu.apparent_power_va, pdu.power_factor)
    worst = max((load_state(ph.current_a, ph.breaker_a, thresholds) for ph in pdu.phases), default=2)
    dev = f"{base}.3.4.1"
    rows += [
        (f"{dev}.1.1", INTEGER, 1),                                             # ePDU2DeviceStatusIndex
        (f"{dev}.2.1", INTEGER, 1),                                             # ...ModuleIndex
        (f"{dev}.3.1", OCTETS, pdu.name),                                       # ...Name
        (f"{dev}.4.1", INTEGER, CPS_LOAD_STATE[worst]),                         # ...LoadState
        (f"{dev}.5.1", GAUGE32, round(sum(ph.current_a for ph in pdu.phases) * 10)),  # ...CurrentLoad, 0.1 A
        (f"{dev}.9.1", GAUGE32, round(pdu.energy_j / J_PER_KWH * 10)),          # ...Energy, 0.1 kWh
        (f"{dev}.15.1", GAUGE32, round(pdu.apparent_power_va)),                 # ...ApparentPower, VA
        (f"{dev}.16.1", GAUGE32, round(pf * 100)),                              # ...PowerFactor, 0.01
        (f"{dev}.17.1", INTEGER, 1),                                            # ...RoleType: standalone
        (f"{dev}.18.1", GAUGE32, round(pdu.power_w)),                           # ...PowerLoad, W
        (f"{dev}.19.1", GAUGE32, round(pdu.peak_power_w)),                      # ...PowerPeakLoad, W
    ]
    low, near, over = thresholds
    three = len(pdu.phases) == 3
    for i, ph in enumerate(pdu.phases, start=1):
        ppf = _power_factor(ph.power_w, ph.apparent_power_va, pdu.power_factor)
        cfg, st = f"{base}.4.2.1", f"{base}.4.4.1"
        rows += [
            (f"{cfg}.1.{i}", INTEGER, i),                                       # ePDU2PhaseConfigIndex
            (f"{cfg}.2.{i}", INTEGER, 1),
            (f"{cfg}.3.{i}", INTEGER, i),
            (f"{cfg}.5.{i}", INTEGER, round(low * ph.breaker_a)),               # ...LowLoadThreshold, A
            (f"{cfg}.6.{i}", INTEGER, round(near * ph.breaker_a)),              # ...NearOverloadThreshold, A
            (f"{cfg}.7.{i}", INTEGER, round(over * ph.breaker_a)),              # ...OverloadThreshold, A
            (f"{st}.1.{i}", INTEGER, i),                                        # ePDU2PhaseStatusIndex
            (f"{st}.2.{i}", INTEGER, 1),                                        # ...ModuleIndex
            (f"{st}.3.{i}", INTEGER, i),                                        # ...Number
            (f"{st}.4.{i}", INTEGER, CPS_LOAD_STATE[load_state(ph.current_a, ph.breaker_a, thresholds)]),
            (f"{st}.5.{i}", GAUGE32, round(ph.current_a * 10)),                 # ...Load, 0.1 A
            (f"{st}.6.{i}", GAUGE32, round(ph.voltage_v * 10)),                 # ...Voltage, 0.1 V
            (f"{st}.7.{i}", GAUGE32, round(ph.power_w)),                        # ...Power, W
            (f"{st}.8.{i}", GAUGE32, round(ph.apparent_power_va)),              # ...ApparentPower, VA
            (f"{st}.9.{i}", GAUGE32, round(ppf * 100)),                         # ...PowerFactor, 0.01
        ]
        if three:
            nxt = pdu.phases[i % 3]
            rows.append((f"{st}.13.{i}", GAUGE32,                               # ...LineToLineVoltage
                         round(_line_to_line_v(ph.voltage_v, nxt.voltage_v) * 10)))
    met = f"{base}.6.2.4.1"
    for o in pdu.outlets:
        n = o.number
        rows += [
            (f"{met}.1.{n}", INTEGER, n),                                       # ePDU2OutletMeteredStatusIndex
            (f"{met}.2.{n}", INTEGER, 1),                                       # ...ModuleIndex
            (f"{met}.3.{n}", INTEGER, n),                                       # ...Number
            (f"{met}.4.{n}", OCTETS, f"Outlet{n}"),                             # ...Name
            (f"{met}.6.{n}", GAUGE32, round(o.current_a * 10)),                 # ...Load, 0.1 A
            (f"{met}.7.{n}", GAUGE32, round(o.power_w)),                        # ...ActivePower, W
            (f"{met}.11.{n}", GAUGE32, round(o.energy_j / J_PER_KWH * 10)),     # ...Energy, 0.1 kWh
        ]
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


#: the simulated unit of each vendor of dcim.vendors (the same names; tests/simulators/test_snmp_layouts.py
#: holds the two to each other): a PduState -> rows, given uptime and load-state thresholds
PDU_LAYOUTS: dict[str, Callable[..., list[Row]]] = {
    "apc": apc_rpdu2, "raritan": raritan_pdu2, "servertech": sentry4, "eaton": eaton_epdu,
    "cyberpower": cyberpower_epdu2,
}
#: the simulated CDU of each cooling vendor of dcim.vendors
LOOP_LAYOUTS: dict[str, Callable[[LoopState, int], list[Row]]] = {"liebert": liebert_flexible, "apc": apc_cooling}


def pdu_layout(vendor: str, device: str) -> Callable[..., list[Row]]:
    """The layout a PDU of ``vendor`` is served in; ConfigError naming the device when there is none."""
    return _layout(PDU_LAYOUTS, vendor, f"PDU {device}", "PDU")


def loop_layout(vendor: str, device: str) -> Callable[[LoopState, int], list[Row]]:
    """The layout a CDU of ``vendor`` is served in; ConfigError naming the device when there is none."""
    return _layout(LOOP_LAYOUTS, vendor, f"CDU {device}", "cooling")


def _layout(layouts: dict[str, Callable[..., list[Row]]], vendor: str, device: str,
            kind: str) -> Callable[..., list[Row]]:
    layout = layouts.get(vendor)
    if layout is None:
        msg = (f"{device}: vendor {vendor!r} has no simulated SNMP layout "
               f"(simulated {kind} vendors: {', '.join(sorted(layouts))})")
        raise ConfigError(msg)
    return layout
