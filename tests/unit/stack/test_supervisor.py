"""Supervised child processes, with real (tiny Python) children."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from driftscope.supervisor import (
    ChildFailed,
    CommandProcess,
    ProcessStartError,
    Supervisor,
    pid_alive,
    wait_until,
)

SLEEPER = "import time; print('up', flush=True); time.sleep(600)"


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def sleeper(tmp_path: Path, name: str = "sleeper") -> CommandProcess:
    return CommandProcess(name, python(SLEEPER), tmp_path / f"{name}.log")


def kill(child: CommandProcess) -> None:
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    assert wait_until(lambda: child.poll() is not None, 10)


def checked_and_running(supervisor: Supervisor, child: CommandProcess) -> bool:
    supervisor.check()
    return child.running


def test_command_process_logs_and_stops(tmp_path: Path) -> None:
    child = sleeper(tmp_path)
    child.start()
    pid = child.pid
    assert pid is not None and child.running
    assert wait_until(lambda: "up" in child.log_path.read_text(), 10)
    child.stop()
    assert child.poll() == -signal.SIGTERM
    assert not pid_alive(pid)


def test_stop_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ignoring', flush=True); time.sleep(600)"
    )
    child = CommandProcess("stubborn", python(code), tmp_path / "stubborn.log")
    child.start(timeout=10)
    assert wait_until(lambda: "ignoring" in child.log_path.read_text(), 10)
    child.stop(timeout=0.5)
    assert child.poll() == -signal.SIGKILL


def test_a_child_that_exits_while_starting_is_reported_with_its_code(tmp_path: Path) -> None:
    child = CommandProcess("quitter", python("raise SystemExit(3)"), tmp_path / "quitter.log",
                           ready=lambda: False)  # fmt: skip
    with pytest.raises(ProcessStartError, match="exited with code 3"):
        child.start(timeout=30)


def test_a_child_that_never_gets_ready_is_stopped(tmp_path: Path) -> None:
    child = CommandProcess("slow", python(SLEEPER), tmp_path / "slow.log", ready=lambda: False)
    with pytest.raises(ProcessStartError, match="not ready"):
        child.start(timeout=0.5)
    assert child.poll() is not None


def test_supervisor_restarts_a_crashed_child_and_reruns_on_ready(tmp_path: Path) -> None:
    child = sleeper(tmp_path, "worker")
    readied: list[int | None] = []
    supervisor = Supervisor(backoff_s=0.01)
    supervisor.start(child, on_ready=lambda: readied.append(child.pid))
    try:
        first_pid = child.pid
        kill(child)
        assert wait_until(lambda: checked_and_running(supervisor, child), 10)
        assert supervisor.restarts("worker") == 1
        assert child.pid != first_pid
        assert readied == [first_pid, child.pid]
    finally:
        supervisor.stop()
    assert child.poll() is not None


def test_supervisor_gives_up_on_a_child_that_may_not_restart(tmp_path: Path) -> None:
    child = sleeper(tmp_path, "broker")
    supervisor = Supervisor()
    supervisor.start(child, restart=False)
    try:
        kill(child)
        with pytest.raises(ChildFailed, match="broker exited with code -9"):
            supervisor.check()
    finally:
        supervisor.stop()


def test_supervisor_gives_up_on_a_crash_loop(tmp_path: Path) -> None:
    child = sleeper(tmp_path, "flaky")
    supervisor = Supervisor(backoff_s=0.01, max_restarts=2)
    supervisor.start(child)
    try:
        with pytest.raises(ChildFailed, match="flaky crashed 3 times"):
            for _ in range(3):
                kill(child)
                wait_until(lambda: checked_and_running(supervisor, child), 10)
    finally:
        supervisor.stop()


def test_supervisor_stops_children_last_started_first(tmp_path: Path) -> None:
    order = tmp_path / "order.txt"

    def recorder(name: str) -> CommandProcess:
        code = (
            "import signal, sys, time\n"
            "def bye(*_):\n"
            f"    open({str(order)!r}, 'a').write({name!r} + '\\n'); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, bye)\n"
            "print('up', flush=True)\n"
            "time.sleep(600)\n"
        )
        log = tmp_path / f"{name}.log"
        return CommandProcess(name, python(code), log, ready=lambda: log.exists() and "up" in log.read_text())

    supervisor = Supervisor()
    for name in ("broker", "worker", "trainer"):
        supervisor.start(recorder(name))
    supervisor.stop()
    assert order.read_text().split() == ["trainer", "worker", "broker"]


def test_children_die_with_a_killed_parent(tmp_path: Path) -> None:
    parent_code = (
        "import sys\nfrom pathlib import Path\nfrom driftscope.supervisor import CommandProcess\n"
        f"child = CommandProcess('c', [sys.executable, '-c', {SLEEPER!r}], Path({str(tmp_path / 'c.log')!r}))\n"
        "child.start()\nprint(child.pid, flush=True)\nimport time; time.sleep(600)\n"
    )
    parent = subprocess.Popen(python(parent_code), stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert pid_alive(child_pid)
        parent.kill()
        parent.wait(10)
        assert wait_until(lambda: not pid_alive(child_pid), 10), "child outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
