"""Errors are sorted by whether waiting helps: that is all a sink needs to know."""

from __future__ import annotations

import pytest

from consumers.store.errors import (
    AUTHENTICATION_CODES,
    BACKPRESSURE_CODES,
    StoreAuthenticationError,
    StoreError,
    StoreQueryError,
    StoreReadOnly,
    StoreUnavailable,
    error_from_server,
)


@pytest.mark.parametrize("code", sorted(BACKPRESSURE_CODES))
def test_overload_and_network_codes_mean_retry_later(code: int) -> None:
    error = error_from_server("busy", code=code, retry_after=2.5)
    assert isinstance(error, StoreUnavailable)
    assert error.retry_after == 2.5
    assert error.code == code


def test_the_code_is_read_from_the_message_when_the_client_has_none() -> None:
    error = error_from_server("Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)",
                              code=None, retry_after=1.0)
    assert isinstance(error, StoreUnavailable)
    assert error.code == 252


def test_readonly_refusals_are_their_own_kind() -> None:
    error = error_from_server("DB::Exception: Cannot insert into table in readonly mode", code=164, retry_after=1)
    assert isinstance(error, StoreReadOnly)
    assert "read-only" in str(error)


def test_other_errors_are_query_errors_without_the_stack_trace() -> None:
    message = "DB::Exception: Table default.x doesn't exist. Stack trace:\n\n0. libclickhouse.so ..."
    error = error_from_server(message, code=60, retry_after=1)
    assert type(error) is StoreQueryError
    assert str(error) == "Code: 60. DB::Exception: Table default.x doesn't exist."
    assert isinstance(error, StoreError)


def test_unknown_errors_without_a_code_are_query_errors() -> None:
    error = error_from_server("something odd", code=None, retry_after=1)
    assert type(error) is StoreQueryError
    assert error.code is None


@pytest.mark.parametrize("code", sorted(AUTHENTICATION_CODES))
def test_refused_credentials_mean_wait_and_fix_not_dead_letter(code: int) -> None:
    error = error_from_server("DB::Exception: Wrong password for user default.", code=code, retry_after=4)
    assert isinstance(error, StoreAuthenticationError) and isinstance(error, StoreUnavailable)
    assert error.retry_after == 4
    assert "DRIFTSCOPE_CLICKHOUSE_URL" in str(error)
