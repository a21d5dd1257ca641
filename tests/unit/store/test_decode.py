"""chDB's JSON values decode to exactly what clickhouse-driver returns for the same column type."""

from __future__ import annotations

import doctest
import math
import uuid
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from consumers.store import decode
from consumers.store.decode import decode_value


def test_module_examples() -> None:
    assert doctest.testmod(decode).failed == 0


@pytest.mark.parametrize(
    ("type_name", "raw", "expected"),
    [
        ("String", "x", "x"),
        ("UInt32", 7, 7),
        ("UInt64", "18446744073709551615", 2**64 - 1),
        ("Int64", "-9223372036854775808", -(2**63)),
        ("Float64", 0.1, 0.1),
        ("Float64", "-inf", float("-inf")),
        ("Float32", 0.5, 0.5),
        ("UUID", "00000000-0000-0000-0000-000000000002", uuid.UUID(int=2)),
        ("Date", "2026-01-02", date(2026, 1, 2)),
        ("DateTime", "2026-01-02 03:04:05", datetime(2026, 1, 2, 3, 4, 5)),
        ("DateTime('UTC')", "2026-01-02 03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("DateTime('Europe/Berlin')", "2026-01-02 03:04:05",
         datetime(2026, 1, 2, 3, 4, 5, tzinfo=ZoneInfo("Europe/Berlin"))),
        ("Enum8('low' = 1, 'high' = 3)", "high", "high"),
        ("Nullable(String)", None, None),
        ("Nullable(UInt64)", "5", 5),
        ("Array(UInt64)", ["1", "2"], [1, 2]),
        ("Array(Array(Nullable(String)))", [[None, "a"], []], [[None, "a"], []]),
        ("LowCardinality(String)", "x", "x"),
        ("Tuple(UInt8, String)", [1, "a"], (1, "a")),
    ],
)
def test_values(type_name: str, raw: object, expected: object) -> None:
    assert decode_value(type_name, raw) == expected


def test_float32_is_widened_from_single_precision_like_the_driver() -> None:
    assert decode_value("Float32", 0.1) == 0.10000000149011612
    assert math.isnan(decode_value("Float32", "nan"))
