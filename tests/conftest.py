"""Shared fixtures: each service fixture lives in tests/fixtures/ and is loaded here."""

pytest_plugins: list[str] = [
    "tests.fixtures.broker",
    "tests.fixtures.clickhouse",
    "tests.fixtures.tls",
]
