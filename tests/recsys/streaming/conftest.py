"""Fixtures of the stream tests: a Feast repo copy applied to the real online stores (sqlite, and Redis on a
loopback redis-server), and events built from the contract."""

from __future__ import annotations

import os

import pytest

from recsys.features.store import apply_repo
from recsys.streaming.events import decode, encode, make_event
from recsys.streaming.state import OnlineEventStore
from tests.feature_repo.repo import RedisServer, copy_repo, write_features


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_dataset):
    repo = copy_repo(tmp_path_factory.mktemp("state"))
    write_features(repo, tiny_dataset.interactions, tiny_dataset.items)
    return repo


@pytest.fixture(scope="module")
def sqlite_store(repo):
    apply_repo(repo, "feature_store.yaml")
    return OnlineEventStore(repo, "feature_store.yaml")


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def store(request, repo):
    if request.param == "sqlite":
        apply_repo(repo, "feature_store.yaml")
        yield OnlineEventStore(repo, "feature_store.yaml")
        return
    with RedisServer() as redis:
        os.environ["RECSYS_REDIS"] = redis.connection_string
        apply_repo(repo, "feature_store_redis.yaml")
        yield OnlineEventStore(repo, "feature_store_redis.yaml")
        os.environ.pop("RECSYS_REDIS")


@pytest.fixture
def two_tower():
    """A tiny two-tower (random weights, numpy only): items a-d; user u1 was trained on a, then b."""
    import numpy as np

    from recsys.retrieval import _towers as tw
    from recsys.retrieval.two_tower import TwoTowerConfig, TwoTowerModel

    config = TwoTowerConfig(embedding_dim=8, id_embedding_dim=4, hidden_units=[6], history_length=3,
                            user_features=[], item_features=[])
    specs = {"user": [], "item": []}
    weights = tw.init_weights(config, specs, n_users=1, n_items=4)
    items = np.array(["a", "b", "c", "d"])
    embeddings = tw.tower(tw.NP, weights, "item", [], config, np.arange(1, 5), {})
    user_hist = np.array([[0, 0, 0], [0, 1, 2]], np.int32)
    return TwoTowerModel(config, specs, weights, items, np.array(["u1"]), np.array([], str), {}, user_hist,
                         items, embeddings)


def event(user: str, i: int, seconds: float, event_type: str = "click", item: str | None = None, **extra) -> dict:
    """A contract event dict with event_id f"{user}-{i}" at epoch `seconds`."""
    return make_event(user, item or f"h{i % 7}", event_type, event_id=f"{user}-{i}", **extra) | {"timestamp": seconds}


def parsed(*args, **kwargs):
    """The event as the consumer reads it (recsys.streaming.events.decode)."""
    return decode(encode(event(*args, **kwargs)))
