"""SNMP poller for rack PDUs, coolant units, UPSes and switches; vendor profiles are data files."""
