"""Ranked lists computed off the request path (bentos/warmup.py), driven through ServingRuntime without
HTTP: every known user after a load, a user with new feedback recomputed before their next request, and a
hot reload that primes the new version with the users the old one served."""

from __future__ import annotations

import time

import pytest

from bentos.runtime import ServingRuntime
from bentos.settings import load_settings
from tests.bentos.conftest import promote, server_env


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def runtime(bundles, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    promote(bundles["v1"], root, "v1")
    rt = ServingRuntime(load_settings(environ=server_env(tmp_path, str(root))), metrics=None)
    rt.load()
    yield rt, root
    rt.close()


def test_every_known_user_is_computed_after_a_load(runtime):
    rt, _ = runtime
    rec = rt.slots["control"].current.recommender
    assert wait_for(lambda: rt.warmers["control"].finished_at is not None)
    assert len(rec.ranked) == len(rec.history) and rec.ranked.counts["misses"] == len(rec.history)  # once each
    user = rec.history.users[7]
    hits = rec.ranked.counts["hits"]
    rt.recommend(user, 5)
    assert rec.ranked.counts["hits"] == hits + 1  # served from the warmed list


def test_a_user_with_new_feedback_is_recomputed_before_their_next_request(runtime):
    rt, _ = runtime
    rec = rt.slots["control"].current.recommender
    assert wait_for(lambda: rt.warmers["control"].finished_at is not None)
    user = rec.history.users[3]
    clicked = rt.recommend(user, 5)["items"][0]["item_id"]
    rt.record_feedback({"event_id": "e1", "user_id": user, "item_id": clicked, "event_type": "click",
                        "timestamp": "2031-01-01T00:00:00Z"})
    assert wait_for(lambda: user in rec.ranked, 10)  # invalidated by the feedback, then recomputed
    misses = rec.ranked.counts["misses"]
    answer = rt.recommend(user, 5)["items"]
    assert rec.ranked.counts["misses"] == misses and clicked not in [i["item_id"] for i in answer]
    fresh = rec.variant(cache={"enabled": False}, filters={"record_impressions": False})
    quiet = rec.variant(filters={"record_impressions": False})
    assert quiet.recommend(user, 5) == fresh.recommend(user, 5)


def test_hot_reload_primes_the_new_version_with_the_recent_users(runtime, bundles):
    rt, root = runtime
    old = rt.slots["control"].current.recommender
    served = old.history.users[:5]
    for user in served:
        rt.recommend(user, 5)
    promote(bundles["v2"], root, "v2")
    swapped = rt.poll()  # loads, warms and primes v2 in this thread, as the service's poller does
    assert [slot.name for slot, _ in swapped] == ["control"]
    new = swapped[0][1].recommender
    assert set(served) <= set(new.ranked.users())  # computed before the swap
    rt.install(*swapped[0])
    assert rt.slots["control"].current.recommender is new
    assert wait_for(lambda: rt.warmers["control"].finished_at is not None)
    assert len(new.ranked) == len(new.history)
