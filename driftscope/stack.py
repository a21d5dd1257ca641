"""The embedded local stack: one process that owns a Tansu broker, the topics, the store and the blobs.

``driftscope stack up`` runs :func:`run_stack`. Everything lives under one home directory; the
running stack is described by ``<home>/stack.json`` so that any other command started with the same
home finds the broker and the store by itself (:func:`find_running_stack`, :func:`apply_running_stack`).
``<home>/stack.lock`` is held (``flock``) for the life of the stack process: it, not the state file,
decides whether a stack runs, so two ``up`` calls cannot race and a crash never leaves a stale lock.

The stack process supervises its children (:mod:`driftscope.supervisor`). Today that is the broker;
the streaming worker and the trainer join as further restartable children. The broker is not
restarted on a crash: its storage is memory, so a fresh one would have silently lost every event
and committed offset, and the operator must hear about that.
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from driftscope.kafka_admin import ensure_topics
from driftscope.settings import Settings
from driftscope.supervisor import ChildFailed, CommandProcess, Supervisor, pid_alive, wait_until
from driftscope.tansu import TansuBroker

__all__ = [
    "STATE_FILE",
    "StackAlreadyRunning",
    "StackError",
    "StackInfo",
    "apply_running_stack",
    "find_running_stack",
    "init_blob_store",
    "init_store",
    "run_stack",
    "start_detached",
    "stop_running_stack",
]

log = logging.getLogger(__name__)

STATE_FILE = "stack.json"
LOCK_FILE = "stack.lock"


class StackError(RuntimeError):
    """The stack could not be started, found or stopped."""


class StackAlreadyRunning(StackError):
    """Another stack process already owns this home directory."""


class StackInfo(BaseModel):
    """What ``<home>/stack.json`` records about a running stack."""

    model_config = ConfigDict(frozen=True)

    pid: int
    pid_start_ticks: int | None
    home: str
    bootstrap_servers: str
    clickhouse_url: str
    blob_url: str
    started_at: datetime
    children: dict[str, int]

    def public(self) -> dict[str, object]:
        """The one-line summary ``stack up --json`` prints: everything a client needs to connect."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "clickhouse_url": self.clickhouse_url,
            "blob_url": self.blob_url,
            "pid": self.pid,
        }


def state_path(home: Path) -> Path:
    return home / STATE_FILE


def _start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), to tell a live stack from a reused pid (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])  # field 22 of stat(5); fields[0] here is field 3


def _read_state(home: Path) -> StackInfo | None:
    try:
        return StackInfo.model_validate_json(state_path(home).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        log.warning("ignoring unreadable %s: %s", state_path(home), exc)
        return None


def _is_running(info: StackInfo) -> bool:
    if not pid_alive(info.pid):
        return False
    ticks = _start_ticks(info.pid)
    return info.pid_start_ticks is None or ticks is None or ticks == info.pid_start_ticks


def find_running_stack(home: Path) -> StackInfo | None:
    """The stack running with ``home``, or None; a state file left by a dead stack is removed."""
    info = _read_state(home)
    if info is None:
        if state_path(home).exists():
            state_path(home).unlink(missing_ok=True)
        return None
    if _is_running(info):
        return info
    log.info("removing stale %s (pid %d is gone)", state_path(home), info.pid)
    state_path(home).unlink(missing_ok=True)
    return None


def apply_running_stack(settings: Settings) -> Settings:
    """``settings`` with the broker and store of the stack running in its home filled in.

    Only blanks are filled: an explicitly configured broker or ClickHouse URL wins.
    """
    info = find_running_stack(settings.home)
    if info is None:
        return settings
    update: dict[str, object] = {}
    if not settings.kafka.bootstrap_servers:
        update["kafka"] = settings.kafka.model_copy(update={"bootstrap_servers": info.bootstrap_servers})
    if settings.clickhouse_url is None:
        update["clickhouse_url"] = SecretStr(info.clickhouse_url)
    if settings.blob_url is None:
        update["blob_url"] = info.blob_url
    return settings.model_copy(update=update) if update else settings


def stop_running_stack(home: Path, timeout: float = 30.0) -> StackInfo | None:
    """Stop the stack running with ``home`` (SIGTERM, SIGKILL after ``timeout``); None if none ran.

    The stack process stops its own children on SIGTERM; if it has to be killed, the children
    follow through their parent-death signal.
    """
    info = find_running_stack(home)
    if info is None:
        return None
    os.kill(info.pid, signal.SIGTERM)
    if not wait_until(lambda: not _is_running(info), timeout, interval=0.1):
        log.warning("stack pid %d still running %.0f s after SIGTERM; killing it", info.pid, timeout)
        os.kill(info.pid, signal.SIGKILL)
        wait_until(lambda: not _is_running(info), timeout, interval=0.1)
    for name, pid in info.children.items():
        if not wait_until(partial(_is_dead, pid), timeout, interval=0.1):
            raise StackError(f"{name} (pid {pid}) outlived the stack process; stop it by hand")
    state_path(home).unlink(missing_ok=True)
    return info


def loop_children(settings: Settings, bootstrap_servers: str) -> list[CommandProcess]:
    """The worker (every agent, owner of the embedded store) and the trainer, as supervised children.

    They find the broker, store and blobs through the environment, so they need no stack file;
    each counts as ready once it is consuming (the worker's status file, the trainer's ready file).
    """
    home = settings.home.resolve()
    env = {
        **os.environ,
        "DRIFTSCOPE_HOME": str(home),
        "DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
        "DRIFTSCOPE_CLICKHOUSE_URL": settings.resolved_clickhouse_url,
        "DRIFTSCOPE_BLOB_URL": settings.resolved_blob_url,
    }
    cli = [sys.executable, "-m", "driftscope"]
    worker_status = home / "workers" / "stack-worker.json"
    trainer_ready = home / "trainer.ready"

    def fresh(path: Path) -> Callable[[], bool]:
        path.unlink(missing_ok=True)  # a file left by an earlier run says nothing about this one
        return path.exists

    return [
        CommandProcess("worker", [*cli, "worker", "--name", "stack-worker", "--home", str(home)],
                       home / "worker.log", env=env, ready=fresh(worker_status)),
        CommandProcess("trainer", [*cli, "trainer", "--home", str(home), "--ready-file", str(trainer_ready)],
                       home / "trainer.log", env=env, ready=fresh(trainer_ready)),
    ]


def start_detached(home: Path, *, broker_port: int | None = None, timeout: float = 180.0,
                   workers: bool = True) -> StackInfo:
    """Run ``driftscope stack up`` as a background process of its own; return once it is ready.

    The stack outlives the caller (its own session) and is stopped with :func:`stop_running_stack`.
    Its stderr goes to ``<home>/stack.stderr``; its log to ``<home>/stack.log``.
    """
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-c", "from driftscope.cli import main; main()",
            "stack", "up", "--json", "--home", str(home)]  # fmt: skip
    if broker_port is not None:
        argv += ["--port", str(broker_port)]
    if not workers:
        argv.append("--no-workers")
    with (home / "stack.stderr").open("ab") as stderr:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True
        )
    assert proc.stdout is not None
    with proc.stdout:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else b""
    if not line:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        tail = (home / "stack.stderr").read_text(errors="replace").strip().splitlines()[-3:]
        raise StackError(f"the stack did not come up (exit code {proc.returncode}): {' | '.join(tail)}")
    info = find_running_stack(home)
    if info is None or info.pid != proc.pid:
        raise StackError(f"the stack announced itself but {state_path(home)} does not describe it")
    return info


def _is_dead(pid: int) -> bool:
    return not pid_alive(pid)


def init_store(clickhouse_url: str) -> None:
    """Create the metrics/data/model tables, then close: in embedded mode the worker owns chDB."""
    # Imported here so the CLI starts fast and only the stack pulls in chDB.
    from consumers.store import StoreError, open_store

    try:
        store = open_store(clickhouse_url)
        try:
            store.migrate()
        finally:
            store.close()
    except StoreError as exc:
        raise StackError(f"could not initialise the store at {clickhouse_url}: {exc}") from exc


def init_blob_store(blob_url: str) -> None:
    """Create the blob directory when the blob store is a local path (object stores need nothing)."""
    if blob_url.startswith("file://"):
        Path(blob_url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    elif "://" not in blob_url:
        Path(blob_url).mkdir(parents=True, exist_ok=True)


@contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with (home / LOCK_FILE).open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_state(home)
            where = f" (pid {info.pid}, kafka {info.bootstrap_servers})" if info else ""
            raise StackAlreadyRunning(
                f"a stack already runs in {home}{where}; stop it with: driftscope stack down --home {home}"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_state(info: StackInfo) -> None:
    path = state_path(Path(info.home))
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(info.model_dump_json(indent=2) + "\n")
    os.replace(tmp, path)  # atomic: readers never see half a file


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping the stack", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _child_pids(supervisor: Supervisor) -> dict[str, int]:
    return {c.name: c.pid for c in supervisor.children if c.pid is not None}


def run_stack(
    settings: Settings,
    *,
    broker_port: int | None = None,
    on_ready: Callable[[StackInfo], None] = lambda info: None,
    stop: threading.Event | None = None,
    check_interval: float = 0.5,
    workers: bool = True,
) -> None:
    """Bring the stack up, call ``on_ready``, run until SIGTERM/SIGINT (or ``stop``), tear it down.

    Raises :class:`StackAlreadyRunning` if another stack owns the home, :class:`StackError` if
    the store cannot be initialised, ``TansuError``/``TopicSetupError`` if the broker does not come
    up, and :class:`~driftscope.supervisor.ChildFailed` if a child dies for good while running.
    Must run in the main thread (signal handlers; children die with the thread that forked them).
    """
    home = settings.home.resolve()
    stop = stop or threading.Event()
    with _home_lock(home), _stop_on_signals(stop):
        state_path(home).unlink(missing_ok=True)  # we hold the lock, so any state file is stale
        supervisor = Supervisor()
        try:
            init_store(settings.resolved_clickhouse_url)
            init_blob_store(settings.resolved_blob_url)
            broker = TansuBroker(home / "tansu", broker_port)
            supervisor.start(
                broker, restart=False, on_ready=lambda: ensure_topics({"bootstrap.servers": broker.bootstrap_servers})
            )
            if workers:
                for child in loop_children(settings, broker.bootstrap_servers):
                    supervisor.start(child, restart=True, timeout=150.0)
            info = StackInfo(
                pid=os.getpid(),
                pid_start_ticks=_start_ticks(os.getpid()),
                home=str(home),
                bootstrap_servers=broker.bootstrap_servers,
                clickhouse_url=settings.resolved_clickhouse_url,
                blob_url=settings.resolved_blob_url,
                started_at=datetime.now(UTC),
                children=_child_pids(supervisor),
            )
            _write_state(info)
            on_ready(info)
            while not stop.wait(check_interval):
                supervisor.check()
                children = _child_pids(supervisor)
                if children != info.children:  # a restarted child has a new pid
                    info = info.model_copy(update={"children": children})
                    _write_state(info)
        except ChildFailed:
            log.exception("a stack process died; shutting the stack down")
            raise
        finally:
            supervisor.stop()
            state_path(home).unlink(missing_ok=True)
