"""/readyz logic (ServingRuntime.ready) against a real Feast online store (sqlite, a temp copy of the repo):
ready only when the bundle is loaded and the online feature store answers its ping."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from bentos.runtime import ServingRuntime
from bentos.settings import load_settings
from tests.bentos.conftest import server_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def online_store(tmp_path_factory, tiny_dataset):
    from recsys.features.definitions import FeatureSpec, features_dir
    from recsys.features.online import OnlineFeatures
    from recsys.features.store import apply_repo, materialize, open_store
    from tests.feature_repo.repo import copy_repo, write_features

    ds = tiny_dataset
    repo = copy_repo(tmp_path_factory.mktemp("feast"))
    summary = write_features(repo, ds.interactions, ds.items)
    apply_repo(repo, "feature_store.yaml")
    materialize(open_store(repo, "feature_store.yaml"), pd.Timestamp(summary["last_snapshot"]).to_pydatetime())
    spec = FeatureSpec.read(features_dir(repo))
    items = list(ds.items.item_id.astype(str))
    broken_yaml = repo / "feature_store_broken.yaml"
    broken_yaml.write_text((repo / "feature_store.yaml").read_text().replace(
        "../data/feast/online_store.db", str(tmp_path_factory.mktemp("nowhere"))))  # a directory: unreadable
    return (OnlineFeatures(spec, repo, "feature_store.yaml", item_ids=items, clock="snapshot"),
            OnlineFeatures(spec, repo, broken_yaml.name, item_ids=items, clock="snapshot"))


def test_ready_needs_the_model_and_an_answering_online_store(bundles, online_store, tmp_path):
    settings = load_settings(environ=server_env(tmp_path, str(bundles["v1"])))
    runtime = ServingRuntime(settings)
    ready, why = runtime.ready()
    assert not ready and "not loaded" in why
    runtime.load()
    slot = runtime.slots["control"]
    assert runtime.ready() == (True, "ok") and slot.current.online is None  # no store features: none attached
    good, broken = online_store
    slot.current = dataclasses.replace(slot.current, online=good)
    assert runtime.ready() == (True, "ok")
    slot.current = dataclasses.replace(slot.current, online=broken)
    ready, why = runtime.ready()
    assert not ready and "online feature store" in why
