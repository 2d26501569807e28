"""Two-tower retrieval (recsys.retrieval.two_tower) on a tiny planted world: users of segment g only consume
items of group g, and an item's genre tells its group. A model that learns anything must beat chance."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pandas as pd
import pytest

from recsys.retrieval.two_tower import TwoTowerConfig, TwoTowerModel, train_two_tower

N_USERS, GROUP_SIZE, PER_USER, N_VALID = 160, 40, 12, 2
T0 = pd.Timestamp("2024-01-01", tz="UTC")


def planted_world(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(N_USERS):
        g = u % 2
        for t, i in enumerate(rng.choice(GROUP_SIZE, PER_USER, replace=False) + g * GROUP_SIZE):
            rows.append((f"u{u}", f"i{i}", T0 + pd.Timedelta(minutes=t), "click"))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event_type"])
    n_items = 2 * GROUP_SIZE + 4  # 4 catalogue items nobody interacted with
    items = pd.DataFrame({
        "item_id": [f"i{i}" for i in range(n_items)],
        "genre": [f"g{min(i // GROUP_SIZE, 1)}|common" for i in range(n_items)],
        "price": rng.normal(size=n_items)})
    users = pd.DataFrame({"user_id": [f"u{u}" for u in range(N_USERS)],
                          "segment": [f"s{u % 2}" for u in range(N_USERS)]})
    last = inter.groupby("user_id").cumcount() >= PER_USER - N_VALID
    return inter[~last], inter[last], items, users


def config(**kw):
    base = dict(embedding_dim=16, id_embedding_dim=8, feature_embedding_dim=4, hidden_units=[32],
                history_length=5, epochs=12, batch_size=128, learning_rate=0.01, patience=3, eval_k=10,
                verbose=0)
    return TwoTowerConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def world():
    return planted_world()


@pytest.fixture(scope="module")
def model(world):
    train, valid, items, users = world
    return train_two_tower(train, valid, items, users, config())


def recall_at(model, train, valid, k=10):
    seen = train.groupby("user_id")["item_id"].agg(set)
    truth = valid.groupby("user_id")["item_id"].agg(set)
    users = list(truth.index)
    scores = model.user_embeddings(users) @ model.item_embeddings.T
    for r, u in enumerate(users):
        scores[r, [model.item_index[i] for i in seen[u]]] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :k]
    return np.mean([len(truth[u] & set(model.item_ids[top[r]])) / len(truth[u]) for r, u in enumerate(users)])


def test_trained_model_beats_chance(model, world):
    train, valid = world[:2]
    n_candidates = len(model.item_ids) - (PER_USER - N_VALID)
    chance = 10 / n_candidates  # expected recall@10 of a random ranking of unseen items
    rec = recall_at(model, train, valid)
    assert rec > 2 * chance and rec > 0.25, (rec, chance)
    assert model.history and all(np.isfinite(h["loss"]) for h in model.history)
    # The returned weights are the best epoch's: their recall@eval_k is the history's maximum.
    assert max(h["val_recall"] for h in model.history) == pytest.approx(recall_at(model, train, valid, 10))


def test_shapes_catalogue_and_dtypes(model, world):
    items = world[2]
    assert set(model.item_ids) == set(items["item_id"])  # items table ∪ train items
    assert model.item_embeddings.shape == (len(items), 16) and model.item_embeddings.dtype == np.float32
    assert model.item_ids[model.item_index["i7"]] == "i7"
    u = model.user_embeddings([f"u{i}" for i in range(50)])
    assert u.shape == (50, 16) and u.dtype == np.float32
    np.testing.assert_allclose(model.user_embeddings(["u3"]), u[3:4], rtol=1e-5, atol=1e-6)


def test_early_stopping_stops_when_valid_cannot_improve(world):
    train, _, items, users = world
    # Valid items outside the catalogue can never be retrieved: recall stays 0 from epoch 1 on.
    valid = pd.DataFrame({"user_id": ["u0", "u1"], "item_id": ["nope", "nada"], "timestamp": T0,
                          "event_type": "click"})
    m = train_two_tower(train, valid, items, users, config(epochs=20, patience=2))
    assert len(m.history) == 3 and [h["val_recall"] for h in m.history] == [0.0, 0.0, 0.0]


def test_training_is_deterministic(world):
    train, valid, items, users = world
    a = train_two_tower(train, valid, items, users, config(epochs=2, patience=5))
    b = train_two_tower(train, valid, items, users, config(epochs=2, patience=5))
    np.testing.assert_allclose(a.item_embeddings, b.item_embeddings, atol=1e-6)


def test_unknown_user_and_cold_item_get_useful_vectors(model):
    unknown = model.user_embeddings(["stranger"], [[]])
    assert np.isfinite(unknown).all()
    cold = model.embed_items(pd.DataFrame({"item_id": ["new0", "new1"], "genre": ["g0|common", "g1|common"],
                                           "price": [0.1, np.nan]}))
    assert cold.shape == (2, 16) and np.isfinite(cold).all()
    # A cold item's attributes alone place it nearer its own group's items than the other group's.
    groups = [model.item_embeddings[[model.item_index[f"i{i}"] for i in range(g * GROUP_SIZE, (g + 1) * GROUP_SIZE)]]
              for g in (0, 1)]
    sims = cold @ np.stack([g.mean(0) for g in groups]).T
    assert sims[0, 0] > sims[0, 1] and sims[1, 1] > sims[1, 0], sims
    model_copy = TwoTowerModel(model.config, model.specs, model.weights, model.item_vocab, model.user_vocab,
                               model.user_table_ids, model.user_table, model.user_hist, model.item_ids,
                               model.item_embeddings.copy())
    model_copy.add_items(pd.DataFrame({"item_id": ["new0", "i1"], "genre": ["g0|common", "g0|common"]}))
    assert len(model_copy.item_ids) == len(model.item_ids) + 1 and model_copy.item_index["new0"] == len(model.item_ids)


def test_history_refreshes_the_user_vector(model):
    g0 = [f"i{i}" for i in range(5)]
    g1 = [f"i{i}" for i in range(GROUP_SIZE, GROUP_SIZE + 5)]
    v = model.user_embeddings(["stranger", "stranger", "u0"], [g0, g1, None])
    assert not np.allclose(v[0], v[1])
    np.testing.assert_allclose(v[2], model.user_embeddings(["u0"])[0], atol=1e-6)  # None = stored history
    # A brand-new user who just consumed group-1 items is now recommended mostly group-1 items.
    top = np.argsort(-(v[1] @ model.item_embeddings.T))[:10]
    in_g1 = [GROUP_SIZE <= int(model.item_ids[t][1:]) < 2 * GROUP_SIZE for t in top]
    assert np.mean(in_g1) >= 0.7, model.item_ids[top]
    # Unknown history items are ignored rather than failing.
    np.testing.assert_allclose(model.user_embeddings(["stranger"], [g0 + ["zzz"]])[0], v[0], atol=1e-6)


def test_save_load_roundtrip_in_fresh_process(model, tmp_path: Path):
    model.save(tmp_path / "tt")
    loaded = TwoTowerModel.load(tmp_path / "tt")
    users, hists = ["u0", "u1", "stranger"], [None, ["i3", "i50"], ["i1"]]
    np.testing.assert_array_equal(loaded.item_embeddings, model.item_embeddings)
    np.testing.assert_array_equal(loaded.item_ids, model.item_ids)
    np.testing.assert_array_equal(loaded.user_embeddings(users, hists), model.user_embeddings(users, hists))
    assert loaded.history == model.history and loaded.config == model.config
    expected = np.argsort(-(model.user_embeddings(users, hists) @ model.item_embeddings.T), axis=1)[:, :10]
    np.save(tmp_path / "expected.npy", expected)
    # Loading needs neither the training data nor TensorFlow.
    code = textwrap.dedent(f"""
        import sys, numpy as np
        from recsys.retrieval.two_tower import TwoTowerModel
        m = TwoTowerModel.load({str(tmp_path / 'tt')!r})
        top = np.argsort(-(m.user_embeddings({users!r}, {hists!r}) @ m.item_embeddings.T), axis=1)[:, :10]
        assert (top == np.load({str(tmp_path / 'expected.npy')!r})).all()
        assert "tensorflow" not in sys.modules
    """)
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_without_history_or_side_tables(world):
    train, valid = world[:2]
    m = train_two_tower(train, valid, None, None, config(history_length=0, epochs=2))
    assert set(m.item_ids) == set(train["item_id"])
    assert np.isfinite(m.user_embeddings(["u0", "nobody"], [["i1"], []])).all()
