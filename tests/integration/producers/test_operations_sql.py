"""Every SQL example in docs/operations.md runs on both store backends, so the examples stay true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from consumers.store import Store

DOC = Path(__file__).resolve().parents[3] / "docs" / "operations.md"
EXAMPLES = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_page_has_examples() -> None:
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("sql", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_example_runs(store: Store, sql: str) -> None:
    assert isinstance(store.query(sql), list)
