"""Start `bentoml serve` as a child process on a free loopback port, wait until ready, stop it.

Used by the service tests (tests/bentos/) and benchmarks/serving.py, which drive the real server over HTTP
exactly as a user runs it. Only the process this object started is ever signalled.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bentos.settings import PROJECT_ROOT

SERVICE = "bentos.service:RecommenderService"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _signal(processes: list, how: str, timeout: float) -> list:
    """Call `how` (terminate | kill) on each psutil process, wait up to `timeout`; returns those still alive."""
    import psutil

    for process in processes:
        try:
            getattr(process, how)()
        except psutil.NoSuchProcess:
            pass
    return psutil.wait_procs(processes, timeout=timeout)[1]


class BentoServer:
    def __init__(self, env: dict[str, str | None], log_path: str | Path, service: str = SERVICE,
                 port: int | None = None, args: tuple[str, ...] = (), root: str | Path | None = None):
        self.port = port or free_port()
        self.root = Path(root or PROJECT_ROOT)  # the checkout whose code it serves (a benchmark's baseline)
        self.url = f"http://127.0.0.1:{self.port}"
        # A None value removes the variable (e.g. RECSYS_MODEL, so that a bento serves its own `in_bento` model).
        self.env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
        self.log_path, self.service, self.args = Path(log_path), service, args
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> BentoServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        # Own session: nothing the test runner gets (e.g. Ctrl-C) reaches it; stop() signals its tree.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", self.service, "--host", "127.0.0.1",
             "--port", str(self.port), *self.args],
            cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {self.process.returncode}: {self.tail()}")
            if self.status("/readyz") == 200:
                return self
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"bentoml serve not ready after {timeout}s: {self.tail()}")

    def status(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def pid_tree_rss(self) -> int:
        """Resident memory (bytes) of the server's processes (arbiter + workers)."""
        return sum(p.memory_info().rss for p in self.tree())

    def tree(self) -> list:
        """The arbiter and its workers (psutil processes). BentoML starts each worker in its own session, so
        the arbiter's process group does not hold them: signals go to every process of the tree."""
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the arbiter and every worker at once (a crash of the whole service, as a pod kill)."""
        _signal(self.tree(), "kill", timeout=10)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None:
            return
        alive = _signal(self.tree(), "terminate", timeout=20)
        _signal(alive, "kill", timeout=10)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def __enter__(self) -> BentoServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
