"""AnnIndex (recsys.retrieval.index): exact vs approximate agreement, k clipping, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.retrieval.index import AnnIndex


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(2000, 32)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    queries = rng.normal(size=(200, 32)).astype(np.float32)
    return items, np.array([f"item{i}" for i in range(len(items))]), queries


def overlap(a, b):
    return np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b)])


def test_exact_matches_brute_force(data):
    items, ids, q = data
    index = AnnIndex.build(items, ids, kind="exact")
    scores, pos = index.search(q, 10)
    brute = np.argsort(-(q @ items.T), axis=1)[:, :10]
    assert scores.dtype == np.float32 and pos.dtype == np.int64 and pos.shape == (200, 10)
    assert overlap(pos, brute) == 1.0
    np.testing.assert_allclose(scores, np.take_along_axis(q @ items.T, pos, 1), rtol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_agrees_with_exact(data, kind):
    items, ids, q = data
    _, exact = AnnIndex.build(items, ids, kind="exact").search(q, 10)
    _, approx = AnnIndex.build(items, ids, kind=kind, nprobe=32).search(q, 10)
    assert overlap(exact, approx) >= 0.95


def test_auto_kind_by_catalogue_size(data):
    items, ids, _ = data
    assert AnnIndex.build(items, ids).kind == "exact"
    assert AnnIndex.build(items, ids, exact_max_items=1000).kind == "hnsw"


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_k_larger_than_catalogue_is_clipped_without_padding(kind):
    rng = np.random.default_rng(1)
    items = rng.normal(size=(100, 8)).astype(np.float32)
    index = AnnIndex.build(items, [str(i) for i in range(100)], kind=kind, nlist=4, nprobe=1)
    scores, pos = index.search(rng.normal(size=(3, 8)), 500)
    assert pos.shape == (3, 100) and (pos >= 0).all()
    assert all(len(set(row)) == 100 for row in pos)  # every item once, no -1 padding
    _, one = index.search(items[5], 1)  # a 1-D query is one row
    assert one.shape == (1, 1)


def test_save_load_roundtrip(data, tmp_path):
    items, ids, q = data
    for kind in ("exact", "hnsw"):
        index = AnnIndex.build(items, ids, kind=kind, ef_search=64)
        index.save(tmp_path / kind)
        loaded = AnnIndex.load(tmp_path / kind)
        assert loaded.kind == kind and loaded.params == index.params and len(loaded) == len(items)
        np.testing.assert_array_equal(loaded.ids, ids)
        s1, p1 = index.search(q, 10)
        s2, p2 = loaded.search(q, 10)
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_allclose(s1, s2)


def test_rejects_bad_input(data):
    items, ids, _ = data
    with pytest.raises(ValueError):
        AnnIndex.build(items, ids[:10])
    with pytest.raises(ValueError):
        AnnIndex.build(items, ids, kind="lsh")
    with pytest.raises(ValueError):
        AnnIndex.build(items, ids).search(np.zeros((1, 5)), 3)
