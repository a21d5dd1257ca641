"""Parameter binding: every Python value becomes the literal both ClickHouse versions read back."""

from __future__ import annotations

import doctest
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from consumers.store import sql
from consumers.store.errors import StoreQueryError
from consumers.store.sql import identifier, literal, render


def test_module_examples() -> None:
    assert doctest.testmod(sql).failed == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "NULL"),
        (True, "1"),
        (False, "0"),
        (-7, "-7"),
        (0.25, "0.25"),
        (float("nan"), "nan"),
        (float("-inf"), "-inf"),
        ("plain", "'plain'"),
        ("a'b\\c\nd\te\0", "'a\\'b\\\\c\\nd\\te\\0'"),
        (uuid.UUID(int=1), "toUUID('00000000-0000-0000-0000-000000000001')"),
        (date(2026, 1, 2), "toDate('2026-01-02')"),
        (["a", 1, None], "['a', 1, NULL]"),
        (("a", "b"), "('a', 'b')"),
    ],
)
def test_literals(value: object, expected: str) -> None:
    assert literal(value) == expected


def test_datetimes_are_rendered_in_utc_whatever_their_zone() -> None:
    berlin = timezone(timedelta(hours=1))
    assert literal(datetime(2026, 1, 1, 13, 0, 5, tzinfo=berlin)) == "toDateTime('2026-01-01 12:00:05', 'UTC')"
    assert literal(datetime(2026, 1, 1, 12, 0, 5)) == literal(datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC))


def test_render_leaves_sql_without_parameters_alone() -> None:
    assert render("SELECT '100%'", None) == "SELECT '100%'"
    assert render("SELECT '100%%', %(x)s", {"x": 1}) == "SELECT '100%', 1"


@pytest.mark.parametrize(
    ("sql_text", "params", "message"),
    [
        ("SELECT %(missing)s", {}, "not given"),
        ("SELECT %(x)s", {"x": object()}, "cannot bind"),
        ("SELECT %(x)s", {"x": ()}, "empty tuple"),
        ("SELECT %(x)d", {"x": 1}, "cannot bind"),
    ],
)
def test_render_errors_say_what_is_wrong(sql_text: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(StoreQueryError, match=message):
        render(sql_text, params)


def test_identifiers_cannot_carry_sql() -> None:
    assert identifier("drift_events") == "drift_events"
    for bad in ("images; DROP TABLE x", "a-b", "1abc", ""):
        with pytest.raises(StoreQueryError):
            identifier(bad)
