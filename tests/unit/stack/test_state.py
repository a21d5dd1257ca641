"""The stack's state file and lock: finding a running stack, cleaning a stale one."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from driftscope.settings import KafkaSettings, Settings
from driftscope.stack import (
    StackAlreadyRunning,
    StackInfo,
    _home_lock,
    _start_ticks,
    _write_state,
    apply_running_stack,
    find_running_stack,
    init_blob_store,
    run_stack,
)


def info_for(home: Path, pid: int, ticks: int | None) -> StackInfo:
    return StackInfo(
        pid=pid,
        pid_start_ticks=ticks,
        home=str(home),
        bootstrap_servers="127.0.0.1:19092",
        clickhouse_url=f"chdb://{home / 'chdb'}",
        blob_url=str(home / "blobs"),
        started_at=datetime.now(UTC),
        children={"tansu": pid},
    )


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_stack_is_found(tmp_path: Path) -> None:
    info = info_for(tmp_path, os.getpid(), _start_ticks(os.getpid()))
    _write_state(info)
    assert find_running_stack(tmp_path) == info


def test_a_dead_stack_is_not_found_and_its_state_file_is_removed(tmp_path: Path) -> None:
    _write_state(info_for(tmp_path, dead_pid(), None))
    assert find_running_stack(tmp_path) is None
    assert not (tmp_path / "stack.json").exists()


def test_a_reused_pid_is_not_mistaken_for_the_stack(tmp_path: Path) -> None:
    ticks = _start_ticks(os.getpid())
    if ticks is None:
        pytest.skip("no /proc: process start times are unavailable")
    _write_state(info_for(tmp_path, os.getpid(), ticks - 1))
    assert find_running_stack(tmp_path) is None


def test_an_unreadable_state_file_counts_as_no_stack(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text("{not json")
    assert find_running_stack(tmp_path) is None
    assert not (tmp_path / "stack.json").exists()


def test_no_home_means_no_stack(tmp_path: Path) -> None:
    assert find_running_stack(tmp_path / "nowhere") is None


def test_public_summary_has_exactly_the_connection_details(tmp_path: Path) -> None:
    info = info_for(tmp_path, 42, None)
    assert info.public() == {
        "bootstrap_servers": "127.0.0.1:19092",
        "clickhouse_url": f"chdb://{tmp_path / 'chdb'}",
        "blob_url": str(tmp_path / "blobs"),
        "pid": 42,
    }


def test_settings_are_filled_from_the_running_stack_but_explicit_values_win(tmp_path: Path) -> None:
    _write_state(info_for(tmp_path, os.getpid(), _start_ticks(os.getpid())))
    filled = apply_running_stack(Settings(home=tmp_path))
    assert filled.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert filled.resolved_clickhouse_url == f"chdb://{tmp_path / 'chdb'}"
    assert filled.resolved_blob_url == str(tmp_path / "blobs")

    explicit = Settings(
        home=tmp_path, kafka=KafkaSettings(bootstrap_servers="kafka:9092"), blob_url="s3://bucket/x"
    )
    kept = apply_running_stack(explicit)
    assert kept.kafka.bootstrap_servers == "kafka:9092"
    assert kept.blob_url == "s3://bucket/x"


def test_settings_without_a_stack_are_unchanged(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert apply_running_stack(settings) is settings


def test_a_second_stack_in_the_same_home_is_refused_before_starting_anything(tmp_path: Path) -> None:
    with _home_lock(tmp_path), pytest.raises(StackAlreadyRunning, match="driftscope stack down"):
        run_stack(Settings(home=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.lock"]


def test_a_local_blob_directory_is_created(tmp_path: Path) -> None:
    init_blob_store(str(tmp_path / "plain"))
    init_blob_store(f"file://{tmp_path}/url")
    assert (tmp_path / "plain").is_dir()
    assert (tmp_path / "url").is_dir()
