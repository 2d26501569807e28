"""Shared fixtures for the serving-core tests: a trained staged recommender on the planted tiny data.

The models (candidate sources, ranker) are fitted once per module; `make(serving)` builds a fresh
Recommender (own history and online state) around them, so tests can mutate state independently.
"""

import pandas as pd
import pytest

from recsys import training
from tests.recsys.conftest import make_tiny, per_user_split

PARAMS = {"sources": {"two_tower": None, "item_item": {"n": 8, "l2": 1.0},
                      "co_visitation": {"n": 5}, "popular": {"n": 5}}}
RANKER = {"params": {"min_data_in_leaf": 5}, "num_rounds": 30, "early_stopping": 5}


@pytest.fixture(scope="module")
def parts():
    inter, items, users = make_tiny()
    train, valid, test = per_user_split(inter)
    gen = training.fit_candidate_generator(train, valid, items, users, None, None, PARAMS)
    ranking, importance = training.fit_ranker(gen, train, valid, items, users, RANKER)
    return {"generator": gen, "ranking": ranking, "importance": importance, "train": train, "valid": valid,
            "test": test, "items": items, "users": users, "known": pd.concat([train, valid], ignore_index=True)}


@pytest.fixture
def make(parts):
    def build(serving=None, generator=None):
        return training.build_recommender(generator or parts["generator"], parts["ranking"], parts["items"],
                                          parts["users"], parts["known"], {"serving": serving or {}})
    return build
