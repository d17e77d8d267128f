"""One vendor table: the config allows exactly its vendors, the simulator has a layout for each, and a
vendor without one is an error naming the device, never another vendor's layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcim.config import SITES_DIR, LoopConfig, PduConfig, load_site, named_site
from dcim.errors import ConfigError
from dcim.simulators.hall import Hall
from dcim.simulators.snmp import layouts, serve
from dcim.simulators.snmp.responder import device_renderers
from dcim.vendors import COOLING_VENDORS, PDU_VENDORS, cooling_vendor, pdu_vendor


def test_the_simulator_has_one_layout_per_vendor_of_the_table() -> None:
    assert set(layouts.PDU_LAYOUTS) == set(PDU_VENDORS)
    assert set(layouts.LOOP_LAYOUTS) == set(COOLING_VENDORS)
    assert set(PDU_VENDORS) <= set(layouts.SYS_OBJECT_ID)
    # five different devices: no vendor is served in another's layout or under its sysObjectID
    assert len(set(layouts.PDU_LAYOUTS.values())) == len(PDU_VENDORS)
    assert len({layouts.SYS_OBJECT_ID[v] for v in PDU_VENDORS}) == len(PDU_VENDORS)


def test_the_config_allows_exactly_the_tables_vendors() -> None:
    assert PduConfig.model_fields["vendor"].annotation.__args__ == tuple(PDU_VENDORS)
    assert LoopConfig.model_fields["vendor"].annotation.__args__ == tuple(COOLING_VENDORS)
    for v in PDU_VENDORS:
        assert PduConfig(name="p", vendor=v).vendor == v
    assert pdu_vendor("eaton").profile == "eaton_epdu"
    with pytest.raises(ValueError, match=r"unknown PDU vendor 'hpe'; known: apc, cyberpower, eaton"):
        pdu_vendor("hpe")
    with pytest.raises(ValueError, match="unknown cooling-unit vendor"):
        cooling_vendor("rittal")


def test_a_site_naming_an_unknown_vendor_does_not_load(tmp_path: Path) -> None:
    text = (SITES_DIR / "h100-hall.yaml").read_text()
    assert text.count("vendor: raritan}") == 1
    bad = tmp_path / "site.yaml"
    bad.write_text(text.replace("vendor: raritan}", "vendor: hpe}"))
    with pytest.raises(ConfigError) as err:
        load_site(bad)
    msg = str(err.value)
    assert str(bad) in msg and "vendor" in msg and "pdus" in msg
    assert all(v in msg for v in PDU_VENDORS), msg  # says what is allowed


def _hall_with(vendor: str) -> Hall:
    site = named_site("h100-hall")
    rack = next(site.racks())
    rack.pdus[0].vendor = vendor
    return Hall(site, seed=1)


def test_a_pdu_vendor_without_a_layout_is_an_error_naming_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    hall = _hall_with("eaton")
    monkeypatch.delitem(layouts.PDU_LAYOUTS, "eaton")
    with pytest.raises(ConfigError, match=r"PDU A01/pdu-a: vendor 'eaton' has no simulated SNMP layout"):
        device_renderers(hall)


async def test_serve_refuses_before_opening_a_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    hall = _hall_with("cyberpower")
    monkeypatch.delitem(layouts.PDU_LAYOUTS, "cyberpower")
    with pytest.raises(ConfigError, match=r"A01/pdu-a: vendor 'cyberpower'"):
        serve(hall)


def test_a_cooling_vendor_without_a_layout_is_an_error_naming_the_cdu(monkeypatch: pytest.MonkeyPatch) -> None:
    hall = Hall(named_site("h100-hall"), seed=1)
    monkeypatch.delitem(layouts.LOOP_LAYOUTS, "apc")
    with pytest.raises(ConfigError, match=r"CDU cdu-b \(loop loop-b\): vendor 'apc' has no simulated SNMP layout"):
        device_renderers(hall)


#: the MIB subtree each vendor's device serves its readings under (PowerNet-MIB rPDU2, PDU2-MIB,
#: Sentry4-MIB, EATON-EPDU-MIB, CPS-MIB ePDU2)
MIB_ROOT = {"apc": "1.3.6.1.4.1.318.1.1.26.", "raritan": "1.3.6.1.4.1.13742.6.", "servertech": "1.3.6.1.4.1.1718.4.1.",
            "eaton": "1.3.6.1.4.1.534.6.6.7.", "cyberpower": "1.3.6.1.4.1.3808.1.1.6."}


@pytest.mark.parametrize("vendor", list(PDU_VENDORS))
def test_each_vendor_is_served_in_its_own_layout(vendor: str) -> None:
    hall = _hall_with(vendor)
    render, _ = device_renderers(hall)["A01-pdu-a"]
    rows = {oid: value for oid, _, value in render()}
    assert rows["1.3.6.1.2.1.1.2.0"] == layouts.SYS_OBJECT_ID[vendor]
    private = [oid for oid in rows if oid.startswith("1.3.6.1.4.1.")]
    assert len(private) > 50
    assert all(oid.startswith(MIB_ROOT[vendor]) for oid in private), [
        o for o in private if not o.startswith(MIB_ROOT[vendor])][:3]


def test_the_record_command_names_the_device_without_a_traceback(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from dcim.simulators.snmp.__main__ import main

    monkeypatch.delitem(layouts.PDU_LAYOUTS, "raritan")  # the sample hall's B-feed PDUs are Raritan
    res = CliRunner().invoke(main, ["record", "--site", str(SITES_DIR / "h100-hall.yaml"), "--out",
                                    str(tmp_path / "walks"), "--steps", "1"])
    assert res.exit_code == 1, res.output
    assert "Error: PDU A01/pdu-b: vendor 'raritan' has no simulated SNMP layout" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "walks").exists()
