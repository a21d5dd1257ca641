"""Turn chDB's ``JSONCompact`` output into the Python values clickhouse-driver returns.

chDB hands results back as text, so the column types in the result's ``meta`` decide how each
value is read. Matching clickhouse-driver exactly (aware datetimes, ``uuid.UUID``, ints for 64-bit
integers, Float32 widened from single precision) is what lets one test suite and one query layer
serve both backends.

>>> decode_value("Array(Nullable(Float32))", [0.1, None])
[0.10000000149011612, None]
>>> decode_value("DateTime('UTC')", "2026-12-01 20:00:05")
datetime.datetime(2026, 12, 1, 20, 0, 5, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["decode_value", "decoder_for"]

Decoder = Callable[[Any], Any]
_WIDE_INTS = {"Int64", "UInt64", "Int128", "UInt128", "Int256", "UInt256"}
_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _identity(value: Any) -> Any:
    return value


def _float32(value: Any) -> float:
    # float("nan") / float("inf") also read the quoted denormals chDB writes
    number = float(value)
    return float(struct.unpack("f", struct.pack("f", number))[0])


def _zone(name: str) -> tzinfo:
    return UTC if name == "UTC" else ZoneInfo(name)


def _datetime(zone: tzinfo | None) -> Decoder:
    def read(value: Any) -> datetime:
        parsed = datetime.strptime(value, _DATETIME_FORMAT)
        return parsed if zone is None else parsed.replace(tzinfo=zone)

    return read


def _inner(type_name: str, wrapper: str) -> str | None:
    prefix = wrapper + "("
    if type_name.startswith(prefix) and type_name.endswith(")"):
        return type_name[len(prefix):-1]
    return None


@lru_cache(maxsize=256)
def decoder_for(type_name: str) -> Decoder:
    """The function reading one JSON value of ClickHouse type ``type_name``.

    Tuples come back as Python tuples of their JSON values; nothing in our schema returns them.
    """
    if (inner := _inner(type_name, "Nullable")) is not None:
        read = decoder_for(inner)
        return lambda value: None if value is None else read(value)
    if (inner := _inner(type_name, "LowCardinality")) is not None:
        return decoder_for(inner)
    if (inner := _inner(type_name, "Array")) is not None:
        read = decoder_for(inner)
        return lambda value: [read(item) for item in value]
    if type_name.startswith("Tuple("):
        return tuple
    if type_name == "DateTime":
        return _datetime(None)
    if (inner := _inner(type_name, "DateTime")) is not None:
        return _datetime(_zone(inner.strip("'")))
    if type_name == "Date":
        return date.fromisoformat
    if type_name == "UUID":
        return uuid.UUID
    if type_name == "Float32":
        return _float32
    if type_name == "Float64":
        return float
    if type_name in _WIDE_INTS:
        return int
    if type_name == "Bool":
        return bool
    return _identity


def decode_value(type_name: str, value: Any) -> Any:
    """One JSON value of ClickHouse type ``type_name`` as clickhouse-driver would return it."""
    return decoder_for(type_name)(value)
