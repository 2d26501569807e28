"""Candidate sources and the generator: hand-derived values on tiny inputs."""

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.features.history import Catalog, History
from recsys.retrieval.candidates import CandidateGenerator
from recsys.retrieval.sources import CandidateSource, CoVisitationSource, ItemItemSource, PopularSource, top_n

T0 = pd.Timestamp("2025-01-01", tz="UTC")


def history_of(seqs: dict[str, list[str]], items: list[str], days_apart: float = 0.0) -> History:
    rows = [(u, i, T0 + pd.Timedelta(hours=k) + pd.Timedelta(days=days_apart * n), "view")
            for n, (u, seq) in enumerate(seqs.items()) for k, i in enumerate(seq)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event_type"])
    catalog = Catalog(np.array(items, dtype=object), pd.DataFrame(index=range(len(items))))
    return History.from_interactions(catalog, frame)


def test_ease_matches_closed_form():
    h = history_of({"u1": ["a", "b"], "u2": ["a", "b", "c"], "u3": ["c"]}, ["a", "b", "c"])
    src = ItemItemSource(l2=1.0, decay=None).fit(h)
    X = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1]], dtype=float)
    P = np.linalg.inv(X.T @ X + np.eye(3))
    B = -P / np.diag(P)
    np.fill_diagonal(B, 0)
    np.testing.assert_allclose(src.B, B, rtol=1e-5)
    np.testing.assert_allclose(src.dense_scores(["u1"], h)[0], X[0] @ B, rtol=1e-5)


def test_ease_recency_decay_weights_latest_item_most():
    h = history_of({"u1": ["a", "b"], "u2": ["a", "c"], "u3": ["b", "d"], "x": ["a", "b"]}, list("abcd"))
    src = ItemItemSource(l2=0.5, decay=1.0).fit(h)
    scores = src.dense_scores(["x"], h)[0]
    # x saw a then b: the neighbour of b (d) must outscore the neighbour of a (c), since b is more recent.
    assert scores[3] > scores[2]


def test_co_visitation_counts_neighbours_by_distance():
    h = history_of({"u1": ["a", "b", "c"]}, ["a", "b", "c"])
    src = CoVisitationSource(window=2, decay=100.0).fit(h)
    C = src.C.toarray()
    # Row a: b at distance 1 (weight 1), c at distance 2 (weight 1/2) -> normalised 2/3, 1/3.
    np.testing.assert_allclose(C[0], [0, 2 / 3, 1 / 3])
    np.testing.assert_allclose(C[1], [0.5, 0, 0.5])


def test_popular_prefers_trending_window():
    # Item a is popular long ago, item b within the last 30 days of the data.
    h = history_of({"u1": ["a"], "u2": ["a"], "u3": ["a"], "u4": ["b"], "u5": ["b"]}, ["a", "b"], days_apart=20)
    scores = PopularSource(window_days=30).fit(h).dense_scores(["anyone"], h)[0]
    assert scores[1] > scores[0]


def test_top_n_skips_excluded_and_pads():
    scores = np.array([[0.1, 0.9, 0.5, -np.inf]])
    exclude = sp.csr_matrix(np.array([[0, 1, 0, 0]]))
    assert top_n(scores, 3, exclude).tolist() == [[2, 0, -1]]


def test_generator_union_dedupes_excludes_history_and_marks_sources():
    h = history_of({"u1": ["a", "b"], "u2": ["a", "b", "c"], "u3": ["c", "d"], "u4": ["b", "c"]}, list("abcde"))
    gen = CandidateGenerator(h.catalog, [ItemItemSource(l2=1.0), PopularSource()],
                             {"item_item": 2, "popular": 3}).fit(h)
    cands = gen.generate(["u1"], h)
    row = cands.positions[0][cands.valid[0]]
    assert len(set(row)) == len(row)
    assert not {0, 1} & set(row)  # a, b already seen
    for pos, bits in zip(row, cands.proposed_by[0][cands.valid[0]]):
        assert bits in (1, 2, 3)
    assert set(cands.scores) == {"item_item", "popular"}


def test_source_save_load_roundtrip(tmp_path):
    h = history_of({"u1": ["a", "b"], "u2": ["a", "b", "c"], "u3": ["c"]}, ["a", "b", "c"])
    for src in (ItemItemSource(l2=2.0), CoVisitationSource(), PopularSource()):
        src.fit(h).save(tmp_path / src.name)
        back = CandidateSource.load(tmp_path / src.name)
        np.testing.assert_allclose(back.dense_scores(["u2"], h), src.dense_scores(["u2"], h))
