"""The ranked-candidate cache (recsys/serving/lists.py over ranked.py): cached answers equal fresh computations after any
sequence of state changes, exact invalidation, the memory bound, the short-list fallback, the warm-up."""

import copy
import gc
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys import training
from recsys.serving.ranked import Ranked

ITEMS = [f"{p}{i}" for p in "ab" for i in range(10)]
USERS = [f"u{i}" for i in range(0, 20, 3)] + [f"v{i}" for i in range(0, 20, 4)] + ["newcomer"]
# A pin (rule item, no ranker row), MMR over categories, impression fatigue after 2 showings.
SERVING = {"rules": [{"action": "pin", "item_id": "b9", "slot": 2}], "rerank": {"mmr_weight": 0.2},
           "filters": {"max_impressions": 2}}

op = st.one_of(
    st.tuples(st.just("recommend"), st.sampled_from(USERS), st.integers(1, 6),
              st.lists(st.sampled_from(ITEMS), max_size=4),
              st.sampled_from([None, {"category": "ski"}, {"category": "beach"}, {"stars_min": 5}])),
    st.tuples(st.just("feedback"), st.sampled_from(USERS), st.sampled_from(ITEMS),
              st.sampled_from(["view", "click", "booking", "impression"])),
    st.tuples(st.just("blocklist"), st.lists(st.sampled_from(ITEMS), max_size=3)),
    st.tuples(st.just("unavailable"), st.lists(st.sampled_from(ITEMS), max_size=2)),
    st.tuples(st.just("batch"), st.lists(st.sampled_from(USERS), min_size=1, max_size=5, unique=True)),
    st.tuples(st.just("clock"), st.integers(1, 100_000)),
)


def _pair(make):
    cached, fresh = make(SERVING), make({**SERVING, "cache": {"enabled": False}})
    now = [1.9e9]
    cached.clock = fresh.clock = lambda: now[0]
    return cached, fresh, now


def _apply(rec, step, now):
    kind = step[0]
    if kind == "recommend":
        _, user, k, exclude, context = step
        return rec.recommend(user, k, exclude=exclude, context=context)
    if kind == "feedback":  # then the user's next answer: the case a stale list would get wrong
        _, user, item, event = step
        rec.recommend(user, 5)
        rec.record_feedback({"user_id": user, "item_id": item, "event_type": event, "timestamp": now[0]})
        return rec.recommend(user, 5)
    if kind == "blocklist":
        return rec.set_blocklist(step[1])
    if kind == "unavailable":
        return rec.set_unavailable(step[1])
    if kind == "batch":
        return rec.recommend_batch(step[1], 4)
    now[0] += step[1]
    return None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(op, min_size=1, max_size=14))
def test_cached_answers_equal_fresh_computations_after_any_state_changes(make, steps):
    cached, fresh, now = _pair(make)
    for step in steps:
        a, b = _apply(cached, step, now), _apply(fresh, step, now)
        if isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b)
        else:
            assert a == b, step  # items, scores, sources, stages and reasons alike
    for user in USERS:  # and every user's answer at the end, twice (the second one from the cache)
        for _ in range(2):
            assert cached.recommend(user, 5) == fresh.recommend(user, 5)
    assert fresh.ranked.stats()["entries"] == 0 and cached.ranked.counts["hits"] > 0


def test_feedback_invalidates_only_that_user_and_the_next_answer_reflects_it(make):
    rec = make({"filters": {"record_impressions": False}})
    first = {u: rec.recommend(u, 3) for u in ("u1", "v2")}
    assert {"u1", "v2"} <= set(rec.ranked.users())
    misses = rec.ranked.counts["misses"]
    top = first["u1"][0]["item_id"]
    rec.record_feedback({"user_id": "u1", "item_id": top, "event_type": "click"})
    assert "u1" not in rec.ranked and "v2" in rec.ranked
    again = rec.recommend("u1", 3)
    assert top not in [r["item_id"] for r in again] and rec.ranked.counts["misses"] == misses + 1
    assert rec.recommend("v2", 3) == first["v2"] and rec.ranked.counts["misses"] == misses + 1  # a hit
    # an impression changes no history: the cached list stays (fatigue is applied per request)
    rec.record_feedback({"user_id": "v2", "item_id": first["v2"][0]["item_id"], "event_type": "impression"})
    assert "v2" in rec.ranked


def test_a_history_change_behind_the_cache_is_never_served(make):
    rec = make({"filters": {"record_impressions": False}})
    before = rec.recommend("u4", 4)
    item = before[0]["item_id"]
    # written straight into the history (as a bulk loader could), without telling the cache
    rec.history.add(pd.DataFrame({"user_id": ["u4"], "item_id": [item], "event_type": ["click"],
                                  "timestamp": [pd.Timestamp("2030-01-01", tz="UTC")]}))
    after = rec.recommend("u4", 4)
    assert item not in [r["item_id"] for r in after] and rec.ranked.counts["stale"] == 1


def test_model_changes_drop_every_list_including_a_variants(make):
    rec = make({"filters": {"record_impressions": False}})
    retrieval_only = rec.variant(rank=False, score_source="item_item")  # other lists: a cache of its own
    diverse = rec.variant(rerank={"mmr_weight": 0.5})  # same ranked lists: shares the cache
    assert retrieval_only.ranked is not rec.ranked and diverse.ranked is rec.ranked
    rec.recommend("u2", 3)
    retrieval_only.recommend("u2", 3)
    rec.refresh_trends()  # what refresh_recommender does after refitting the sources in place
    assert len(rec.ranked) == 0
    misses = retrieval_only.ranked.counts["misses"]
    retrieval_only.recommend("u2", 3)  # its entry is from before the models changed: recomputed
    assert retrieval_only.ranked.counts["misses"] == misses + 1
    rec.add_items(pd.DataFrame({"item_id": ["c0"], "category": ["ski"], "stars": [4]}))
    assert len(rec.ranked) == 0


def test_a_new_model_version_starts_with_no_lists_and_keeps_its_own(make):
    old, new = make(), make()
    old.recommend("u3", 3)
    new.adopt_online_state(old)
    assert len(new.ranked) == 0 and "u3" in old.ranked


def test_memory_bound_is_respected_least_recently_used_out_first(make):
    probe = make()
    probe.warm(["u1"])
    size = probe.ranked.stats()["bytes"]
    rec = make({"cache": {"max_mb": 3.5 * size / 2**20}})  # room for three lists of this size
    users = rec.warm_order()
    rec.warm(users[:6])
    stats = rec.ranked.stats()
    assert stats["bytes"] <= stats["max_bytes"] and 2 <= stats["entries"] <= 4 and stats["evicted"] >= 2
    kept = rec.ranked.users()
    rec.recommend(kept[-1], 3)  # the least recent one is used again ...
    rec.warm([u for u in users if u not in rec.ranked][:1])  # ... so another one goes first
    assert kept[-1] in rec.ranked


def test_reported_bytes_match_the_memory_the_lists_take(make):
    rec = make()
    users = rec.history.users
    rec.warm(users[:2])  # first calls build the models' own lookup tables: not the lists' memory
    first = rec.ranked.stats()["bytes"]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    rec.warm(users)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    reported = rec.ranked.stats()["bytes"] - first
    assert len(rec.ranked) == len(users)
    assert 0.75 * grown <= reported <= 1.25 * grown  # the per-entry overheads are measured, not guessed


def test_short_list_after_filtering_falls_back_to_retrieval_past_the_filters(parts, make):
    small = copy.copy(parts["generator"])  # two candidates per source: filters can exhaust a list
    small.n_per_source = {name: 2 for name in small.n_per_source}
    rec = make({"filters": {"record_impressions": False}}, generator=small)
    rec.warm(["u5"], explain=False)
    cached = [int(p) for p in rec.ranked_list("u5").positions]
    assert len(cached) >= 3
    excluded = list(rec.catalog.item_ids[cached])
    out = rec.recommend("u5", 3, exclude=excluded)
    assert rec.ranked.counts["fallbacks"] == 1
    assert len(out) == 3 and not {r["item_id"] for r in out} & set(excluded)
    assert all(r["stage"] == "ranked" for r in out)  # personal candidates found past the filters, not cold start
    fresh = make({"filters": {"record_impressions": False}, "cache": {"enabled": False}}, generator=small)
    assert out == fresh.recommend("u5", 3, exclude=excluded)
    assert rec.ranked.counts["fallbacks"] == 1 and "u5" in rec.ranked  # the cached list itself is kept
    # a filter that leaves the re-rank pool full needs no fallback
    rec.recommend("u5", 1, exclude=excluded[:1]) if len(cached) > 30 else None


def test_narrow_context_gets_personal_items_through_the_fallback(parts, make):
    small = copy.copy(parts["generator"])
    small.n_per_source = {name: 2 for name in small.n_per_source}
    rec = make({"filters": {"record_impressions": False}}, generator=small)
    rec.warm(["u5"], explain=False)
    cached = rec.ranked_list("u5")
    ski = rec.context_filter.parse({"category": "ski"}).mask
    assert not ski[cached.positions].all()  # the cached list holds items the context removes
    out = rec.recommend("u5", 3, context={"category": "ski"})
    assert [r["item_id"][0] for r in out] == ["b"] * 3 and rec.ranked.counts["fallbacks"] == 1
    assert any(r["stage"] == "ranked" for r in out)


def test_warm_lists_answer_like_cold_computations_with_explanations(make):
    warm, cold = make({"filters": {"record_impressions": False}}), make(
        {"filters": {"record_impressions": False}, "cache": {"enabled": False}})
    assert warm.warm() == len(warm.history)
    hits = warm.ranked.counts["hits"]
    for user in warm.history.users:
        assert warm.recommend(user, 4) == cold.recommend(user, 4)
    assert warm.ranked.counts["hits"] == hits + len(warm.history) and warm.ranked.counts["explain_passes"] == 0


def test_items_chosen_deeper_than_explained_get_a_second_pass_with_the_same_reasons(make):
    rec = make({"filters": {"record_impressions": False}, "rerank": {"pool": 2}, "cache": {"explain_margin": 0}})
    cold = make({"filters": {"record_impressions": False}, "rerank": {"pool": 2}, "cache": {"enabled": False}})
    rec.warm(["u8"], depth=2)  # a list explained two deep, as a warm-up leaves it
    entry = rec.ranked_list("u8")
    assert isinstance(entry, Ranked) and len(entry.explained) == 2 < len(entry)
    skip = list(rec.catalog.item_ids[entry.positions[:2]])  # the explained two are excluded ...
    out = rec.recommend("u8", 2, exclude=skip)
    assert rec.ranked.counts["explain_passes"] == 1 and out == cold.recommend("u8", 2, exclude=skip)
    assert rec.recommend("u8", 2, exclude=skip) == out and rec.ranked.counts["explain_passes"] == 1


def test_cache_settings_are_validated(make):
    with pytest.raises(ValueError, match="cache.size"):
        make({"cache": {"size": 10}})
    assert not make({"cache": {"enabled": False}}).ranked.enabled
    np.testing.assert_equal(make().config["cache"]["explain_margin"], 10)
    assert training  # the fixtures build through recsys.training


def test_a_page_is_reused_only_while_the_filters_leave_the_same_head(make):
    rec = make({"filters": {"record_impressions": False}, "rules": [{"action": "pin", "item_id": "b9", "slot": 2}]})
    cold = make({"filters": {"record_impressions": False}, "rules": [{"action": "pin", "item_id": "b9", "slot": 2}],
                 "cache": {"enabled": False}})
    calls = []
    rerank = rec.reranker.rerank
    rec.reranker.rerank = lambda *a, **kw: calls.append(1) or rerank(*a, **kw)
    first = rec.recommend("u6", 4)
    assert rec.recommend("u6", 4) == first == cold.recommend("u6", 4) and len(calls) == 1  # the same page
    third = first[2]["item_id"]
    assert rec.recommend("u6", 4, exclude=[third]) == cold.recommend("u6", 4, exclude=[third]) and len(calls) == 2
    assert rec.recommend("u6", 3) == cold.recommend("u6", 3) and len(calls) == 3  # another k, another page
    for r in (rec, cold):  # the pinned item is no longer allowed: not the same page either
        r.set_blocklist(["b9"])
    out = rec.recommend("u6", 3)
    assert out == cold.recommend("u6", 3) and len(calls) == 4 and "b9" not in [r["item_id"] for r in out]


def test_a_list_computed_on_request_gets_its_pool_explained_off_the_request_path(make):
    rec = make({"filters": {"record_impressions": False}, "rerank": {"pool": 4}, "cache": {"explain_margin": 2}})
    cold = make({"filters": {"record_impressions": False}, "rerank": {"pool": 4}, "cache": {"enabled": False}})
    first = rec.recommend("v7", 2)  # a miss: only the two chosen items are explained on the request
    entry = rec.ranked_list("v7")
    assert len(entry.explained) == 2 and entry.pending is not None and rec.ranked.is_deferred(entry)
    assert rec.explain_deferred() == 1  # what the service's warm-up thread runs between requests
    swapped = rec.ranked_list("v7")
    assert swapped is not entry and swapped.pending is None
    assert len(swapped.explained) == min(rec.explaining.depth(2), len(swapped))
    skip = [r["item_id"] for r in first]
    assert rec.recommend("v7", 2, exclude=skip) == cold.recommend("v7", 2, exclude=skip)
    assert rec.ranked.counts["explain_passes"] == 0


def test_a_user_paging_down_gets_deeper_explanations_off_the_request_path(make):
    """Impression fatigue moves a user's page down the list; with the warm-up thread's work between requests
    (explain_deferred) no request pays a pass, and every page is what an uncached Recommender answers."""
    settings = {"filters": {"max_impressions": 1}, "rerank": {"pool": 3},
                "cache": {"explain_margin": 1, "explain_ahead": True}}
    rec, cold = make(settings), make({**settings, "cache": {"enabled": False}})
    rec.clock = cold.clock = lambda: 1000.0
    rec.warm(["u8"], depth=4)  # explained four deep, as the warm-up leaves a list
    entry = rec.ranked_list("u8")
    assert len(entry.explained) == 4 < len(entry) - 6
    shown = []
    for _ in range(4):  # each page is fatigued at once: the next one starts two items deeper
        page = rec.recommend("u8", 2)
        assert page == cold.recommend("u8", 2) and not set(r["item_id"] for r in page) & set(shown)
        shown += [r["item_id"] for r in page]
        rec.explain_deferred()
    assert rec.ranked.counts["explain_passes"] == 0 and rec.ranked.counts["deepened"] >= 1
    assert len(rec.ranked_list("u8").explained) > 4


def test_by_default_paging_down_costs_one_pass_that_explains_well_past_the_page(make):
    settings = {"filters": {"max_impressions": 1}, "rerank": {"pool": 3}, "cache": {"explain_margin": 1}}
    rec, cold = make(settings), make({**settings, "cache": {"enabled": False}})
    rec.clock = cold.clock = lambda: 1000.0
    rec.warm(["u8"], depth=4)
    for _ in range(4):
        assert rec.recommend("u8", 2) == cold.recommend("u8", 2)
    assert rec.ranked.counts["explain_passes"] == 1  # then explained past the next pages: no second one


def test_a_warm_up_explains_past_what_the_users_filters_remove_today(make):
    settings = {"filters": {"max_impressions": 1}, "rerank": {"pool": 3}, "cache": {"explain_margin": 1}}
    rec, cold = make(settings), make({**settings, "cache": {"enabled": False}})
    rec.clock = cold.clock = lambda: 1000.0
    for _ in range(2):  # two pages shown: four items fatigued at the head of the list
        assert rec.recommend("u8", 2) == cold.recommend("u8", 2)
    rec.ranked.invalidate(["u8"])  # what a click does; the warm-up thread then computes the list again
    assert rec.warm(["u8"]) == 1
    entry = rec.ranked_list("u8")
    fatigued = set(rec.impressions.fatigued("u8", 1000.0).tolist())
    assert len(fatigued) == 4 and len(entry.explained) == min(len(entry), 4 + rec.explaining.depth(10))
    passes = rec.ranked.counts["explain_passes"]
    assert rec.recommend("u8", 2) == cold.recommend("u8", 2) and rec.ranked.counts["explain_passes"] == passes


def test_lists_queued_beyond_the_rows_bound_are_still_explained_later(make, monkeypatch):
    from recsys.serving import ranked

    monkeypatch.setattr(ranked, "MAX_DEFERRED", 1)  # one list may keep its feature rows while it waits
    settings = {"filters": {"record_impressions": False}, "rerank": {"pool": 4}, "cache": {"explain_margin": 2}}
    rec, cold = make(settings), make({**settings, "cache": {"enabled": False}})
    users = list(rec.history.users[:3])
    firsts = {u: rec.recommend(u, 2) for u in users}  # three misses, each queued for its pool's explanations
    entries = [rec.ranked_list(u) for u in users]
    assert all(rec.ranked.is_deferred(e) for e in entries)
    assert [e.pending is not None for e in entries] == [True, False, False]  # the bound: rows dropped
    assert rec.explain_deferred() == 3
    for u in users:
        entry = rec.ranked_list(u)
        assert len(entry.explained) >= min(rec.explaining.depth(2), len(entry)) and entry.pending is None
        skip = [r["item_id"] for r in firsts[u]]
        assert rec.recommend(u, 2, exclude=skip) == cold.recommend(u, 2, exclude=skip)
    assert rec.ranked.counts["explain_passes"] == 0 and rec.ranked.counts["deepened"] == 2
