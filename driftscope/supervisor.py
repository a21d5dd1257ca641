"""Supervised child processes: the embedded stack's broker today, its worker and trainer later.

A child is anything with ``name``, ``start(timeout)`` (returns once the child is ready),
``stop(timeout)``, ``poll()`` and ``pid``. :class:`CommandProcess` runs an arbitrary command with
its output in a log file; :class:`Supervisor` starts children in order, restarts the ones that may be
restarted when they crash (with a growing back-off and a cap), and stops them in reverse order.

Children run in their own session, so a Ctrl-C in the operator's terminal reaches only the stack
process, which then stops its children in order. On Linux each child also gets its stop signal as
``PR_SET_PDEATHSIG``: if the stack process is killed outright, its children do not linger.
The kernel sends that signal when the *thread* that spawned the child ends, so start children from
a thread that lives as long as they should (the stack uses its main thread).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Protocol

__all__ = [
    "ChildFailed",
    "CommandProcess",
    "ProcessStartError",
    "Supervised",
    "Supervisor",
    "pid_alive",
    "wait_until",
]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class ProcessStartError(RuntimeError):
    """A child exited or never became ready while starting."""


class ChildFailed(RuntimeError):
    """A child crashed and may not (or may no longer) be restarted."""


class Supervised(Protocol):
    """What the supervisor needs from a child."""

    name: str

    @property
    def pid(self) -> int | None: ...

    def start(self, timeout: float = ...) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...

    def poll(self) -> int | None:
        """The exit code once the child has exited, else None (also None if never started)."""
        ...


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` names a live process (a zombie counts as dead: it only waits to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        # Field 3 is the state; the command name (field 2) may hold spaces, so split after ')'.
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _die_with_parent(sig: signal.Signals) -> None:
    """Runs in the child between fork and exec: ask the kernel for ``sig`` when the parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


class CommandProcess:
    """One command run as a child process, stdout and stderr appended to ``log_path``.

    ``ready`` is polled after the spawn until it returns True; without it the child counts as
    ready once it is running. ``stop_signal`` asks the child to exit (SIGKILL follows if it does
    not). ``start`` may be called again after the child exited (a restart).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready: Callable[[], bool] | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.stop_signal = stop_signal
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._ready = ready
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def poll(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            raise ProcessStartError(f"{self.name} is already running (pid {self.pid})")
        self._close_log()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            preexec_fn=partial(_die_with_parent, self.stop_signal) if sys.platform == "linux" else None,
        )
        if not wait_until(lambda: not self.running or self._is_ready(), timeout, interval=0.2):
            self.stop()
            raise ProcessStartError(f"{self.name} not ready after {timeout:.0f} s; see {self.log_path}")
        if not self.running:
            code = self.poll()
            self._close_log()
            raise ProcessStartError(f"{self.name} exited with code {code} while starting; see {self.log_path}")

    def _is_ready(self) -> bool:
        return self._ready is None or self._ready()

    def stop(self, timeout: float = 10.0) -> None:
        """``stop_signal``, then SIGKILL after ``timeout`` seconds; always reaps the child."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored %s for %.1f s; killing it", self.name, self.stop_signal.name, timeout)
                proc.kill()
                proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class _Entry:
    child: Supervised
    restart: bool
    on_ready: Callable[[], object] | None
    restarts: int = 0
    next_restart_at: float = 0.0
    history: list[float] = field(default_factory=list)


class Supervisor:
    """Starts children in order, restarts crashed ones, stops them in reverse order.

    A restartable child that crashes is started again after a back-off that doubles with each
    crash (``backoff_s`` up to ``max_backoff_s``); more than ``max_restarts`` crashes within
    ``window_s`` seconds, or any crash of a non-restartable child, raises :class:`ChildFailed` from
    :meth:`check` so the owner can shut everything down rather than limp along.
    """

    def __init__(
        self,
        *,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_restarts: int = 5,
        window_s: float = 300.0,
    ) -> None:
        self._entries: list[_Entry] = []
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_restarts = max_restarts
        self.window_s = window_s

    @property
    def children(self) -> list[Supervised]:
        return [e.child for e in self._entries]

    def start(
        self,
        child: Supervised,
        *,
        restart: bool = True,
        on_ready: Callable[[], object] | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Start ``child`` now (blocking until ready), run ``on_ready``, and watch it from then on.

        ``on_ready`` runs after every (re)start: for example re-creating topics on a broker
        whose memory storage came back empty.
        """
        child.start(timeout)
        self._entries.append(_Entry(child, restart, on_ready))
        if on_ready is not None:
            on_ready()

    def check(self) -> None:
        """Restart children that crashed and whose back-off has passed; call this periodically."""
        now = time.monotonic()
        for entry in self._entries:
            code = entry.child.poll()
            if code is None:
                continue
            if not entry.restart:
                raise ChildFailed(f"{entry.child.name} exited with code {code}")
            if entry.next_restart_at == 0.0:
                entry.history = [t for t in entry.history if now - t < self.window_s] + [now]
                if len(entry.history) > self.max_restarts:
                    raise ChildFailed(
                        f"{entry.child.name} crashed {len(entry.history)} times in {self.window_s:.0f} s "
                        f"(last exit code {code}); giving up"
                    )
                delay = min(self.backoff_s * 2 ** (len(entry.history) - 1), self.max_backoff_s)
                entry.next_restart_at = now + delay
                log.warning("%s exited with code %s; restarting in %.1f s", entry.child.name, code, delay)
            if now >= entry.next_restart_at:
                entry.next_restart_at = 0.0
                entry.restarts += 1
                try:
                    entry.child.start()
                except ProcessStartError as exc:
                    # Counts as one more crash on the next check, with a longer back-off.
                    log.warning("restarting %s failed: %s", entry.child.name, exc)
                    continue
                if entry.on_ready is not None:
                    entry.on_ready()

    def restarts(self, name: str) -> int:
        """How often the child called ``name`` has been restarted."""
        return next(e.restarts for e in self._entries if e.child.name == name)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every child, last started first; keep going when one fails to stop."""
        for entry in reversed(self._entries):
            try:
                entry.child.stop(timeout)
            except Exception:
                log.exception("stopping %s failed", entry.child.name)
        self._entries.clear()
