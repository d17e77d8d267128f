"""Node agents: GPU (NVML) and SNMP (PDUs, CDUs, switches)."""
