"""Model bundle: the one versioned directory that batch inference, MLflow and the service share.

The training pipeline's register step writes a bundle only for a recommender that passed the quality gate,
logs the same directory to MLflow and registers it; batch inference and the BentoML service read it back
with `load_bundle`. Layout:

    <bundle>/recommender/   whatever `Recommender.save(path)` writes (towers, index, ranker, feature tables)
    <bundle>/metrics.json   the offline figures this version was promoted on
    <bundle>/config.json    the configuration it was trained with
    <bundle>/bundle.json    version, created_at (UTC, ISO 8601), git_sha (when built from a git checkout)

A bundle is written under a temporary name and renamed when complete, so a crashed save never leaves a
half bundle that `latest_bundle` would pick. Where bundles are shared through a remote location
(recsys.storage: RECSYS_STATE_ROOT on a remote stack), `publish_bundle` copies a saved bundle there with
bundle.json last, and `latest_shared_bundle` finds the newest complete one there.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recsys.storage import Location

BUNDLE_FORMAT = 1
RECOMMENDER_DIR = "recommender"
META_FILE = "bundle.json"


def _json_safe(value: Any) -> Any:
    """numpy scalars / arrays, paths and tuples to plain JSON; NaN/inf to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return _json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(_json_safe(data), indent=2, sort_keys=True) + "\n")


def git_sha(directory: str | Path | None = None) -> str | None:
    """Commit of the checkout the code runs from (None outside git); "-dirty" when it has local changes."""
    cwd = Path(directory) if directory else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha or None


def save_bundle(recommender, directory: str | Path, metrics: dict, config: dict,
                version: str | None = None) -> Path:
    """Write `recommender` and its metrics/config as one bundle at `directory` (which must not exist yet).

    `version` defaults to `recommender.version` when set, else the directory name; it is what the service
    reports as the model version.
    """
    directory = Path(directory)
    if directory.exists():
        raise FileExistsError(f"bundle directory {directory} already exists; bundles are immutable")
    version = version or getattr(recommender, "version", None) or directory.name
    partial = directory.with_name(f".{directory.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        recommender.save(partial / RECOMMENDER_DIR)
        _write_json(partial / "metrics.json", metrics)
        _write_json(partial / "config.json", config)
        _write_json(partial / META_FILE, {
            "version": str(version),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git_sha": git_sha(),
            "format": BUNDLE_FORMAT,
            "recommender_class": f"{type(recommender).__module__}.{type(recommender).__qualname__}",
        })
        partial.rename(directory)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return directory


def read_bundle_meta(directory: str | Path) -> dict:
    """bundle.json plus metrics and config of a bundle, without loading the model."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{directory} is not a model bundle: {META_FILE} is missing")
    meta = json.loads(meta_path.read_text())
    for name in ("metrics", "config"):
        path = directory / f"{name}.json"
        meta[name] = json.loads(path.read_text()) if path.is_file() else {}
    meta["path"] = str(directory.resolve())
    return meta


def load_bundle(directory: str | Path, recommender_cls=None):
    """(Recommender, meta) from a bundle; meta is `read_bundle_meta`. The loaded object's `version` is the
    bundle's. `recommender_cls` defaults to `recsys.serving.recommender.Recommender`."""
    meta = read_bundle_meta(directory)
    if recommender_cls is None:
        from recsys.serving.recommender import Recommender as recommender_cls
    recommender = recommender_cls.load(Path(directory) / RECOMMENDER_DIR)
    recommender.version = meta["version"]
    return recommender, meta


def latest_bundle(root: str | Path) -> Path:
    """The most recently created complete bundle under `root` (hidden and partial directories skipped)."""
    root = Path(root)
    bundles = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
               and (p / META_FILE).is_file()] if root.is_dir() else []
    if not bundles:
        raise FileNotFoundError(f"no model bundle under {root}")
    return max(bundles, key=lambda p: (read_bundle_meta(p)["created_at"], p.name))


def publish_bundle(bundle: Location) -> str:
    """Copy the bundle saved at `bundle.local` to `bundle.shared` (nothing to do when they are one path).
    bundle.json goes last, so a reader never takes a half-copied bundle for a complete one."""
    if not bundle.mirrored:
        return bundle.shared
    if bundle.exists():
        raise FileExistsError(f"bundle {bundle.shared} already exists; bundles are immutable")
    for entry in sorted(bundle.local.iterdir(), key=lambda p: p.name == META_FILE):
        bundle.child(entry.name).push()
    return bundle.shared


def latest_shared_bundle(root: Location) -> Location:
    """`latest_bundle` of the shared location `root` (a model's bundles directory), as a Location whose
    `pull()` brings it into the local copy."""
    if not root.mirrored:
        path = latest_bundle(root.local)
        return Location(path, str(path))
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(root.shared)
    names = [entry["name"].rstrip("/").rsplit("/", 1)[-1] for entry in
             (fs.ls(path, detail=True) if fs.isdir(path) else []) if entry["type"] == "directory"]
    complete = {name: json.loads(fs.cat_file(f"{path.rstrip('/')}/{name}/{META_FILE}")) for name in names
                if not name.startswith((".", "_")) and fs.exists(f"{path.rstrip('/')}/{name}/{META_FILE}")}
    if not complete:
        raise FileNotFoundError(f"no model bundle under {root.shared}")
    return root.child(max(complete, key=lambda name: (complete[name]["created_at"], name)))
