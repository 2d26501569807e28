"""Cold start: segment trending (hand-derived), region context for unknown users, unseen items' vectors."""

import numpy as np
import pandas as pd
import pytest

from recsys import training
from recsys.features.history import Catalog, History
from recsys.serving.cold_start import ColdStart, interleave
from recsys.serving.errors import UnknownItem

T0 = pd.Timestamp("2026-03-01", tz="UTC")


@pytest.fixture
def small_history():
    catalog = Catalog(np.array(["A", "B", "C"], dtype=object), pd.DataFrame(index=range(3)))
    events = [("n1", "A"), ("n1", "B"), ("n2", "A"), ("s1", "C"), ("s1", "C"), ("s1", "C")]
    frame = pd.DataFrame(events, columns=["user_id", "item_id"]).assign(event_type="view", timestamp=T0)
    users = pd.DataFrame({"user_id": ["n1", "n2", "s1", "n3"], "region": ["north", "north", "south", "north"],
                          "age": [30, 40, 50, 60]})
    return History.from_interactions(catalog, frame), users


def test_segment_trending_matches_hand_computation(small_history):
    history, users = small_history
    cold = ColdStart(window_days=30, prior=0.0).fit(history, users)
    assert list(cold.segments) == ["region"]  # numeric columns are not segments
    # Global: A 2, B 1, C 3 events -> C, A, B. North users: A 2 of 3 events, B 1 of 3 -> A, B, C.
    assert list(np.argsort(-cold.trending)) == [2, 0, 1]
    north, text = cold.scores({"region": "north"})
    np.testing.assert_allclose(north, [2 / 3, 1 / 3, 0.0], atol=1e-3)
    assert text == "trending with travellers of region north"
    # prior = 3 pseudo-events spread like the global trend (2/6, 1/6, 3/6):
    # A (2 + 1) / 6 = 0.5, B (1 + 0.5) / 6 = 0.25, C (0 + 1.5) / 6 = 0.25.
    shrunk, _ = ColdStart(prior=3.0).fit(history, users).scores({"region": "north"})
    np.testing.assert_allclose(shrunk, [0.5, 0.25, 0.25], atol=1e-3)
    assert cold.scores({"region": "east"})[1] == "trending now"  # unknown value: the global trend
    assert cold.segment_of("n3") == {"region": "north"} and cold.segment_of("zz") == {}


def test_interleave_puts_every_third_slot_from_the_second_list():
    pos, flags = interleave(np.array([1, 2, 3, 4, 5]), np.array([9, 2, 8]), 0.3, 6)
    assert list(pos) == [1, 2, 9, 3, 4, 8] and list(flags) == [False, False, True, False, False, True]
    pos, _ = interleave(np.array([1, 2]), np.array([], dtype=int), 0.3, 5)
    assert list(pos) == [1, 2]


def test_unknown_users_get_their_regions_trend(parts):
    users = pd.concat([parts["users"], pd.DataFrame({"user_id": ["w1"], "region": ["south"]})])
    rec = training.build_recommender(parts["generator"], parts["ranking"], parts["items"], users, parts["known"],
                                     {"serving": {"filters": {"record_impressions": False}}})
    for region, prefix in (("north", "a"), ("south", "b")):
        out = rec.recommend("visitor", 5, context={"region": region})
        assert [r["item_id"][0] for r in out] == [prefix] * 5, (region, out)
        assert {r["stage"] for r in out} == {"cold_start"} and {r["source"] for r in out} == {"trending"}
        assert all(r["reason"] == f"trending with travellers of region {region}" for r in out)
    # a registered user without history: their users-table row is the segment
    assert [r["item_id"][0] for r in rec.recommend("w1", 5)] == ["b"] * 5
    batch = rec.recommend_batch(["w1"], 5)
    assert list(batch.item_id) == [r["item_id"] for r in rec.recommend("w1", 5)]


@pytest.fixture
def with_two_tower(parts, tmp_path):
    from recsys.retrieval.index import AnnIndex
    from recsys.retrieval.two_tower import TwoTowerConfig, train_two_tower

    config = TwoTowerConfig(epochs=2, embedding_dim=8, id_embedding_dim=4, feature_embedding_dim=4,
                            hidden_units=[8], batch_size=64, history_length=5, eval_k=5, verbose=0)
    two_tower = train_two_tower(parts["train"], parts["valid"], parts["items"], parts["users"], config)
    index = AnnIndex.build(two_tower.item_embeddings, two_tower.item_ids)
    sources = {"sources": {"item_item": {"n": 8, "l2": 1.0}, "co_visitation": {"n": 5}, "two_tower": {"n": 5},
                           "popular": {"n": 5}}}
    gen = training.fit_candidate_generator(parts["train"], parts["valid"], parts["items"], parts["users"],
                                           two_tower, index, sources)
    ranking, _ = training.fit_ranker(gen, parts["train"], parts["valid"], parts["items"], parts["users"],
                                     {"params": {"min_data_in_leaf": 5}, "num_rounds": 20})
    return training.build_recommender(gen, ranking, parts["items"], parts["users"], parts["known"],
                                      {"serving": {"filters": {"record_impressions": False}}})


def test_items_unseen_in_training_get_attribute_vectors(with_two_tower, tmp_path):
    rec = with_two_tower
    new = pd.DataFrame({"item_id": ["c0", "c1", "c2"], "category": ["ski", "ski", "beach"], "stars": [5, 5, 3]})
    assert rec.add_items(new) == 3 and rec.add_items(new) == 0
    similar = rec.similar_items("c0", 3)
    # c0 and c1 have the same attributes and no id embedding: the same vector, cosine 1
    assert similar[0]["item_id"] == "c1" and similar[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert all(r["stage"] == "similar" and r["reason"] == "similar to c0" for r in similar)
    two_tower = rec._two_tower()
    vector = two_tower.model.item_embeddings[two_tower.model.item_index["c2"]]
    _, found = two_tower.index.search(vector[None, :], 2)
    assert "c2" in two_tower.index.ids[found[0]]  # retrievable through the ANN index
    for user in ("u1", "v2", "nobody"):  # every stage runs over the grown catalogue; new items can be served
        out = [r["item_id"] for r in rec.recommend(user, 50)]
        assert len(out) == len(set(out)) == len(rec.catalog) - len(set(rec.history.items(user)))
        assert {"c0", "c1", "c2"} <= set(out)
    with pytest.raises(UnknownItem):
        rec.similar_items("zz")
    back = type(rec).load(rec.save(tmp_path / "grown"))
    assert [r["item_id"] for r in back.similar_items("c0", 3)] == [r["item_id"] for r in similar]
    assert back.recommend_batch(["u1", "v3"], 8).equals(rec.recommend_batch(["u1", "v3"], 8))


def test_cold_users_with_a_profile_get_two_tower_matches(with_two_tower):
    rec = with_two_tower.variant(cold_start={"content_share": 0.5})
    out = rec.recommend("visitor", 6, context={"region": "north"})
    sources = [r["source"] for r in out]
    assert sources.count("two_tower") >= 1 and sources.count("trending") >= 1
    assert all(r["reason"] == "matches travellers of region north" for r in out if r["source"] == "two_tower")
