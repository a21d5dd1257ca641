"""Run Debian's ``clickhouse-server`` as a plain child process on loopback.

For tests, CI and fault drills: a generated minimal config in its own directory (the 18.16 server
needs logger, listen_host, tcp/http ports, path, tmp_path, mark_cache_size and a default
profile/user/quota, nothing else), free ports picked once so the URL survives a restart, and
stop/kill/pause so outages can be staged on purpose.

Optionally the way a production server is run: the ``default`` user with a password (stored as its
SHA-256 in users.xml, never in clear) and a TLS native port (``tcp_port_secure``) serving the given
certificate and key. The plain port stays for the launcher's own readiness probe, always on
127.0.0.1 and with the same password.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

from clickhouse_driver import Client
from clickhouse_driver import errors as driver_errors

from consumers.store.errors import StoreError

__all__ = ["DEFAULT_BINARY", "ClickHouseServerMissing", "ClickHouseServerProcess", "find_server_binary"]

DEFAULT_BINARY = "/usr/sbin/clickhouse-server"

_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{root}/log/server.log</log>
        <errorlog>{root}/log/error.log</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{tcp_port}</tcp_port>
    <http_port>{http_port}</http_port>
    <path>{root}/data/</path>
    <tmp_path>{root}/tmp/</tmp_path>
    <mark_cache_size>67108864</mark_cache_size>
    <timezone>UTC</timezone>
    <users_config>{root}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>{tls}
</yandex>
"""

# The TLS native port: no client certificates asked for, no SSLv2/3, TLS 1.0/1.1 off too.
_TLS = """
    <tcp_port_secure>{tcp_port_secure}</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>{certificate}</certificateFile>
            <privateKeyFile>{private_key}</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>"""

_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles><default></default></profiles>
    <users>
        <default>
            {password}
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default></default></quotas>
</yandex>
"""


class ClickHouseServerMissing(StoreError):
    """No clickhouse-server binary here; install Debian's ``clickhouse-server`` or point at one."""


def find_server_binary(binary: str | Path | None = None) -> Path:
    """The server executable: ``binary`` if given, else ``clickhouse-server`` on PATH or in /usr/sbin."""
    candidates = [str(binary)] if binary else [shutil.which("clickhouse-server") or "", DEFAULT_BINARY]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise ClickHouseServerMissing(
        f"clickhouse-server not found (looked at {', '.join(c for c in candidates if c) or 'PATH'}); "
        "install it (apt-get install clickhouse-server) or set DRIFTSCOPE_TEST_CLICKHOUSE_URL"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the OS considers free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM the server when the launching process dies."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class ClickHouseServerProcess:
    """One clickhouse-server child with its data under ``root``; same ports across restarts."""

    def __init__(
        self,
        root: str | Path,
        *,
        binary: str | Path | None = None,
        password: str | None = None,
        certificate: str | Path | None = None,
        private_key: str | Path | None = None,
    ) -> None:
        if (certificate is None) != (private_key is None):
            raise ValueError("TLS needs both a certificate and its private key")
        self.root = Path(root).resolve()
        self.binary = find_server_binary(binary)
        self.password = password
        self.certificate = Path(certificate).resolve() if certificate is not None else None
        self.private_key = Path(private_key).resolve() if private_key is not None else None
        self.tcp_port = free_port()
        self.http_port = free_port()
        self.tcp_port_secure = free_port() if self.certificate is not None else None
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"ClickHouseServerProcess({str(self.root)!r}, tcp_port={self.tcp_port}, tls={self.tls})"

    @property
    def tls(self) -> bool:
        return self.tcp_port_secure is not None

    def _credentials(self) -> str:
        return "default" + (f":{quote(self.password, safe='')}" if self.password else "")

    @property
    def url(self) -> str:
        """The store URL for this server's ``default`` database on the plain port (with the password)."""
        return f"clickhouse://{self._credentials()}@127.0.0.1:{self.tcp_port}/default"

    @property
    def secure_url(self) -> str:
        """``clickhouses://`` on the TLS port; add ``?ca_certs=<ca.pem>`` unless the system trusts the CA."""
        if self.tcp_port_secure is None:
            raise StoreError("this server has no TLS port: start it with a certificate and private key")
        return f"clickhouses://{self._credentials()}@127.0.0.1:{self.tcp_port_secure}/default"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _write_config(self) -> Path:
        for sub in ("data", "tmp", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        tls = ""
        if self.certificate is not None and self.private_key is not None:
            tls = _TLS.format(tcp_port_secure=self.tcp_port_secure, certificate=self.certificate,
                              private_key=self.private_key)  # fmt: skip
        values = {"root": self.root, "tcp_port": self.tcp_port, "http_port": self.http_port, "tls": tls}
        password = "<password></password>"
        if self.password:
            digest = hashlib.sha256(self.password.encode()).hexdigest()
            password = f"<password_sha256_hex>{digest}</password_sha256_hex>"
        users = self.root / "users.xml"
        users.write_text(_USERS.format(password=password))
        users.chmod(0o600)
        config = self.root / "config.xml"
        config.write_text(_CONFIG.format(**values))
        return config

    def _log_tail(self, lines: int = 20) -> str:
        texts = []
        for name in ("stdout.log", "log/error.log"):
            path = self.root / name
            if path.exists():
                texts.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(texts[-lines:])

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (no-op when running) and return once it answers ``SELECT 1``."""
        if self.running:
            return
        config = self._write_config()
        with open(self.root / "stdout.log", "ab") as out:
            self._process = subprocess.Popen(
                [str(self.binary), f"--config-file={config}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                preexec_fn=_die_with_parent,
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise StoreError(f"clickhouse-server exited at start-up:\n{self._log_tail()}")
            if self._answers():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise StoreError(f"clickhouse-server did not answer within {timeout:g} s:\n{self._log_tail()}")
            time.sleep(0.2)

    def _answers(self) -> bool:
        # Probe the port with a bare socket first: the driver logs a traceback per refused connect.
        try:
            socket.create_connection(("127.0.0.1", self.tcp_port), timeout=1).close()
        except OSError:
            return False
        client = Client("127.0.0.1", port=self.tcp_port, password=self.password or "", connect_timeout=1,
                        send_receive_timeout=5)  # fmt: skip
        try:
            client.execute("SELECT 1")
            return True
        except (driver_errors.Error, EOFError, OSError):
            return False
        finally:
            client.disconnect()

    def stop(self, timeout: float = 15.0) -> None:
        """Shut down gracefully (SIGTERM), killing it if it does not exit within ``timeout``."""
        if self._process is None:
            return
        self.resume()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        """Crash the server (SIGKILL): no flush, no goodbye, as a power cut would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers, like an overload."""
        if self.running and self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        if self.running and self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGCONT)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
