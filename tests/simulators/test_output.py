"""The block encoder the simulator writes with: byte-identical to ``encode``, decodable, and schema-valid."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from dcim.lineprotocol.decode import decode
from dcim.lineprotocol.encode import SeriesBlock, encode
from dcim.schema import MEASUREMENTS, validate
from tests.simulators.helpers import hall_for, run_to


def _check(hall):
    text = hall.lines()
    records = hall.records()
    assert text == encode(records)
    back = decode(text)
    assert back == records
    for r in records:
        assert validate(r, allow_extra_tags=False) == [], r
        assert set(MEASUREMENTS[r.measurement].tags) >= set(r.tags)
    return records


def test_lines_equal_the_core_encoder_and_decode_back():
    hall = hall_for("normal")
    run_to(hall, 3)
    records = _check(hall)
    counts = {}
    for r in records:
        counts[r.measurement] = counts.get(r.measurement, 0) + 1
    # 8 racks: 256 GPUs, 16 PDUs x 3 phases x 24 outlets, an inlet probe per PDU, 2 loops
    assert counts == {"gpu": 256, "pdu": 16, "pdu_phase": 48, "pdu_outlet": 384, "env": 16, "coolant_loop": 2}


def test_lost_gpus_xids_and_silent_devices_stay_valid_line_protocol():
    for name, t_s in (("gpu-lost", 150), ("device-not-answering", 200), ("ecc-errors", 400), ("phase-overload", 240)):
        hall = hall_for(name)
        run_to(hall, t_s)
        _check(hall)


def test_every_field_has_the_schema_type():
    hall = hall_for("gpu-lost")
    run_to(hall, 130)
    seen = set()
    for r in hall.records():
        meas = MEASUREMENTS[r.measurement]
        for k, v in r.fields.items():
            t = meas.fields[k].type
            seen.add((r.measurement, k))
            assert {"float": float, "int": int, "bool": bool, "str": str}[t] is type(v), (r.measurement, k, v)
            if isinstance(v, float):
                assert math.isfinite(v)
    assert ("gpu_xid", "count_total") in seen and ("gpu", "lost") in seen


_text = st.text(alphabet=st.sampled_from(list("abcXYZ 09,=%_-.\"")), min_size=1, max_size=8).filter(
    lambda s: s.strip() == s and s
)


@settings(max_examples=60, deadline=None)
@given(
    tags=st.lists(st.dictionaries(st.sampled_from(["site", "rack", "node"]), _text, min_size=1), min_size=1, max_size=4),
    data=st.data(),
)
def test_block_render_matches_encoder_for_awkward_tags_and_values(tags, data):
    fields = [("temp_c", "float"), ("processes", "int"), ("lost", "bool"), ("load_state", "str")]
    block = SeriesBlock("gpu", tags, fields)
    n = len(tags)
    floats = data.draw(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=n, max_size=n))
    ints = data.draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n))
    bools = data.draw(st.lists(st.sampled_from(["true", "false"]), min_size=n, max_size=n))
    words = data.draw(st.lists(st.sampled_from(["low", "normal", "near_overload"]), min_size=n, max_size=n))
    cols = [floats, ints, bools, words]
    rows = tuple(range(0, n, 2)) if n > 1 else None
    sel = [[c[i] for i in (rows if rows is not None else range(n))] for c in cols]
    text = block.render(sel, 1_700_000_000_000_000_000, rows)
    records = block.records(sel, 1_700_000_000_000_000_000, rows)
    assert text == encode(records)
    assert decode(text) == records


def test_constant_columns_folded_into_the_layout_stay_exact_when_they_change():
    block = SeriesBlock("pdu_outlet", [{"rack": "A01", "outlet": str(i)} for i in range(4)],
                        [("power_w", "float"), ("on", "bool"), ("energy_j", "whole")])
    texts = []
    # 'on' is constant for three renders (folded from the second), then one outlet switches off
    for step, on in enumerate((["true"] * 4, ["true"] * 4, ["true"] * 4, ["true", "false", "true", "true"], ["true"] * 4)):
        cols = [[float(step + i) for i in range(4)], on, [str(100 * step + i) for i in range(4)]]
        text = block.render(cols, step)
        assert text == encode(block.records(cols, step))
        texts.append(text)
    assert "on=false" in texts[3] and texts[3].count("on=true") == 3
    assert texts[4].count("on=true") == 4
