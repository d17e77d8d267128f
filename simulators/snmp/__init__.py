"""Simulated SNMP devices: the hall's PDUs and CDUs in vendor MIB layouts, served on loopback UDP."""

from dcim.simulators.snmp.responder import SimulatedSnmp, V3User, serve

__all__ = ["SimulatedSnmp", "V3User", "serve"]
