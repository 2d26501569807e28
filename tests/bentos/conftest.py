"""Fixtures for the service tests: real model bundles built from small synthetic data, and real
`bentoml serve` processes on free loopback ports (bentos.devserver), one per test module.

The bundles are built here with recsys.training (LightGBM ranker, no TensorFlow) in temp dirs, so the tests
never read the developer's data/. Two versions: v1 (served first) and v2 (a different ranker seed count and
re-ranking weight: another model version, for hot reload and A/B tests).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

SERVICE_DATA = {"n_users": 300, "n_items": 120, "n_events": 6000, "seed": 5}
SOURCES = {"sources": {"two_tower": None, "item_item": {"n": 40}, "co_visitation": {"n": 20}, "popular": {"n": 20}}}
RANKER = {"params": {"min_data_in_leaf": 5}, "num_rounds": 30, "early_stopping": 0, "n_seeds": 1}


@pytest.fixture(scope="session")
def service_data():
    from recsys.data.loader import load_dataset
    from recsys.data.splits import temporal_user_split

    ds = load_dataset("synthetic", SERVICE_DATA)
    return ds, temporal_user_split(ds.interactions)


@pytest.fixture(scope="session")
def bundles(service_data, tmp_path_factory):
    """{"root": dir holding v1 only (a bundle root the service serves the newest of), "v1": path, "v2": path
    (outside root; a test copies it in to promote it), "blocklist": file, "blocked": ids, "known": history
    frame}."""
    from recsys import training
    from recsys.registry.bundle import save_bundle

    ds, split = service_data
    tmp = tmp_path_factory.mktemp("bundles")
    blocklist = tmp / "blocklist.txt"
    history = pd.concat([split.train, split.valid, split.test], ignore_index=True)
    gen = training.fit_candidate_generator(split.train, split.valid, ds.items, ds.users, params=SOURCES)
    ranking, _ = training.fit_ranker(gen, split.train, split.valid, ds.items, ds.users, RANKER)
    serving = {"filters": {"blocklist_file": str(blocklist), "blocklist_check_seconds": 0.0}}
    rec = training.build_recommender(gen, ranking, ds.items, ds.users, history, {"serving": serving}, "v1")
    # Block the items the model would otherwise recommend most (so the blocked-item test can fail).
    top = rec.variant(filters={"record_impressions": False}).recommend_batch(sorted(set(history.user_id))[:100], k=5)
    blocked = list(top.item_id.value_counts().index[:3])
    blocklist.write_text("\n".join(blocked) + "\n")
    root = tmp / "root"
    root.mkdir()
    v1 = save_bundle(rec, root / "v1", {"ndcg@10": 0.1}, {"data": SERVICE_DATA}, version="v1")
    ranking2, _ = training.fit_ranker(gen, split.train, split.valid, ds.items, ds.users, {**RANKER, "n_seeds": 2})
    serving2 = {**serving, "rerank": {"mmr_weight": 0.3}}
    rec2 = training.build_recommender(gen, ranking2, ds.items, ds.users, history, {"serving": serving2}, "v2")
    v2 = save_bundle(rec2, tmp / "staging" / "v2", {"ndcg@10": 0.1}, {"data": SERVICE_DATA}, version="v2")
    return {"root": root, "v1": v1, "v2": v2, "blocklist": blocklist, "blocked": blocked, "known": history,
            "items": ds.items}


def promote(bundle: Path, root: Path, name: str) -> Path:
    """Publish a bundle under `root` the way save_bundle does: copy beside it, then one atomic rename."""
    partial = root / f".{name}.partial"
    shutil.copytree(bundle, partial)
    meta = json.loads((partial / "bundle.json").read_text())
    meta["created_at"] = "9999-01-01T00:00:00+00:00"  # newest, whatever the clock says
    (partial / "bundle.json").write_text(json.dumps(meta))
    partial.rename(root / name)
    return root / name


def server_env(tmp: Path, model: str, **extra) -> dict[str, str]:
    """Environment for a test server: everything stateful under `tmp`, nothing from the developer's data/."""
    env = {"RECSYS_MODEL": model, "BENTOML_HOME": str(tmp / "bentoml"), "RECSYS_LOG_DIR": str(tmp / "logs"),
           "RECSYS_EVENT_LOG": str(tmp / "events.jsonl"),
           "RECSYS_CACHE_DIR": str(tmp / "cache"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
           "RECSYS_RELOAD_INTERVAL": "0", "KAFKA_BOOTSTRAP_SERVERS": "", "RECSYS_EXPERIMENT": "",
           "RECSYS_TREATMENT_MODEL": "", "RECSYS_SHADOW_MODEL": "", "BENTOML_DO_NOT_TRACK": "true"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="session")
def feast_repo(tmp_path_factory, tiny_dataset):
    """An applied copy of feature_repo/ (sqlite online store): where a Kafka-mode server reads the users'
    real-time rows (`user_events_realtime`, written by the stream consumer)."""
    from recsys.features.store import apply_repo
    from tests.feature_repo.repo import copy_repo, write_features

    repo = copy_repo(tmp_path_factory.mktemp("feast"))
    write_features(repo, tiny_dataset.interactions, tiny_dataset.items)
    apply_repo(repo)
    return repo


@pytest.fixture(scope="module")
def start_server(tmp_path_factory):
    """start_server(env) -> a ready BentoServer; every server started is stopped at module end."""
    from bentos.devserver import BentoServer

    started = []

    def start(env: dict[str, str], **kwargs):
        server = BentoServer(env, tmp_path_factory.mktemp("server") / "serve.log", **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
