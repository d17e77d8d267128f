"""What the simulated hall writes: one fast line-protocol block per measurement, fed from the hall's arrays.

Field lists come from dcim.schema (a typo fails at import). Readings are rounded to what the
devices report (0.01 for temperatures and power, whole joules for energy counters).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from dcim import schema
from dcim.record import Record
from dcim.lineprotocol.encode import SeriesBlock
from dcim.simulators.output import bool_col, fixed, ints, whole
from dcim.simulators.nvml import architecture, sm_activity_pct
from dcim.simulators.physics import LOOP_FLOATS, PHASES
from dcim.simulators.throttle import THROTTLE_BITS
from dcim.vendors import pdu_vendor

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dcim.simulators.physics import HallPhysics
    from dcim.simulators.state import GpuState


def _check_fields(meas: schema.Measurement, names) -> list[tuple[str, str]]:
    """(name, type) from the schema; a typo here fails at import, not in a dashboard."""
    return [(n, meas.field(n).type) for n in names]


def _whole(fields: list[tuple[str, str]], *names: str) -> list[tuple[str, str]]:
    """Mark float fields written as whole numbers (energy counters: 1 J resolution)."""
    return [(n, "whole" if n in names else k) for n, k in fields]


#: The hall's ``gpu`` line, in field order: fields of the GPU field table (dcim.gpu_fields, through
#: dcim.schema.GPU), each with the resolution the hall writes a float reading at: decimals (sensors
#: 0.01, clocks whole MHz, violation time 0.1 s) or _WHOLE (energy counters, 1 J). Other fields are
#: written as their row's type says (int, bool, str). The resolution is the simulated sensor's, not
#: a property of the field: the agent reading NVML gets NVML's own (whole degC, mW).
_WHOLE = "whole"
_GPU_COLUMNS: tuple[tuple[str, int | str | None], ...] = (
    ("temp_c", 2), ("mem_temp_c", 2), ("power_w", 2), ("power_instant_w", 2), ("energy_j", _WHOLE),
    ("power_limit_w", 2), ("sm_clock_mhz", 0), ("mem_clock_mhz", 0), ("util_pct", 2), ("mem_util_pct", 2),
    ("violation_power_s", 1), ("violation_thermal_s", 1),
    ("mem_used_bytes", None), ("processes", None), ("clock_event_mask", None), ("pstate", None),
    ("ecc_sbe_volatile_total", None), ("ecc_dbe_volatile_total", None),
    *((name, None) for name in THROTTLE_BITS), ("lost", None),
    # the activity KPI as the GPU agent gives it: GPM SM activity where the GPU has GPM, else utilization
    ("activity_pct", 2), ("activity_source", None),
)


def _writer(meas: schema.Measurement, name: str, resolution: int | str | None):
    """The function that turns one column (a numpy array) into the value texts of ``name``."""
    kind = meas.field(name).type
    if (kind == "float") != (resolution is not None):
        msg = f"{meas.name}.{name} is {kind}: a resolution is given for float fields only"
        raise ValueError(msg)
    if kind == "float":
        return whole if resolution == _WHOLE else functools.partial(fixed, decimals=resolution)
    return {"int": ints, "bool": bool_col, "str": np.ndarray.tolist}[kind]


_GPU_FIELDS = _whole(_check_fields(schema.GPU, [n for n, _ in _GPU_COLUMNS]),
                     *[n for n, r in _GPU_COLUMNS if r == _WHOLE])
_GPU_WRITERS = [(n, _writer(schema.GPU, n, r)) for n, r in _GPU_COLUMNS]
_PDU_FIELDS = _whole(_check_fields(
    schema.PDU, ("power_w", "apparent_power_va", "power_factor", "peak_power_w", "energy_j", "frequency_hz", "load_state")
), "energy_j")
_PHASE_FIELDS = _whole(_check_fields(
    schema.PDU_PHASE, ("current_a", "voltage_v", "power_w", "apparent_power_va", "power_factor", "energy_j", "load_state")
), "energy_j")
_OUTLET_FIELDS = _whole(_check_fields(schema.PDU_OUTLET, ("current_a", "power_w", "energy_j", "on")), "energy_j")
_ENV_FIELDS = _check_fields(schema.ENV, ("temp_c", "humidity_pct"))
_LOOP_FIELDS = _check_fields(schema.COOLANT_LOOP, (*LOOP_FLOATS, "leak"))
_XID_FIELDS = _check_fields(schema.GPU_XID, ("count_total", "last_time_s"))
_LOST_FIELDS = _check_fields(schema.GPU, ("lost",))

class Emitter:
    """Owns the series blocks of one hall and renders its current state as lines or records.

    ``gpus``: the hall's GPUs in order, for their identity tags (node, index, UUID, model).
    """

    def __init__(self, hall: HallPhysics, gpus: Sequence[GpuState]) -> None:
        self.hall = hall
        self._xid_block: SeriesBlock | None = None
        self._xid_keys: list[tuple[int, int]] = []
        gpu_tags = []
        for i in range(hall.n_gpus):
            o = gpus[i]
            t = dict(hall.rack_tags[hall.gpu_rack[i]])
            t.update(node=o.node, gpu=str(o.index), uuid=o.uuid, model=o.model)
            gpu_tags.append(t)
        self.gpu_block = SeriesBlock("gpu", gpu_tags, _GPU_FIELDS)
        gpm = np.array([architecture(t["model"]) != "other" for t in gpu_tags], dtype=bool)
        self._gpm = gpm
        self._activity_source = np.where(gpm, "gpm_sm_active", "nvml_util").astype(object)
        self.lost_block = SeriesBlock("gpu", gpu_tags, _LOST_FIELDS)  # a lost GPU's line: lost=true alone
        pdu_tags, phase_tags, env_tags = [], [], []
        self.phase_rows: list[int] = []  # phase slot index of each pdu_phase series
        for pi, (rack, name) in enumerate(hall.pdu_keys):
            cfg = hall.pdu_cfgs[pi]
            base = dict(hall.rack_tags[hall.pdu_rack[pi]])
            pdu_tags.append({**base, "pdu": name, "feed": cfg.feed, "model": pdu_vendor(cfg.vendor).model})
            for k in range(cfg.phases):
                phase_tags.append({**base, "pdu": name, "feed": cfg.feed, "phase": PHASES[k]})
                self.phase_rows.append(pi * 3 + k)
            env_tags.append({**base, "pdu": name, "sensor": "inlet"})
        outlet_tags = []
        for oi in range(hall.n_outlets):
            pi = hall.outlet_pdu[oi]
            cfg = hall.pdu_cfgs[pi]
            base = dict(hall.rack_tags[hall.pdu_rack[pi]])
            outlet_tags.append({
                **base, "pdu": hall.pdu_keys[pi][1], "feed": cfg.feed, "outlet": str(hall.outlet_num[oi]),
                "phase": PHASES[hall.outlet_phase[oi] % 3],
            })
        self.phase_pdu = np.array([r // 3 for r in self.phase_rows], dtype=np.int64)
        self.phase_rows_arr = np.array(self.phase_rows, dtype=np.int64)
        self.pdu_block = SeriesBlock("pdu", pdu_tags, _PDU_FIELDS)
        self.phase_block = SeriesBlock("pdu_phase", phase_tags, _PHASE_FIELDS)
        self.outlet_block = SeriesBlock("pdu_outlet", outlet_tags, _OUTLET_FIELDS)
        self.env_block = SeriesBlock("env", env_tags, _ENV_FIELDS)
        self.loop_block = SeriesBlock("coolant_loop", [hall.site.loop_tags(lp) for lp in hall.loop_cfgs], _LOOP_FIELDS)

    def lines(self, measurements: Iterable[str] | None = None) -> str:
        ts, blocks = self.blocks(None if measurements is None else frozenset(measurements))
        return "".join(b.render(cols, ts, rows) for b, rows, cols in blocks)

    def records(self, measurements: Iterable[str] | None = None) -> list[Record]:
        ts, blocks = self.blocks(None if measurements is None else frozenset(measurements))
        out: list[Record] = []
        for b, rows, cols in blocks:
            out.extend(b.records(cols, ts, rows))
        return out

    def blocks(self, only: frozenset[str] | None = None):
        """(block, rows, cols) for every measurement (or those in ``only``) of the current state, in order."""
        hall = self.hall
        ts = hall.time_ns
        out: list = []
        want = (lambda m: True) if only is None else only.__contains__  # noqa: E731
        alive = ~hall.lost
        g_rows = None if alive.all() else tuple(np.flatnonzero(alive).tolist())
        if want("gpu"):
            out += self._gpu(hall, alive, g_rows)
        if hall.xid_counts and want("gpu_xid"):
            out.append(self._xids(hall))
        if want("pdu") or want("pdu_phase") or want("pdu_outlet") or want("env"):
            out += [b for b in self._pdus(hall) if want(b[0].measurement)]
        if hall.n_loops and want("coolant_loop"):
            out.append(self._loops(hall))
        return ts, out

    def _gpu(self, hall: HallPhysics, alive: np.ndarray, g_rows: tuple[int, ...] | None) -> list:
        out = []
        sel = slice(None) if g_rows is None else np.flatnonzero(alive)
        util, mask = hall.util, hall.mask
        sm = sm_activity_pct(util, hall.power, hall.tdp_w)  # the simulated NVML's GPM model, for every GPU
        # each field's column by name, for every GPU (the lines take the answering ones): the model's
        # readings, and what the agent works out from them or the hall does not model (P-state 0)
        values = hall.gpu_readings()
        values.update((name, (mask & bit) != 0) for name, bit in THROTTLE_BITS.items())
        values.update(pstate=np.zeros(len(util), dtype=np.int64), activity_pct=np.where(self._gpm, sm, util),
                      activity_source=self._activity_source)
        out.append((self.gpu_block, g_rows, [write(values[name][sel]) for name, write in _GPU_WRITERS]))
        if g_rows is not None:
            lost_rows = tuple(np.flatnonzero(hall.lost).tolist())
            out.append((self.lost_block, lost_rows, [["true"] * len(lost_rows)]))
        return out

    def _xids(self, hall: HallPhysics):
        if self._xid_block is None or len(self._xid_keys) != len(hall.xid_counts):  # a new (GPU, code) series
            keys = sorted(hall.xid_counts)
            tags = []
            for gi, code in keys:
                t = dict(self.gpu_block.tags[gi])
                del t["model"]
                t["xid"] = str(code)
                tags.append(t)
            self._xid_keys = keys
            self._xid_block = SeriesBlock("gpu_xid", tags, _XID_FIELDS)
        vals = [hall.xid_counts[k] for k in self._xid_keys]
        return (self._xid_block, None, [[v[0] for v in vals], [float(v[1]) for v in vals]])

    def _pdus(self, hall: HallPhysics) -> list:
        """pdu, pdu_phase, pdu_outlet and env of the PDUs that answer."""
        out = []
        pa = hall.pdu_answering
        all_pdus = pa.all()
        p_rows = None if all_pdus else tuple(np.flatnonzero(pa).tolist())
        psel = slice(None) if all_pdus else np.flatnonzero(pa)
        pdu_pw = hall.pdu_power[psel]
        pf = hall.pdu_pf[psel]
        ph_cur = hall.phase_current_a()
        worst = np.max((ph_cur / hall.phase_breaker_a * hall.phase_used).reshape(-1, 3), axis=1)[psel]
        out.append((self.pdu_block, p_rows, [
            np.round(pdu_pw, 1).tolist(), np.round(pdu_pw / pf, 1).tolist(), pf.tolist(),
            np.round(hall.pdu_peak[psel], 1).tolist(), whole(hall.pdu_energy[psel]),
            np.round(hall.p.frequency_hz + 0.0 * pdu_pw, 2).tolist(),
            hall.load_state(worst, np.ones_like(worst)),
        ]))
        ph_ok = pa[self.phase_pdu]
        ph_rows = None if all_pdus else tuple(np.flatnonzero(ph_ok).tolist())
        slots = self.phase_rows_arr if all_pdus else self.phase_rows_arr[ph_ok]
        cur = ph_cur[slots]
        volt = hall.phase_volt[slots]
        out.append((self.phase_block, ph_rows, [
            fixed(cur, 2), fixed(volt, 1), fixed(hall.phase_power[slots], 1), fixed(volt * cur, 1), hall.phase_pf[slots].tolist(), whole(hall.phase_energy[slots]),
            hall.load_state(cur, hall.phase_breaker_a[slots]),
        ]))
        o_ok = pa[hall.outlet_pdu]
        o_rows = None if all_pdus else tuple(np.flatnonzero(o_ok).tolist())
        osel = slice(None) if all_pdus else np.flatnonzero(o_ok)
        opw = hall.outlet_power[osel]
        out.append((self.outlet_block, o_rows, [
            fixed(opw / (hall.phase_volt[hall.outlet_phase[osel]] * hall.outlet_pf[osel]), 3), fixed(opw, 1),
            whole(hall.outlet_energy[osel]), bool_col(hall.outlet_on[osel]),
        ]))
        out.append((self.env_block, p_rows, [fixed(hall.env_temp[psel], 2), fixed(hall.env_hum[psel], 2)]))
        return out

    def _loops(self, hall: HallPhysics):
        la = hall.loop_answering
        l_rows = None if la.all() else tuple(np.flatnonzero(la).tolist())
        rep = np.round(hall.loop_reported[la], 2)
        rep[:, 8] = np.round(rep[:, 8], 0)
        lcols = [rep[:, j].tolist() for j in range(len(LOOP_FLOATS))]
        lcols.append(bool_col(hall.loop_leak[la]))
        return (self.loop_block, l_rows, lcols)

