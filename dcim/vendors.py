"""The device vendors a site may name: one row per vendor, read by the configuration, the SNMP agent
and the simulator (a new vendor is one row here, one agent profile and one simulator layout)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Vendor:
    """One vendor's devices of one kind (the table it is a row of), as the agent reads them and the
    simulator serves them."""

    name: str
    #: the SNMP agent profile that reads the device (``agents/snmp/profiles/<profile>.yaml``); the
    #: simulated unit is auto-detected as this profile
    profile: str
    #: the MIB module the device (and its simulated layout) serves
    mib: str
    #: the model a simulated unit reports (the ``model`` tag of the hall's records, its sysDescr)
    model: str


#: rack PDUs, by the name a site's ``vendor:`` gives
PDU_VENDORS: dict[str, Vendor] = {v.name: v for v in (
    Vendor("apc", "apc_rpdu2", "PowerNet-MIB (rPDU2)", "AP8886"),
    Vendor("raritan", "raritan_pdu2", "PDU2-MIB", "PX3-5190R"),
    Vendor("servertech", "sentry4", "Sentry4-MIB", "C2WG36MS"),
    Vendor("eaton", "eaton_epdu", "EATON-EPDU-MIB", "EMAH28"),
    Vendor("cyberpower", "cyberpower_epdu2", "CPS-MIB (ePDU2)", "PDU81005"),
)}

#: coolant distribution units, by the name a loop's ``vendor:`` gives
COOLING_VENDORS: dict[str, Vendor] = {v.name: v for v in (
    Vendor("liebert", "liebert_flexible", "LIEBERT-GP-FLEXIBLE-MIB", "XDU"),
    Vendor("apc", "apc_cooling", "PowerNet-MIB (coolingUnit)", "InRow"),
)}


def pdu_vendor(name: str) -> Vendor:
    """The PDU vendor of that name; ValueError listing the known ones otherwise."""
    return _lookup(PDU_VENDORS, name, "PDU")


def cooling_vendor(name: str) -> Vendor:
    """The cooling-unit vendor of that name; ValueError listing the known ones otherwise."""
    return _lookup(COOLING_VENDORS, name, "cooling-unit")


def _lookup(table: dict[str, Vendor], name: str, what: str) -> Vendor:
    try:
        return table[name]
    except KeyError:
        msg = f"unknown {what} vendor {name!r}; known: {', '.join(sorted(table))}"
        raise ValueError(msg) from None
