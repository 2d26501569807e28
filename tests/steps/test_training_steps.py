"""Training-stage steps called directly (`.entrypoint`), chained as the train pipeline wires them, on tiny
synthetic data: two-tower (1 epoch) -> index -> candidates -> ranker -> the Recommender."""

import pandas as pd
import pytest

from recsys.data.splits import split_interactions
from recsys.retrieval.index import AnnIndex
from recsys.serving.recommender import Recommender
from steps.training import assemble_recommender, build_ann_index, generate_candidates, train_ranker, train_retrieval

pytestmark = pytest.mark.slow  # imports and trains TensorFlow (~15 s)


def test_training_steps_chain_into_a_recommender(tiny_dataset):
    ds = tiny_dataset
    split = split_interactions(ds.interactions, "temporal_user", (0.8, 0.1, 0.1))
    two_tower = train_retrieval.entrypoint(split.train, split.valid, ds.items, ds.users,
                                           {"epochs": 1, "embedding_dim": 8, "hidden_units": [], "verbose": 0})
    assert two_tower.item_embeddings.shape == (len(two_tower.item_ids), 8)
    index = build_ann_index.entrypoint(two_tower, {"kind": "hnsw"})
    assert isinstance(index, AnnIndex) and index.kind == "hnsw" and len(index) == len(two_tower.item_ids)

    sources = {"item_item": {"n": 10}, "co_visitation": {"n": 5}, "two_tower": {"n": 5}, "popular": {"n": 5}}
    generator, recall = generate_candidates.entrypoint(split.train, split.valid, ds.items, ds.users, two_tower,
                                                       index, {"sources": sources})
    assert [s.name for s in generator.sources] == list(sources)
    assert 0 < recall["candidate_recall/union"] <= 1
    assert recall["candidate_recall/union"] >= max(recall[f"candidate_recall/{name}"] for name in sources)

    ranker, importance = train_ranker.entrypoint(generator, split.train, split.valid, ds.items, ds.users,
                                                 {"num_rounds": 10, "n_seeds": 1, "params": {"min_data_in_leaf": 5}})
    assert set(importance.columns) == {"feature", "gain", "share"} and importance.share.sum() == pytest.approx(1)
    assert {"two_tower_score", "item_item_rank", "pop_7d"} <= set(importance.feature)

    recommender = assemble_recommender.entrypoint(generator, ranker, ds.items, ds.users, split.train, split.valid)
    assert isinstance(recommender, Recommender)
    user = split.test.user_id.iloc[0]
    recs = recommender.recommend(user, k=5)
    known = set(pd.concat([split.train, split.valid]).query("user_id == @user").item_id)
    assert len(recs) == 5 and not {r["item_id"] for r in recs} & known
    assert all(r["stage"] == "ranked" for r in recs)
