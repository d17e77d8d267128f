"""Detection's choice among probed candidates (pure): richest answering profile, supersedes, refusal."""

from __future__ import annotations

from dcim.agents.snmp.poller import Detection, Tried, choose
from dcim.agents.snmp.profile import load_profiles

PROFILES = load_profiles()
APC = "sysObjectID under 1.3.6.1.4.1.318.1.3.4"
STD = "standard MIB, probed on every device"


def _t(profile: str, answered: int, why: str = APC, prefix_len: int = 22) -> Tried:
    return Tried(profile, why, answered, 6, prefix_len if not why.startswith(("standard", "same")) else 0,
                 PROFILES[profile].kind)


def test_rpdu2_supersedes_legacy_even_when_legacy_answers_more_tables() -> None:
    tried = [_t("apc_rpdu", 2), _t("apc_rpdu2", 1), _t("apc_epdu", 0)]
    assert choose(tried, PROFILES) == "apc_rpdu2"
    assert "superseded" in tried[0].why


def test_legacy_alone_is_legacy() -> None:
    assert choose([_t("apc_rpdu", 2), _t("apc_rpdu2", 0), _t("apc_epdu", 0)], PROFILES) == "apc_rpdu"


def test_most_answering_probes_win_then_longer_prefix_then_vendor_over_standard() -> None:
    assert choose([_t("apc_epdu", 1), _t("apc_cpdu", 3)], PROFILES) == "apc_cpdu"
    assert choose([_t("apc_ups", 1, prefix_len=18), _t("apc_cpdu", 1, prefix_len=22)], PROFILES) == "apc_cpdu"
    assert choose([_t("apc_ups", 1, prefix_len=18), _t("ups_mib", 1, STD)], PROFILES) == "apc_ups"
    assert choose([_t("apc_ups", 0), _t("ups_mib", 1, STD)], PROFILES) == "ups_mib"


def test_switch_profile_never_claims_a_power_vendors_device() -> None:
    # an APC unit no APC profile reads answers IF-MIB: refused, not polled as a switch
    assert choose([_t("apc_rpdu2", 0, "same vendor (1.3.6.1.4.1.318)"), _t("if_mib", 1, STD)], PROFILES) is None
    # an unknown vendor's device answering only IF-MIB is a switch; UPS-MIB beats IF-MIB
    assert choose([_t("if_mib", 1, STD), _t("ups_mib", 0, STD)], PROFILES) == "if_mib"
    assert choose([_t("if_mib", 1, STD), _t("ups_mib", 1, STD)], PROFILES) == "ups_mib"


def test_refusal_names_what_was_seen_and_tried() -> None:
    det = Detection("pdu7", "1.3.6.1.4.1.318.1.1.32.1", "apcpdu", [_t("apc_rpdu2", 0)])
    msg = det.refusal()
    assert "1.3.6.1.4.1.318.1.1.32.1" in msg and "'apcpdu'" in msg and "apc_rpdu2" in msg and "0/6" in msg
    assert any("no profile can read" in line for line in det.lines())
