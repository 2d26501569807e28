"""Hot reload over real HTTP, on the default model source: the MLflow alias (a temp sqlite registry).
Moving the `production` alias from version 1 to 2 while clients keep calling /recommend and /feedback
swaps the served version with zero failed requests, and feedback recorded before the swap still counts
after it (the online state is carried over)."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.bentos.conftest import server_env

pytestmark = pytest.mark.slow
MODEL = "test-recommender"


@pytest.fixture(scope="module")
def registry(bundles, tmp_path_factory):
    from recsys.registry.mlflow_registry import log_run, register_bundle

    tmp = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    versions = {}
    for name, alias in (("v1", "production"), ("v2", "challenger")):
        run_id = log_run(uri, MODEL, {"bundle": name}, {"ndcg_at_10": 0.1}, artifacts_dir=bundles[name])
        versions[name] = register_bundle(uri, run_id, MODEL, alias=alias)
    return uri, versions, tmp


@pytest.fixture(scope="module")
def server(registry, start_server):
    uri, _, tmp = registry
    env = server_env(tmp, f"models:/{MODEL}@production", MLFLOW_TRACKING_URI=uri, RECSYS_RELOAD_INTERVAL="0.5")
    return start_server(env)


def test_alias_move_swaps_the_model_without_a_failed_request(server, registry, bundles):
    from recsys.registry.mlflow_registry import set_alias

    uri, versions, _ = registry
    session = requests.Session()
    booked_user, item = "cold-reload", bundles["items"].item_id.iloc[5]
    r = session.post(server.url + "/feedback", json={"user_id": booked_user, "item_id": item, "event_type": "booking"})
    assert r.status_code == 200 and r.json()["applied"] is True

    statuses, versions_seen, stop = [], [], threading.Event()
    users = list(bundles["known"].user_id.drop_duplicates()[:50]) + ["cold-a", "cold-b"]

    def client(offset):
        with requests.Session() as s:
            i = offset
            while not stop.is_set():
                r = s.post(server.url + "/recommend", json={"user_id": users[i % len(users)], "k": 10}, timeout=30)
                statuses.append(r.status_code)
                if r.status_code == 200:
                    versions_seen.append(r.json()["model_version"])
                i += 1

    threads = [threading.Thread(target=client, args=(n * 7,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        assert set(versions_seen) == {"v1"}
        set_alias(uri, MODEL, "production", versions["v2"])  # promote: the training pipeline's move
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not versions_seen or versions_seen[-1] != "v2"):
            time.sleep(0.2)
        time.sleep(2)  # keep the load on after the swap
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)

    assert len(statuses) > 50
    assert statuses.count(200) == len(statuses), f"failed requests: {[s for s in statuses if s != 200][:10]}"
    first_v2 = versions_seen.index("v2")
    assert set(versions_seen[:first_v2]) == {"v1"} and set(versions_seen[first_v2:]) == {"v2"}, \
        "once swapped, never served the old version again"

    # The booking made under v1 is part of v2's online state: the user is known and the item filtered.
    after = session.post(server.url + "/recommend", json={"user_id": booked_user, "k": 10}).json()
    assert after["model_version"] == "v2"
    assert item not in {i["item_id"] for i in after["items"]}
    assert any(i["stage"] != "cold_start" for i in after["items"])

    metrics = session.get(server.url + "/metrics").text
    assert 'recsys_model_reloads_total{result="swapped",variant="control"} 2.0' in metrics
    assert f'recsys_model_info{{source="{MODEL}/{versions["v2"]}",variant="control",version="v2"}} 1.0' in metrics
    assert f'recsys_model_info{{source="{MODEL}/{versions["v1"]}",variant="control",version="v1"}} 0.0' in metrics


def test_a_broken_promotion_keeps_serving_the_old_version(server, registry, tmp_path):
    from recsys.registry.mlflow_registry import log_run, register_bundle, set_alias

    uri, versions, _ = registry
    (tmp_path / "not-a-bundle.txt").write_text("a training run that wrote no bundle")
    run_id = log_run(uri, MODEL, {}, {}, artifacts_dir=tmp_path)
    register_bundle(uri, run_id, MODEL, alias="production")  # promoted, but unloadable
    time.sleep(3)
    r = requests.post(server.url + "/recommend", json={"user_id": "cold-x", "k": 3}, timeout=10)
    assert r.status_code == 200 and r.json()["model_version"] == "v2"
    assert server.status("/readyz") == 200
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    assert 'recsys_model_reloads_total{result="failed",variant="control"}' in metrics
    set_alias(uri, MODEL, "production", versions["v2"])
