"""dcim: telemetry for GPU data halls (shared core: records, schema, line protocol, configuration)."""

__version__ = "0.1.0"
