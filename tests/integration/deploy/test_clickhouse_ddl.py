"""The deploy DDL against the store's own schema, on a real ClickHouse (chDB).

The single-node init file must build exactly the tables ``migrate()`` builds and record the
migrations so ``migrate()`` has nothing left to do. The cluster file cannot run without Keeper
and a cluster, so every statement goes through ClickHouse's parser (``EXPLAIN AST``) and its
local tables, made non-replicated, must again match ``migrate()``'s columns.
"""

from __future__ import annotations

import re

import pytest

from consumers.store import Store, open_store
from consumers.store.migrations import MIGRATIONS, applied_versions
from deploy.ddl import DATABASE, RETENTION, TableDDL, cluster_sql, schema_tables, single_node_sql


def _statements(script: str) -> list[str]:
    body = "\n".join(line for line in script.splitlines() if not line.startswith("--"))
    return [part.strip() for part in body.split(";\n") if part.strip()]


def _columns(store: Store, database: str) -> dict[str, list[tuple[str, str]]]:
    rows = store.query(
        "SELECT table, name, type FROM system.columns WHERE database = %(db)s ORDER BY table, position",
        {"db": database},
    )
    tables: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        tables.setdefault(row["table"], []).append((row["name"], row["type"]))
    return tables


def _table_ddl(store: Store, database: str) -> dict[str, str]:
    rows = store.query(
        "SELECT name, engine_full FROM system.tables WHERE database = %(db)s", {"db": database}
    )
    return {row["name"]: row["engine_full"] for row in rows}


def test_single_node_sql_builds_the_migrated_schema(chdb_store: Store) -> None:
    for statement in _statements(single_node_sql()):
        chdb_store.execute(statement)
    assert _columns(chdb_store, DATABASE) == _columns(chdb_store, "default")
    migrated = _table_ddl(chdb_store, "default")
    initialised = _table_ddl(chdb_store, DATABASE)
    assert initialised == migrated  # same engines, keys, partitions and TTLs


def test_single_node_sql_leaves_migrate_nothing_to_do(chdb_url: str) -> None:
    with open_store(chdb_url) as store:
        for statement in _statements(single_node_sql(database="default")):
            store.execute(statement)
        assert applied_versions(store) == [m.version for m in MIGRATIONS]
        assert store.migrate() == []


def test_cluster_sql_parses(chdb_store: Store) -> None:
    statements = _statements(cluster_sql())
    assert len(statements) == 2 + 2 * len(schema_tables())
    for statement in statements:
        chdb_store.query(f"EXPLAIN AST {statement}")


def _single_node(statement: str) -> str:
    """A cluster CREATE as one node would run it without Keeper: no ON CLUSTER, no replication."""
    statement = statement.replace(" ON CLUSTER '{cluster}'", "")
    return re.sub(r"ENGINE = Replicated(\w+)\('[^']*', '\{replica\}'(?:, )?", r"ENGINE = \1(", statement)


def test_cluster_local_tables_match_the_migrated_columns(chdb_store: Store) -> None:
    chdb_store.execute(f"CREATE DATABASE {DATABASE}")
    is_local = re.compile(rf"CREATE TABLE IF NOT EXISTS {DATABASE}\.\w+_local ")
    local = [s for s in _statements(cluster_sql()) if is_local.match(s)]
    assert len(local) == len(schema_tables())
    for statement in local:
        chdb_store.execute(_single_node(statement))
    cluster = {name.removesuffix("_local"): cols for name, cols in _columns(chdb_store, DATABASE).items()}
    assert cluster == _columns(chdb_store, "default")
    engines = _table_ddl(chdb_store, DATABASE)
    for table, (column, days) in RETENTION.items():
        assert f"TTL {column} + toIntervalDay({days})" in engines[f"{table}_local"]
    assert "TTL failed_at + toIntervalDay(90)" in engines["dlq_local"]  # the migration's own TTL survives


@pytest.mark.parametrize("table", schema_tables(), ids=lambda t: t.name)
def test_cluster_shards_by_the_sorting_key(table: TableDDL) -> None:
    # ReplacingMergeTree only deduplicates within a shard: the shard key must be the sort key
    distributed = f"Distributed('{{cluster}}', {DATABASE}, {table.name}_local, cityHash64({', '.join(table.sort_key)}))"
    assert distributed in cluster_sql()
