"""The online path on both online stores, with the same assertions: sqlite (the default) and Redis (a real
redis-server on a free loopback port). The repo copy is applied and materialized twice: first up to 45 days
before the data's last snapshot, then up to it, so users idle since then keep an old row in the store."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from recsys.features.definitions import ITEM_POPULARITY, USER_ACTIVITY, USER_AFFINITY, FeatureSpec, features_dir
from recsys.features.offline import read_view
from recsys.features.online import OnlineFeatures
from recsys.features.store import apply_repo, materialize, open_store
from tests.feature_repo.repo import PROJECT_ROOT, RedisServer, copy_repo, free_port, write_features

pytestmark = pytest.mark.slow
YAML = {"sqlite": "feature_store.yaml", "redis": "feature_store_redis.yaml"}
EARLY = timedelta(days=45)  # a first materialization this long before the last snapshot leaves idle users' rows


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def env(request, tmp_path_factory, tiny_dataset):
    ds = tiny_dataset
    repo = copy_repo(tmp_path_factory.mktemp(request.param))
    summary = write_features(repo, ds.interactions, ds.items)
    server, saved = None, os.environ.get("RECSYS_REDIS")
    if request.param == "redis":
        server = RedisServer()
        os.environ["RECSYS_REDIS"] = server.connection_string
    try:
        fs_yaml = YAML[request.param]
        apply_repo(repo, fs_yaml)
        store = open_store(repo, fs_yaml)
        assert store.config.online_store.type == request.param
        last = pd.Timestamp(summary["last_snapshot"])
        materialize(store, (last - EARLY).to_pydatetime())
        materialize(store, last.to_pydatetime())
        spec = FeatureSpec.read(features_dir(repo))
        tables = {v: read_view(features_dir(repo), v) for v in (USER_ACTIVITY, USER_AFFINITY, ITEM_POPULARITY)}
        yield SimpleNamespace(kind=request.param, repo=repo, fs_yaml=fs_yaml, store=store, last=last, spec=spec,
                              tables=tables, summary=summary, items=list(ds.items.item_id.astype(str)))
    finally:
        if server is not None:
            server.stop()
        if saved is None:
            os.environ.pop("RECSYS_REDIS", None)
        else:
            os.environ["RECSYS_REDIS"] = saved


def online(env, **kwargs) -> OnlineFeatures:
    settings = {"clock": "snapshot", "max_age": timedelta(hours=36), **kwargs}
    return OnlineFeatures(env.spec, env.repo, env.fs_yaml, item_ids=env.items, **settings)


def rows_at(table: pd.DataFrame, key: str, when) -> pd.DataFrame:
    return table[table.event_timestamp == when].set_index(key)


def test_online_rows_are_the_latest_snapshot(env):
    provider = online(env)
    latest = rows_at(env.tables[USER_ACTIVITY], "user_id", env.last)
    shares = rows_at(env.tables[USER_AFFINITY], "user_id", env.last)
    users = list(latest.index[:5]) + ["nobody"]
    got = provider.user_features(users)
    for k, user in enumerate(users[:-1]):
        for name in env.spec.names(USER_ACTIVITY):
            expected, value = latest.loc[user, name], got.loc[k, name]
            assert (pd.isna(expected) and pd.isna(value)) or value == pytest.approx(expected), (user, name)
        for name in env.spec.names(USER_AFFINITY):
            expected, value = shares.loc[user, name], got.loc[k, name]
            assert (expected is None and value is None) or np.allclose(value, expected), (user, name)
    assert got.iloc[-1].isna().all()  # an unknown user: every feature missing
    items = rows_at(env.tables[ITEM_POPULARITY], "item_id", env.last)
    table = provider.item_features(list(items.index), None)
    np.testing.assert_allclose(table["item_events_30d"], items["item_events_30d"])
    assert provider.counts["item_refreshes"] == 1 and provider.counts["errors"] == 0


def test_the_one_query_lookup_reads_what_feast_online_read_reads(env):
    """recsys.features.lookup reads every view in one query (sqlite) or one pipeline (Redis) through Feast's
    storage helpers; it must answer exactly what Feast's own per-view `online_read` answers."""
    from feast.infra.provider import get_provider

    from recsys.features.definitions import USER_KEY
    from recsys.features.lookup import KeyLookup, _entity_key, python_value

    users = list(rows_at(env.tables[USER_ACTIVITY], "user_id", env.last).index[:4]) + ["nobody"]
    views = (USER_ACTIVITY, USER_AFFINITY)
    got = KeyLookup(views, USER_KEY, env.store).read(users)
    online = get_provider(env.store.config).online_store
    for view in views:
        table = env.store.get_feature_view(view)
        feast = online.online_read(env.store.config, table, [_entity_key(USER_KEY, u)[0] for u in users])
        for user, row, (ts, values) in zip(users, got, feast):
            if values is None or not any(v.WhichOneof("val") for v in values.values()):
                assert row[view] == (None, None), (view, user)
                continue
            expected = {k: python_value(v) for k, v in values.items()}  # Redis: unset features answer None
            mine = dict(row[view][1])
            assert row[view][0] == ts and {k: v for k, v in mine.items() if v is not None} == {
                k: v for k, v in expected.items() if v is not None}
    assert got[-1] == {view: (None, None) for view in views}


def test_stale_rows_are_treated_as_missing_and_counted(env):
    activity = env.tables[USER_ACTIVITY]
    latest = activity.groupby("user_id").event_timestamp.max()
    materialized_early = activity[activity.event_timestamp == env.last - EARLY].user_id
    idle = sorted(set(materialized_early) & set(latest[latest < env.last].index))
    assert idle, "the data should have users idle since the first materialization"
    raw = env.store.get_online_features(features=[f"{USER_ACTIVITY}:user_events_30d"],
                                        entity_rows=[{"user_id": u} for u in idle]).to_dict()
    assert all(v is not None for v in raw["user_events_30d"])  # Feast returns old rows regardless of TTL (#6821)
    provider = online(env)
    got = provider.user_features(idle)
    assert got["user_events_30d"].isna().all() and got["user_category_share_30d"].isna().all()
    assert provider.counts[f"{USER_ACTIVITY}.stale"] == len(idle)
    assert provider.counts[f"{USER_AFFINITY}.stale"] == len(idle)
    # On the wall clock (2026 and later) every row of this 2025 data is stale: all missing, all counted.
    wall = online(env, clock="wall")
    active = list(rows_at(activity, "user_id", env.last).index[:3])
    assert wall.user_features(active).isna().all().all() and wall.counts[f"{USER_ACTIVITY}.stale"] == 3
    assert wall.item_features(env.items, None).isna().all().all()


def test_ping_and_failures_degrade_to_missing_features(env, tmp_path):
    assert online(env).ping()
    if env.kind == "redis":
        saved = os.environ["RECSYS_REDIS"]
        # nothing listens there
        os.environ["RECSYS_REDIS"] = f"127.0.0.1:{free_port()},socket_connect_timeout=1,socket_timeout=1"
        try:
            broken = online(env)
            broken.store  # noqa: B018 (open it while the variable points nowhere)
        finally:
            os.environ["RECSYS_REDIS"] = saved
    else:
        yaml = env.repo / "feature_store_broken.yaml"
        yaml.write_text((env.repo / env.fs_yaml).read_text().replace("../data/feast/online_store.db", str(tmp_path)))
        broken = OnlineFeatures(env.spec, env.repo, yaml.name, item_ids=env.items)
    assert broken.ping(timeout=30) is False and broken.counts["errors"] == 1 and broken.last_error
    started = time.time()
    rows = broken.user_features(["u00001"])  # within the pause after the failure: no wait on the store
    assert rows.isna().all().all() and broken.counts["skipped"] >= 1 and time.time() - started < 1


MATERIALIZE_LOOP = """
import sys
from datetime import datetime
from recsys.features.store import materialize, open_store
store = open_store(sys.argv[1], sys.argv[2])
first, last = datetime.fromisoformat(sys.argv[3]), datetime.fromisoformat(sys.argv[4])
print("ready", flush=True)
for _ in range(int(sys.argv[5])):
    materialize(store, last, lookback=last - first)
print("done", flush=True)
"""


def test_reads_keep_working_during_a_materialization(env):
    """Another process rewrites every row of the online store (full-history materialization, several times)
    while this one reads: every read answers, with the user's features, and none fails."""
    provider = online(env)
    user = rows_at(env.tables[USER_ACTIVITY], "user_id", env.last).index[0]
    expected = provider.user_features([user]).loc[0, "user_events_30d"]
    job = subprocess.Popen([sys.executable, "-c", MATERIALIZE_LOOP, str(env.repo), env.fs_yaml,
                            env.summary["first_snapshot"], env.summary["last_snapshot"], "4"],
                           cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    try:
        assert job.stdout.readline().strip() == "ready"
        reads, started = [], time.time()
        while job.poll() is None and time.time() - started < 300:
            reads.append(provider.user_features([user]).loc[0, "user_events_30d"])
            provider.refresh_items()
        assert job.wait(timeout=60) == 0
    finally:
        if job.poll() is None:
            job.kill()
    assert len(reads) >= 10, "the materialization ended before the reads could overlap it"
    assert provider.counts["errors"] == 0, provider.last_error
    assert all(value == expected for value in reads)  # the same latest row, rewritten under the reader
    assert Path(env.repo).is_dir()
