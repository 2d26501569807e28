"""Test helpers (also used by benchmarks/features.py): a copy of feature_repo/ in a temp project, its
offline tables, a real redis-server.

The copy keeps the repo's relative layout (<root>/feature_repo, <root>/data/features, <root>/data/feast), so
the project's own data/ is never touched and each test module has its own registry and online store.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd

from bentos.devserver import free_port  # noqa: F401 - also imported from here by the tests
from recsys.features.definitions import FeatureSpec, features_dir
from recsys.features.job import run_feature_job

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def copy_repo(root: Path) -> Path:
    """feature_repo/ (definitions and every environment's feature_store*.yaml) copied under `root`."""
    repo = Path(root) / "feature_repo"
    repo.mkdir(parents=True)
    for path in (PROJECT_ROOT / "feature_repo").iterdir():
        if path.is_file() and (path.suffix in (".py", ".yaml") or path.name == ".feastignore"):
            shutil.copy(path, repo / path.name)
    return repo


def write_features(repo: Path, interactions: pd.DataFrame, items: pd.DataFrame, spec: dict | None = None) -> dict:
    """The feature job's tables (DuckDB engine) where the repo's file sources read them; returns the summary."""
    return run_feature_job(interactions, items, features_dir(repo), FeatureSpec.from_dict(spec or {}), "duckdb")


class RedisServer:
    """`redis-server` (the Debian package) on a free loopback port, no persistence; stopped on exit."""

    def __init__(self):
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        self.port = free_port()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    @property
    def connection_string(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
