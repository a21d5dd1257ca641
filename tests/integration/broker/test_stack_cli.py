"""``driftscope stack up|status|down`` as an operator runs them: real subprocesses, real clients."""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftscope.stack import find_running_stack
from driftscope.supervisor import pid_alive, wait_until
from tests.fixtures.broker import roundtrip_every_topic

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def driftscope_cli() -> list[str]:
    """The installed console script, next to the interpreter running the tests."""
    script = Path(sys.executable).with_name("driftscope")
    found = str(script) if script.exists() else shutil.which("driftscope")
    assert found, "the driftscope console script is not installed (pip install -e .)"
    return [found]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*driftscope_cli(), *args], capture_output=True, text=True, timeout=120)


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """One line of the child's stdout, failing (not hanging) if it does not come."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no output from `stack up` within {timeout:.0f} s"
    return proc.stdout.readline()


@pytest.fixture
def stack_up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, dict[str, object]]]:
    """``driftscope stack up --json`` running in the background, with its one JSON line parsed."""
    home = tmp_path / "home"
    stderr = (tmp_path / "stack.stderr").open("w")
    proc = subprocess.Popen(
        [*driftscope_cli(), "stack", "up", "--json", "--no-workers", "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    try:
        line = read_line(proc, timeout=120)
        assert line, f"`stack up` exited with {proc.wait()}: {(tmp_path / 'stack.stderr').read_text()}"
        yield proc, home, json.loads(line)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        stderr.close()


def test_stack_up_serves_every_topic_and_stack_down_stops_everything(
    stack_up: tuple[subprocess.Popen[str], Path, dict[str, object]],
) -> None:
    proc, home, announced = stack_up
    assert set(announced) == {"bootstrap_servers", "clickhouse_url", "blob_url", "pid"}
    assert announced["pid"] == proc.pid
    assert announced["clickhouse_url"] == f"chdb://{home / 'chdb'}"
    assert Path(str(announced["blob_url"])).is_dir()

    info = find_running_stack(home)
    assert info is not None
    assert info.public() == announced
    broker_pid = info.children["tansu"]
    assert pid_alive(broker_pid)

    status = run_cli("stack", "status", "--json", "--home", str(home))
    assert status.returncode == 0
    assert json.loads(status.stdout)["bootstrap_servers"] == announced["bootstrap_servers"]

    second = run_cli("stack", "up", "--no-workers", "--home", str(home))
    assert second.returncode == 1
    assert "already runs" in second.stderr

    roundtrip_every_topic(str(announced["bootstrap_servers"]), per_partition=1)

    down = run_cli("stack", "down", "--home", str(home))
    assert down.returncode == 0, down.stderr
    assert proc.wait(30) == 0
    assert wait_until(lambda: not pid_alive(broker_pid), 10)
    assert not (home / "stack.json").exists()
    assert run_cli("stack", "status", "--home", str(home)).returncode == 1
    assert "no stack running" in run_cli("stack", "down", "--home", str(home)).stdout

    # The stack migrated the store and let go of it: a new process opens it and finds nothing to do.
    migrate = subprocess.run(
        [sys.executable, "-c",
         "import sys; from consumers.store import open_store; s = open_store(sys.argv[1]); "
         "print(s.migrate()); s.close()", str(announced["clickhouse_url"])],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    assert migrate.stdout.strip() == "[]"


def test_sigterm_to_the_stack_stops_its_broker(
    stack_up: tuple[subprocess.Popen[str], Path, dict[str, object]],
) -> None:
    proc, home, _ = stack_up
    info = find_running_stack(home)
    assert info is not None
    proc.terminate()
    assert proc.wait(30) == 0
    assert wait_until(lambda: not pid_alive(info.children["tansu"]), 10)
    assert find_running_stack(home) is None


def test_a_killed_stack_takes_its_broker_along_and_leaves_a_stale_state_file(
    stack_up: tuple[subprocess.Popen[str], Path, dict[str, object]],
) -> None:
    proc, home, _ = stack_up
    info = find_running_stack(home)
    assert info is not None
    proc.kill()
    proc.wait(30)
    assert (home / "stack.json").exists()
    assert wait_until(lambda: not pid_alive(info.children["tansu"]), 10), "broker outlived a SIGKILLed stack"
    assert find_running_stack(home) is None
    assert not (home / "stack.json").exists()


def test_a_detached_stack_keeps_running_after_the_command_returns(tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = run_cli("stack", "up", "--detach", "--json", "--no-workers", "--home", str(home))
    try:
        assert up.returncode == 0, up.stderr
        announced = json.loads(up.stdout)
        info = find_running_stack(home)
        assert info is not None
        assert info.public() == announced
        assert pid_alive(info.children["tansu"])
    finally:
        down = run_cli("stack", "down", "--home", str(home))
    assert down.returncode == 0, down.stderr
    assert not pid_alive(info.pid)
    assert wait_until(lambda: not pid_alive(info.children["tansu"]), 10)
