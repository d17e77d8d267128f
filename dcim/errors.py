"""The project's own exception hierarchy; third-party errors are translated into it at each boundary.

Every exception class the project defines lives here (tests/dcim/test_errors.py walks the installed
modules to keep it so). Which class derives from which, who raises it and who handles it:

    DcimError
    ├── ConfigError            bad site/component configuration (names file, path, expectation);
    │                          raised wherever a configuration or a command-line value is read
    │   └── SecretError        a secret's environment variable or file is missing or unreadable (dcim.config)
    ├── SchemaError            a record that does not fit the schema (dcim.schema, dashboards.units)
    ├── MappingError           a JSON payload that does not fit its topic mapping (collector.mapping);
    │                          the collector rejects the message with the error's ``reason``
    ├── LineProtocolError      line protocol that cannot be encoded or decoded (names line and column;
    │                          dcim.lineprotocol)
    ├── BerError (ValueError)  bytes that are not a well-formed SNMP v1/v2c message (agents.snmp.ber);
    │                          the SNMP transport drops such a datagram
    ├── DeviceError            a device (GPU, PDU, CDU) could not be read (agents.gpu, agents.snmp)
    │   ├── DeviceTimeout      no answer within the timeout (agents.snmp.transport)
    │   ├── DeviceAuthError    the device refused our credentials (agents.snmp.transport)
    │   └── GpuLost            NVML answered GPU_IS_LOST mid-read (agents.gpu.reader, which catches it
    │                          and marks that GPU lost)
    ├── SinkError              a write to a store failed (collector.sinks, alerts.replay)
    │   ├── SinkRejected       the store refused the data for good (400/422): dead-letter, don't retry
    │   │   └── BatchTooLarge  the store refused the batch for its size (413): collector.route splits it
    │   └── SinkUnavailable    the store is away or busy (network, 5xx, 429): retry or spool
    ├── SpoolFull              the disk spool is at its size cap (collector.spool); collector.route keeps
    │                          the messages unacknowledged
    ├── RuleError              an alert rule file is invalid (names file, rule, field; alerts.rulefile,
    │                          alerts.ruletest)
    │   ├── FieldError (ValueError)     a rule check that knows the wrong key (alerts.rulefile, inside
    │   │                               pydantic validators, which is why it is a ValueError too)
    │   └── TemplateError (ValueError)  a label/annotation template that cannot be parsed or rendered
    │                                   (alerts.templates); at run time it renders as Prometheus's
    │                                   ``<error expanding template: ...>``
    ├── RecordingError         a recording file is truncated or malformed (names line; alerts.recording,
    │                          alerts.recording_sources)
    ├── DriverError            an action driver (Slurm, Kubernetes, webhook) could not act (alerts.actions_*);
    │                          the action runner records the action as failed
    ├── ExpandError (ValueError)  a dashboard query names an undefined variable, or a variable query
    │                          found no values (dashboards.expand)
    └── PushError              Grafana refused the upload or could not be reached (dashboards.push)

Third-party exceptions are chained with ``raise ... from exc`` so the cause stays visible; any
DcimError that reaches ``dcim`` (dcim.app.cli) prints as one ``error: ...`` line. A class marked
(ValueError) is also a ValueError for the code around it: pydantic turns a validator's ValueError
(FieldError, TemplateError) into a validation error, the BER decoder folds its parsers' ValueErrors
into BerError, and a value that does not parse (ExpandError: an interval, a variable) is a ValueError.
"""

from __future__ import annotations


class DcimError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(DcimError):
    """Configuration that cannot be used; the message names the file and the path inside it."""

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None) -> None:
        self.file = file
        self.path = path
        where = ""
        if file:
            where = f"{file}: "
        if path:
            where += f"{path}: "
        super().__init__(f"{where}{message}")


class SecretError(ConfigError):
    """A secret could not be resolved from its environment variable or file."""


class SchemaError(DcimError):
    """A record that does not match the schema."""


class MappingError(DcimError):
    """A payload that does not fit its mapping; ``reason`` is the collector's reject reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class LineProtocolError(DcimError):
    """Line protocol that cannot be encoded or decoded.

    ``line`` and ``column`` are 1-based and refer to the decoded input; both are None for
    encoder errors, which name the record instead.
    """

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None,
                 text: str | None = None) -> None:
        self.reason = message
        self.line = line
        self.column = column
        self.text = text
        where = ""
        if line is not None:
            where = f"line {line}"
            if column is not None:
                where += f", column {column}"
            where += ": "
        super().__init__(f"{where}{message}")


class BerError(DcimError, ValueError):
    """Bytes that are not a well-formed SNMP message."""


class DeviceError(DcimError):
    """A device could not be read."""

    def __init__(self, message: str, *, device: str | None = None) -> None:
        self.device = device
        super().__init__(f"{device}: {message}" if device else message)


class DeviceTimeout(DeviceError):
    """A device did not answer in time."""


class DeviceAuthError(DeviceError):
    """A device refused our credentials."""


class GpuLost(DeviceError):
    """NVML answered GPU_IS_LOST (the GPU fell off the bus, XID 79) inside a read."""

    def __init__(self, message: str = "GPU is lost (NVML_ERROR_GPU_IS_LOST)", *, device: str | None = None) -> None:
        super().__init__(message, device=device)


class SinkError(DcimError):
    """A write to a store failed."""

    def __init__(self, message: str, *, status: int | None = None, retry_after_s: float | None = None) -> None:
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(message)


class SinkRejected(SinkError):
    """The store refused the data permanently (bad lines); retrying cannot help."""


class BatchTooLarge(SinkRejected):
    """The sink refused the batch for its size (413): send it in smaller pieces."""


class SinkUnavailable(SinkError):
    """The store is unreachable, overloaded or failing; the data must be retried or spooled."""


class SpoolFull(DcimError):
    """The spool is at its size cap: the batch was not written."""


class RuleError(DcimError):
    """An alert rule file that cannot be used; the message names file, rule and field."""

    def __init__(self, message: str, *, file: str | None = None, rule: str | None = None,
                 field: str | None = None) -> None:
        self.file = file
        self.rule = rule
        self.field = field
        parts = [p for p in (file, f"rule {rule!r}" if rule else None, field) if p]
        super().__init__(": ".join([*parts, message]))


class FieldError(RuleError, ValueError):
    """A model-level rule check that knows which key of the rule is wrong.

    The message stays bare (no file/rule/field prefix): pydantic wraps it, and ``parse_rule`` turns
    the result into a RuleError that names file, rule and ``field``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class TemplateError(RuleError, ValueError):
    """A template that cannot be parsed or rendered; the message says what and where."""


class RecordingError(DcimError):
    """A recording that is truncated or malformed."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.file = file
        self.line = line
        where = file or ""
        if line is not None:
            where += f" line {line}" if where else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message)


class DriverError(DcimError):
    """A driver could not do an action; the message says what the peer answered."""


class ExpandError(DcimError, ValueError):
    """A query names a variable nobody defined, or a variable query found no values."""


class PushError(DcimError):
    """Grafana refused or could not be reached; the message says which step failed."""
