"""Two-tower retrieval quality on MovieLens-100K (standalone; reads RecBole-format atomic files).

Protocol: every rating is an implicit interaction; per user, sorted by timestamp (stable on file order),
the last round(0.1 n) (min 1) go to test, the round(0.1 n) before them to valid, the rest to train. The model
trains on train and early-stops on valid; each test user is then scored with history = train + valid items,
full ranking over all 1682 items with train + valid items masked; NDCG@10 and Recall@10 are averaged over
test users. A popularity baseline under the same protocol is printed for reference.

    python benchmarks/two_tower_movielens.py [--data-dir /tmp/recbole_dl/ml] [--embedding-dim 64 ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from recsys.retrieval.two_tower import TwoTowerConfig, train_two_tower  # noqa: E402


def load(data_dir: Path):
    def read(ext):
        df = pd.read_csv(data_dir / f"ml-100k.{ext}", sep="\t", dtype=str, keep_default_na=False)
        return df.rename(columns=lambda c: c.split(":")[0])

    inter = read("inter")
    inter = pd.DataFrame({
        "user_id": inter["user_id"], "item_id": inter["item_id"],
        "timestamp": pd.to_datetime(inter["timestamp"].astype(float).astype("int64"), unit="s", utc=True),
        "event_type": "rating", "value": inter["rating"].astype(float)})
    it = read("item")
    items = pd.DataFrame({"item_id": it["item_id"], "genres": it["class"].str.split().str.join("|"),
                          "year": pd.to_numeric(it["release_year"], errors="coerce")})
    us = read("user")
    users = pd.DataFrame({"user_id": us["user_id"], "age": us["age"].astype(float), "gender": us["gender"],
                          "occupation": us["occupation"], "zip3": us["zip_code"].str[:3]})
    return inter, items, users


def split(inter: pd.DataFrame, tie_break: str = "file"):
    """ML-100K has many same-second ratings, and their order moves the figures by ~0.01 NDCG: "file" keeps
    the raw file order within a second, "item" orders ties by numeric item id."""
    if tie_break == "item":
        inter = inter.sort_values("item_id", key=lambda s: s.astype(int), kind="stable")
    df = inter.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    n = df.groupby("user_id")["item_id"].transform("size").to_numpy()
    pos = df.groupby("user_id").cumcount().to_numpy()
    n_hold = np.maximum(np.round(n * 0.1), 1)
    test = pos >= n - n_hold
    valid = ~test & (pos >= n - 2 * n_hold)
    return df[~test & ~valid], df[valid], df[test]


def evaluate(scores: np.ndarray, users, item_ids, seen: dict, truth: dict, k: int = 10):
    """Mean NDCG@k / Recall@k; scores [n_users, n_items] over item_ids, seen items masked."""
    col = {i: c for c, i in enumerate(item_ids)}
    scores = scores.copy()
    for r, u in enumerate(users):
        scores[r, [col[i] for i in seen.get(u, ()) if i in col]] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg, rec = [], []
    for r, u in enumerate(users):
        hit = np.isin(np.asarray(item_ids)[top[r]], list(truth[u]))
        ndcg.append((hit * disc).sum() / disc[: min(len(truth[u]), k)].sum())
        rec.append(hit.sum() / len(truth[u]))
    return float(np.mean(ndcg)), float(np.mean(rec))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="/tmp/recbole_dl/ml", type=Path)
    d = TwoTowerConfig()
    for name in ("embedding_dim", "id_embedding_dim", "feature_embedding_dim", "history_length", "epochs",
                 "batch_size", "patience", "eval_k", "seed", "verbose"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    for name in ("learning_rate", "temperature", "history_decay", "id_dropout"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name))
    p.add_argument("--hidden-units", default=",".join(map(str, d.hidden_units)), help="e.g. 128 or '' for none")
    p.add_argument("--tie-break", choices=("file", "item"), default="file")
    p.add_argument("--no-logq", action="store_true")
    p.add_argument("--no-features", action="store_true", help="ids + history only")
    p.add_argument("--all-columns", action="store_true", help="default feature columns (all non-id)")
    a = p.parse_args(argv)

    inter, items, users = load(a.data_dir)
    train, valid, test = split(inter, a.tie_break)
    print(f"interactions: train {len(train)}, valid {len(valid)}, test {len(test)}; "
          f"users {inter.user_id.nunique()}, items {len(items)}")
    feats = {} if a.all_columns else {"user_features": ["age", "gender", "occupation", "zip3"],
                                      "item_features": ["genres", "year"]}
    if a.no_features:
        feats = {"user_features": [], "item_features": []}
    cfg = TwoTowerConfig(
        embedding_dim=a.embedding_dim, id_embedding_dim=a.id_embedding_dim,
        feature_embedding_dim=a.feature_embedding_dim,
        hidden_units=[int(x) for x in a.hidden_units.split(",") if x.strip()], history_length=a.history_length,
        history_decay=a.history_decay, id_dropout=a.id_dropout, epochs=a.epochs, batch_size=a.batch_size,
        learning_rate=a.learning_rate, temperature=a.temperature, logq_correction=not a.no_logq,
        patience=a.patience, eval_k=a.eval_k, seed=a.seed, verbose=a.verbose, **feats)
    print(cfg)

    t0 = time.time()
    model = train_two_tower(train, valid, items, users, cfg)
    train_s = time.time() - t0

    known = pd.concat([train, valid])
    known_hist = known.groupby("user_id")["item_id"].agg(list).to_dict()  # time-ordered (split keeps order)
    seen = {u: set(v) for u, v in known_hist.items()}
    truth = test.groupby("user_id")["item_id"].agg(set).to_dict()
    test_users = sorted(truth)
    t1 = time.time()
    uvec = model.user_embeddings(test_users, [known_hist.get(u, []) for u in test_users])
    infer_s = time.time() - t1
    ndcg, rec = evaluate(uvec @ model.item_embeddings.T, test_users, model.item_ids, seen, truth)

    pop = known["item_id"].value_counts()
    pop_scores = np.tile(pop.reindex(model.item_ids).fillna(0).to_numpy(float), (len(test_users), 1))
    pndcg, prec = evaluate(pop_scores, test_users, model.item_ids, seen, truth)

    t2 = time.time()
    for _ in range(200):
        model.user_embeddings([test_users[0]], [known_hist[test_users[0]]])
    single_ms = (time.time() - t2) / 200 * 1e3
    best = max(model.history, key=lambda h: h["val_recall"])
    print(f"\nepochs run {len(model.history)}, best epoch {best['epoch']} (val recall@{cfg.eval_k} "
          f"{best['val_recall']:.4f}); train time {train_s:.1f}s")
    print(f"user vectors: {len(test_users)} users in {infer_s * 1e3:.1f} ms; single user {single_ms:.3f} ms")
    print(f"test users {len(test_users)}, items ranked {len(model.item_ids)}")
    print(f"popularity  NDCG@10 {pndcg:.4f}  Recall@10 {prec:.4f}")
    print(f"two-tower   NDCG@10 {ndcg:.4f}  Recall@10 {rec:.4f}")
    return ndcg, rec


if __name__ == "__main__":
    main()
