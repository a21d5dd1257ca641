"""The committed deploy files equal what the code renders now (migrations, topics, dashboard)."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from consumers.store.migrations import MIGRATIONS, Migration
from deploy.ddl import UntranslatableMigration, schema_tables, single_node_sql
from deploy.generate import DEPLOY, stale_files
from deploy.topics import topic_init_script
from schemas.topics import TOPICS


def test_generated_files_are_current() -> None:
    stale = [str(path.relative_to(DEPLOY)) for path in stale_files()]
    assert stale == [], f"run `python -m deploy.generate`: stale {stale}"


def test_schema_covers_every_migration_table() -> None:
    from consumers.store.migrations import TABLES

    names = [table.name for table in schema_tables()]
    assert names == ["schema_migrations", *TABLES]


def test_a_migration_the_renderer_cannot_translate_fails_loudly() -> None:
    odd = (*MIGRATIONS, Migration(99, "a view", ("CREATE MATERIALIZED VIEW v AS SELECT 1",)))
    with pytest.raises(UntranslatableMigration, match="CREATE TABLE"):
        single_node_sql(migrations=odd)


def _create_calls(script: str) -> dict[str, tuple[int, dict[str, str]]]:
    calls: dict[str, tuple[int, dict[str, str]]] = {}
    for line in script.splitlines():
        if not line.startswith("create "):
            continue
        words = shlex.split(line)
        name, partitions, rest = words[1], int(words[2]), words[3:]
        assert rest[::2] == ["--config"] * (len(rest) // 2), line
        configs = dict(item.split("=", 1) for item in rest[1::2])
        calls[name] = (partitions, configs)
    return calls


def test_topic_script_creates_every_registry_topic_as_declared() -> None:
    script = (DEPLOY / "kafka" / "create-topics.sh").read_text()
    expected = {t.name: (t.partitions, dict(t.config)) for t in TOPICS.values()}
    assert _create_calls(script) == expected
    assert script == topic_init_script()


def test_topic_script_is_valid_posix_shell() -> None:
    result = subprocess.run(["sh", "-n", str(DEPLOY / "kafka" / "create-topics.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
