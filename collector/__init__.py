"""Collector: MQTT ingest, validation, sinks (InfluxDB v1/v2, embedded store), disk spool."""
