"""The one record type every sample travels as: measurement, tags, fields, timestamp in ns."""

from __future__ import annotations

from dataclasses import dataclass, field


class UInt(int):
    """An unsigned integer field value (encoded with the ``u`` suffix in line protocol)."""

    __slots__ = ()

    def __new__(cls, value: int = 0) -> UInt:
        if value < 0:
            msg = f"unsigned integer field value must not be negative, got {value}"
            raise ValueError(msg)
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return f"UInt({int(self)})"


FieldValue = float | int | bool | str


@dataclass(slots=True)
class Record:
    """One sample: a measurement with tags, fields and a timestamp in nanoseconds since the epoch.

    Tags and fields are plain dicts; the hot paths (codec, simulator, engine) avoid copying them.
    A field whose value is ``bool`` is a boolean, ``UInt`` an unsigned integer, ``int`` a signed
    integer, ``float`` a float and ``str`` a string.
    """

    measurement: str
    tags: dict[str, str] = field(default_factory=dict)
    fields: dict[str, FieldValue] = field(default_factory=dict)
    time_ns: int | None = None

    def key(self) -> tuple:
        """The series-and-time identity InfluxDB uses: a duplicate with the same key overwrites."""
        return (self.measurement, tuple(sorted(self.tags.items())), self.time_ns)

    def series(self) -> tuple:
        """The series identity: measurement and sorted tags."""
        return (self.measurement, tuple(sorted(self.tags.items())))
