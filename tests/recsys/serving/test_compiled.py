"""The compiled ranker (lleaves) scores exactly like LightGBM, and serving falls back without it."""

import builtins

import numpy as np
import pandas as pd
import pytest

from recsys.serving import compiled

pytest.importorskip("lleaves")


def test_compiled_ranker_matches_lightgbm_on_real_feature_rows(parts, tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_COMPILE_CACHE", str(tmp_path))
    ranker, features = parts["ranking"].ranker, parts["ranking"].features
    from recsys.training import make_history

    history = make_history(parts["generator"].catalog, parts["known"])
    cands = parts["generator"].generate(history.users, history)
    X = features.transform_array(cands, history, names=ranker.feature_names)
    X[::7, 3] = np.nan  # missing values take the trees' default branches in both
    predict = compiled._compile(ranker)
    np.testing.assert_allclose(predict(X), ranker.predict(X), rtol=0, atol=1e-12)
    assert len(list(tmp_path.glob("*.o"))) == len(ranker.models)  # cached: a reload compiles nothing
    again = compiled._compile(ranker)
    np.testing.assert_allclose(again(X), predict(X), rtol=0, atol=0)


def test_serving_lists_are_the_same_with_and_without_compilation(make):
    plain = {"filters": {"record_impressions": False}, "rerank": {"mmr_weight": 0.0}}  # MMR would cascade a tie
    fast = make(plain)
    slow = make({**plain, "compile_ranker": False})
    assert fast.lists.scorer is not None and slow.lists.scorer is None
    users = fast.history.users
    a, b = fast.recommend_batch(users, 5), slow.recommend_batch(users, 5)
    # Position by position the same scores to 1e-12: the same ranking, up to the order among items whose
    # scores tie to that precision (the tiny model's few leaf values make such ties common, and the two
    # paths sum the trees in a different order, so a tie can break either way).
    assert list(a.user_id) == list(b.user_id)
    np.testing.assert_allclose(a.score, b.score, rtol=0, atol=1e-12)
    common = a.merge(b, on=["user_id", "item_id"], suffixes=("_fast", "_slow"))
    assert len(common) > 0.9 * len(a)
    np.testing.assert_allclose(common.score_fast, common.score_slow, rtol=0, atol=1e-12)


def test_without_lleaves_there_is_no_compiled_predictor(parts, monkeypatch):
    real_import = builtins.__import__

    def no_lleaves(name, *args, **kwargs):
        if name == "lleaves":
            raise ImportError("not installed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_lleaves)
    assert compiled._compile(parts["ranking"].ranker) is None
