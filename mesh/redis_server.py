"""A throwaway local `redis-server` (Debian's package) for the tests and the benchmark.

Started on a free loopback port (persistent only when asked), stopped (and restartable on the
same port, to test an outage) by its owner. `make test` installs the package.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from mesh.sandbox import free_port

REDIS_SERVER = "/usr/bin/redis-server"


def redis_binary() -> str | None:
    found = shutil.which("redis-server")
    return found or (REDIS_SERVER if Path(REDIS_SERVER).exists() else None)


class RedisServer:
    def __init__(self, workdir: Path, port: int | None = None, *, persistent: bool = False) -> None:
        self.port = port or free_port()
        # An append-only file synced on every write: a killed server restarts with its data.
        self._persistence = ["--appendonly", "yes", "--appendfsync", "always"] if persistent else [
            "--appendonly", "no"
        ]
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed (make test installs it)")
        self._workdir.mkdir(parents=True, exist_ok=True)
        log = (self._workdir / "redis.log").open("ab")
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *self._persistence, "--dir", str(self._workdir)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            if self._answers():
                return self
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start in time")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()  # an outage, not a shutdown: no chance to flush anything
            process.wait(timeout=10)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
