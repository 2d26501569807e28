"""Feast plumbing: open the project's feature repo, apply it, materialize it; what steps and providers call.

The repo is feature_repo/ (entities, sources, views, services; one feature_store.yaml per environment).
Everything here does what the Feast CLI does inside that directory, so `feast apply` /
`feast materialize-incremental` by hand and the pipeline's steps leave the same registry and online store:

    cd feature_repo && feast apply && feast materialize-incremental 2025-07-01T00:00:00
    cd feature_repo && RECSYS_REDIS=localhost:6379 feast -f feature_store_redis.yaml apply

The store's files (the offline tables under data/features, the registry and sqlite online store under
data/feast) are state shared between pipeline steps: `state_locations` names them, and `pull_state` /
`push_state` keep a step's working copy in step with the shared one when that lives elsewhere
(recsys.storage: RECSYS_STATE_ROOT on a remote stack; no copying on the local one).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from recsys.features.definitions import BATCH_VIEWS, SNAPSHOT_SECONDS, features_dir
from recsys.progress import Bar
from recsys.storage import Location, is_url, locate, state_root

log = logging.getLogger(__name__)
DEFAULT_YAML = "feature_store.yaml"
_UNSET = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def store_yaml(repo_path: str | Path, fs_yaml: str = DEFAULT_YAML) -> Path:
    """The environment's feature_store.yaml; a clear error for a missing file or an unset ${VARIABLE}
    (Feast substitutes environment variables and would leave an unset one in place, failing later)."""
    path = Path(repo_path) / fs_yaml
    if not path.is_file():
        raise FileNotFoundError(f"no Feast config {path} (the feature repo is feature_repo/ at the project root)")
    expanded = [line.split("#", 1)[0] for line in os.path.expandvars(path.read_text()).splitlines()]
    unset = sorted({a or b for line in expanded for a, b in _UNSET.findall(line)})
    if unset:
        raise RuntimeError(f"{path.name} needs the environment variable(s) {unset} (see docs/features.md)")
    return path


def state_locations(repo_path: str | Path, fs_yaml: str = DEFAULT_YAML) -> dict[str, Location]:
    """The environment's shared files: "features" (the batch job's tables, which the registry's file
    sources point at) and "feast" (the directory of the file registry and, with sqlite, the online store).
    Paths are the ones Feast resolves (relative to the repo), shared as recsys.storage.locate says with the
    repo's parent as the project directory; a registry or online store behind a URL or a server (Redis) is
    shared already and not listed."""
    repo = Path(repo_path).resolve()
    config = yaml.safe_load(os.path.expandvars(store_yaml(repo, fs_yaml).read_text())) or {}
    registry = config.get("registry", "data/registry.db")
    files = [registry.get("path") if isinstance(registry, dict) else registry]
    online = config.get("online_store") or {}
    if isinstance(online, dict) and online.get("type", "sqlite") == "sqlite":
        files.append(online.get("path", "data/online_store.db"))
    dirs = {(repo / f).resolve().parent for f in files if f and not is_url(f)}
    if len(dirs) > 1:
        raise ValueError(f"{fs_yaml}: keep the registry and the sqlite online store in one directory, got {dirs}")
    locations = {"features": locate(features_dir(repo), repo.parent)}
    if dirs:
        locations["feast"] = locate(dirs.pop(), repo.parent)
    return locations


def pull_state(repo_path: str | Path, fs_yaml: str = DEFAULT_YAML, which=("features", "feast")) -> None:
    """Bring the working copy of the store's shared files up to date before reading them."""
    if state_root() is None:  # the files are used in place: nothing to read or copy
        return
    for name, location in state_locations(repo_path, fs_yaml).items():
        if name in which and location.mirrored:
            log.info("pulling %s from %s", location.local, location.shared)
            location.pull()


def push_state(repo_path: str | Path, fs_yaml: str = DEFAULT_YAML, which=("features", "feast")) -> None:
    """Publish the working copy of the store's files the caller wrote (e.g. the registry after apply)."""
    if state_root() is None:
        return
    for name, location in state_locations(repo_path, fs_yaml).items():
        if name in which and location.mirrored:
            log.info("pushing %s to %s", location.local, location.shared)
            location.push()


def open_store(repo_path: str | Path, fs_yaml: str = DEFAULT_YAML):
    """A feast.FeatureStore over the repo's registry, offline store and the environment's online store."""
    from feast import FeatureStore

    path = store_yaml(repo_path, fs_yaml)
    return FeatureStore(repo_path=str(Path(repo_path).resolve()), fs_yaml_file=path.resolve())


@contextlib.contextmanager
def _inside_repo(repo_path: Path):
    """Feast imports the repo's .py files as top-level modules named relative to the working directory (as
    the CLI does after `cd feature_repo`): run there, with the repo importable, and forget those modules
    afterwards so that another repo (or a changed one) is imported afresh."""
    names = {p.stem for p in repo_path.glob("*.py")}
    cwd, path = os.getcwd(), list(sys.path)
    for name in names:
        sys.modules.pop(name, None)
    sys.path.insert(0, str(repo_path))
    try:
        os.chdir(repo_path)
        yield
    finally:
        os.chdir(cwd)
        sys.path[:] = path
        for name in names:
            sys.modules.pop(name, None)


def apply_repo(repo_path: str | Path, fs_yaml: str = DEFAULT_YAML) -> list[str]:
    """`feast apply` for the environment: register the repo's objects and create the online tables.
    Returns the names of the feature views now registered."""
    from feast.repo_config import load_repo_config
    from feast.repo_operations import apply_total

    repo = Path(repo_path).resolve()
    config = load_repo_config(repo, store_yaml(repo, fs_yaml).resolve())
    with _inside_repo(repo), _feast_output("feast apply"):
        apply_total(config, repo, skip_source_validation=False)
    store = open_store(repo, fs_yaml)
    return sorted(view.name for view in store.list_feature_views())


def latest_snapshot(features_dir: str | Path) -> datetime | None:
    """The newest snapshot the batch views hold (the data's "now"), from the date partitions on disk."""
    dates = [p.name.split("=", 1)[1] for view in BATCH_VIEWS for p in (Path(features_dir) / view).glob("date=*")]
    if not dates:
        return None
    return datetime.fromisoformat(max(dates)).replace(tzinfo=timezone.utc)


def materialize(store, end: datetime, views=BATCH_VIEWS, lookback: timedelta | None = None) -> dict:
    """Load the batch views' latest rows up to `end` into the online store.

    Rows older than one snapshot period at `end` belong to entities idle for the longest window; the online
    freshness check would drop them anyway, so the window starts there (`lookback`). A first run in a fresh
    online store and a later one do the same thing; Feast records the interval, so `feast
    materialize-incremental` continues from `end`."""
    end = end.astimezone(timezone.utc)
    start = end - (lookback or timedelta(seconds=SNAPSHOT_SECONDS))
    with Bar(len(views), "materialize", "view") as progress:
        for view in views:  # one at a time: a bar that moves, instead of Feast's own (captured with its prints)
            with _feast_output(f"feast materialize {view}"):
                store.materialize(start_date=start, end_date=end, feature_views=[view])
            progress.update()
    return {"start": start.isoformat(), "end": end.isoformat(), "views": list(views)}


@contextlib.contextmanager
def _feast_output(what: str):
    """Feast's CLI functions print what they do (every object applied, with a protobuf diff of each changed
    source: hundreds of lines; materialization progress bars): keep it out of the run's output and log it
    at DEBUG instead. Exceptions pass through untouched."""
    held = io.StringIO()
    try:
        with contextlib.redirect_stdout(held), contextlib.redirect_stderr(held):
            yield
    finally:
        if held.getvalue().strip():
            log.debug("%s printed:\n%s", what, held.getvalue().rstrip())
