"""Every shipped scenario's ``dcim simulate`` output is accepted line for line by a real InfluxDB 1.6.7."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from dcim.app.cli import main
from dcim.lineprotocol.decode import decode
from dcim.simulators.scenarios import load_scenario, scenario_names

pytestmark = pytest.mark.integration

#: a field every line of the measurement carries, so COUNT() of it counts the points
COUNT_FIELD = {
    "gpu": "lost",
    "gpu_xid": "count_total",
    "pdu": "power_w",
    "pdu_phase": "current_a",
    "pdu_outlet": "on",
    "env": "temp_c",
    "coolant_loop": "leak",
}


@pytest.mark.parametrize("name", scenario_names())
def test_scenario_output_is_accepted_point_for_point(influxdb, tmp_path, name):
    out = tmp_path / f"{name}.lp"
    # the whole scenario at a coarse step: every fault's record shapes (lost GPUs, XIDs, silent devices)
    try:
        main(["simulate", "--scenario", name, "--step", "60s", "--out", str(out), "-q"])
    except SystemExit as exc:
        assert exc.code == 0
    text = out.read_text()
    lines_per_measurement = Counter(r.measurement for r in decode(text))
    assert set(lines_per_measurement) <= set(COUNT_FIELD)
    expected_samples = int(load_scenario(name).duration // 60)
    assert len({r.time_ns for r in decode(text)}) == expected_samples

    db = f"sim_{name.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
    influxdb.create_database(db)
    try:
        influxdb.write(text, db)
        got = {}
        for meas, fld in COUNT_FIELD.items():
            rows = influxdb.points(f'SELECT COUNT("{fld}") FROM "{meas}"', db)
            got[meas] = rows[0]["count"] if rows else 0
        assert got == {m: lines_per_measurement.get(m, 0) for m in COUNT_FIELD}
        if name == "gpu-lost":
            rows = influxdb.points('SELECT COUNT("lost") FROM "gpu" WHERE "lost" = true', db)
            assert rows and rows[0]["count"] == sum(1 for ln in text.splitlines() if " lost=true " in ln)
        if name == "device-not-answering":
            # the default site (the pod): 20 PDU feeds, 3 loops; a silent device writes nothing meanwhile
            assert got["pdu"] < 20 * expected_samples and got["coolant_loop"] < 3 * expected_samples
    finally:
        influxdb.drop_database(db)
