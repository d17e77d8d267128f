"""The project's own exception hierarchy; third-party errors are translated into it at each boundary.

    DcimError
    ├── ConfigError            bad site/component configuration (names file, path, expectation)
    │   └── SecretError        a secret's environment variable or file is missing or unreadable
    ├── SchemaError            a record that does not fit the schema (unknown measurement/field, wrong type)
    ├── LineProtocolError      line protocol that cannot be encoded or decoded (names line and column)
    ├── DeviceError            a device (GPU, PDU, CDU) could not be read
    │   ├── DeviceTimeout      no answer within the timeout
    │   └── DeviceAuthError    the device refused our credentials
    ├── SinkError              a write to a store failed
    │   ├── SinkRejected       the store refused the data for good (400/422): dead-letter, don't retry
    │   └── SinkUnavailable    the store is away or busy (network, 5xx, 429): retry or spool
    ├── RuleError              an alert rule file is invalid (names file, rule, field)
    └── RecordingError         a recording file is truncated or malformed (names line)

Third-party exceptions are chained with ``raise ... from exc`` so the cause stays visible.
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


class DeviceError(DcimError):
    """A device could not be read."""

    def __init__(self, message: str, *, device: str | None = None) -> None:
        self.device = device
        super().__init__(f"{device}: {message}" if device else message)


class DeviceTimeout(DeviceError):
    """A device did not answer in time."""


class DeviceAuthError(DeviceError):
    """A device refused our credentials."""


class SinkError(DcimError):
    """A write to a store failed."""

    def __init__(self, message: str, *, status: int | None = None, retry_after_s: float | None = None) -> None:
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(message)


class SinkRejected(SinkError):
    """The store refused the data permanently (bad lines); retrying cannot help."""


class SinkUnavailable(SinkError):
    """The store is unreachable, overloaded or failing; the data must be retried or spooled."""


class RuleError(DcimError):
    """An alert rule file that cannot be used; the message names file, rule and field."""

    def __init__(self, message: str, *, file: str | None = None, rule: str | None = None,
                 field: str | None = None) -> None:
        self.file = file
        self.rule = rule
        self.field = field
        parts = [p for p in (file, f"rule {rule!r}" if rule else None, field) if p]
        super().__init__(": ".join([*parts, message]))


class RecordingError(DcimError):
    """A recording that is truncated or malformed."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.file = file
        self.line = line
        where = file or ""
        if line is not None:
            where += f" line {line}" if where else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message)
