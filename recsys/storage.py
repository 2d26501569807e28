"""Where state that outlives one step lives: the feature tables, the Feast registry and online file, model
bundles, batch outputs. Steps hand these to each other through a *shared* location every process can reach,
never through a process's working directory (on Kubeflow each step is a fresh pod with its own disk).

    RECSYS_STATE_ROOT unset (the local stack): a relative path in a config is <project>/<path>, read and
        written in place; every step runs on this machine, so that is the shared location.
    RECSYS_STATE_ROOT=s3://bucket/recsys-state (a remote stack; stacks/kubeflow.py sets it in every pod):
        the shared copy of <path> is <root>/<path> (any fsspec URL: s3://, gs://, az://, file://, memory://).
        The code that needs plain files (Feast, DuckDB, Spark local mode, model save/load) works on a local
        working copy at <project>/<path>: `pull` before reading, `push` after writing.

A URL in a config (s3://...) is always shared; an absolute path is taken as shared as it is (a volume every
pod mounts). Copies go through fsspec, so the remote filesystem's package (s3fs, gcsfs, adlfs) must be in the
image; credentials come from the pod's environment as for any fsspec client.
Hand-written: the mirror (replace the local copy / the shared copy as a whole) because fsspec offers the
recursive get/put but no directory sync; a pull copies everything, which suits the sizes here (MBs to GBs).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

STATE_ROOT_ENV = "RECSYS_STATE_ROOT"


def state_root() -> str | None:
    """The shared root of the project's state (`RECSYS_STATE_ROOT`), or None: state lives in the project."""
    root = os.environ.get(STATE_ROOT_ENV, "").strip()
    return root.rstrip("/") or None


def is_url(path: str | Path) -> bool:
    return "://" in str(path)


def _fs(url: str):
    from fsspec.core import url_to_fs

    return url_to_fs(url)


@dataclass(frozen=True)
class Location:
    """A file or directory handed between steps: `shared` is where every step reaches it, `local` the path
    this process's code reads and writes. They are the same path unless the state root is remote."""

    local: Path
    shared: str

    @property
    def mirrored(self) -> bool:
        """Whether `local` is a working copy of `shared` (which then needs pull / push)."""
        return self.shared != str(self.local)

    def exists(self) -> bool:
        fs, path = _fs(self.shared)
        return fs.exists(path)

    def pull(self) -> Path:
        """Replace the local copy with the shared one (nothing to do when they are one). A shared location
        that does not exist yet leaves no local copy either. Returns `local`."""
        if not self.mirrored:
            return self.local
        fs, path = _fs(self.shared)
        _remove(self.local)
        if fs.isdir(path):
            self.local.mkdir(parents=True, exist_ok=True)
            fs.get(path.rstrip("/") + "/", str(self.local) + "/", recursive=True)
        elif fs.exists(path):
            self.local.parent.mkdir(parents=True, exist_ok=True)
            fs.get(path, str(self.local))
        return self.local

    def push(self) -> str:
        """Replace the shared copy with the local one (as a whole: no stale file of an older copy stays).
        Returns `shared`."""
        if not self.mirrored:
            return self.shared
        if not self.local.exists():
            raise FileNotFoundError(f"nothing to push: {self.local} does not exist")
        fs, path = _fs(self.shared)
        if fs.exists(path):
            fs.rm(path, recursive=True)
        if self.local.is_dir():
            fs.makedirs(path, exist_ok=True)
            fs.put(str(self.local) + "/", path.rstrip("/") + "/", recursive=True)
        else:
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            fs.put(str(self.local), path)
        return self.shared

    def child(self, *parts: str) -> Location:
        return Location(self.local.joinpath(*parts), "/".join([self.shared.rstrip("/"), *parts]))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def locate(path: str | Path, project_dir: str | Path | None) -> Location:
    """The Location a config's `path` names for the project at `project_dir` (see the module docstring);
    `project_dir` may be None for a URL or an absolute path (then taken as outside any project)."""
    text = str(path)
    if is_url(text):  # shared by definition; the working copy goes to a scratch directory of this process
        digest = hashlib.sha1(text.encode()).hexdigest()[:12]
        local = Path(tempfile.gettempdir()) / "recsys-state" / digest / text.rstrip("/").rsplit("/", 1)[-1]
        return Location(local, text)
    if project_dir is None and not Path(path).is_absolute():
        raise ValueError(f"a relative path ({text}) needs the project directory it starts at")
    local = (Path(path) if Path(path).is_absolute() else Path(project_dir) / path).resolve()
    root = state_root()
    if root is None or project_dir is None or not local.is_relative_to(Path(project_dir).resolve()):
        return Location(local, str(local))  # in place: this machine's project, or a path every process mounts
    relative = local.relative_to(Path(project_dir).resolve())
    shared = "/".join([root, *relative.parts]) if is_url(root) else str(Path(root).resolve().joinpath(relative))
    return Location(local, shared)
