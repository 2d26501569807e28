"""Two-tower retrieval model: stage 1 of retrieve -> filter -> rank -> re-rank.

A user tower (user id + user attributes + pooled embeddings of the user's last N items) and an item tower
(item id + attributes, "|"-joined multi-values as a bag) are trained with TFRS in-batch softmax
(`tfrs.tasks.Retrieval`). Item vectors for the whole catalogue go into `recsys.retrieval.index.AnnIndex`;
`TwoTowerSource` (sources.py) scores user vectors against them.

Inference runs in numpy, not TF: both towers are embedding look-ups + a small MLP, and one forward function
(`_tower`) is written once over an ops shim, so training (TF) and serving (numpy) share the exact maths. That
keeps a single-user vector at ~tens of microseconds, makes `load` free of TensorFlow (fast service start) and
avoids tf.function retracing. Only `train_two_tower` imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from recsys.data.schema import ITEM_ID, TIMESTAMP, USER_ID
from recsys.progress import Bar
from recsys.retrieval import _towers as tw


@dataclass
class TwoTowerConfig:
    embedding_dim: int = 64  # output vector size (what the ANN index stores)
    id_embedding_dim: int = 32  # user/item id tables; the history table uses embedding_dim
    feature_embedding_dim: int = 16  # categorical / multi-valued attribute tables
    hidden_units: list[int] = field(default_factory=lambda: [128])
    user_features: list[str] | None = None  # None: every non-id column of the users table
    item_features: list[str] | None = None  # None: every non-id column of the items table
    history_length: int = 20  # last N items pooled into the user vector; 0 disables
    history_decay: float = 0.8  # weight of the j-th most recent item is decay**j; 1.0 = plain mean
    id_dropout: float = 0.1  # ids replaced by OOV while training so unknown users/items get useful vectors
    feature_dropout: float = 0.1  # each attribute likewise set missing, so history still counts without them
    epochs: int = 30
    batch_size: int = 512  # in-batch negatives per example; 256-1024 were within noise on ML-100K
    learning_rate: float = 3e-3
    temperature: float = 0.1  # softmax temperature on cosine scores (normalize=True)
    normalize: bool = True
    logq_correction: bool = True  # subtract log item frequency so in-batch negatives don't over-punish hits
    remove_accidental_hits: bool = True
    patience: int = 3
    eval_k: int = 50
    eval_max_users: int = 5000  # early stopping scores at most this many valid users (sampled with seed)
    max_vocab: int = 100_000
    seed: int = 42
    verbose: int = 1  # 0 silent, 1 one line per epoch, 2 also the keras progress bar


class TwoTowerModel:
    """Trained towers as numpy arrays, catalogue item vectors, and the vocabularies needed to encode ids."""

    def __init__(self, config, specs, weights, item_vocab, user_vocab, user_table_ids, user_table,
                 user_hist, item_ids, item_embeddings=None, history=None):
        self.config = config
        self.specs = specs  # {"user": [...], "item": [...]} attribute encoders (see _towers.feature_spec)
        self.weights = weights  # name -> np.ndarray (see _towers.init_weights)
        self.item_vocab = np.asarray(item_vocab, dtype=str)  # train items; id index = position + 1
        self.user_vocab = np.asarray(user_vocab, dtype=str)  # train users; id index = position + 1
        self.user_table_ids = np.asarray(user_table_ids, dtype=str)  # users-table rows; last row = missing
        self.user_table = user_table  # encoded user attributes, one extra all-missing row at the end
        self.user_hist = user_hist  # [len(user_vocab)+1, N] last N train items (vocab index), row 0 empty
        self.item_ids = np.asarray(item_ids, dtype=str)
        self.history = list(history or [])
        self._ix = {}
        self.item_embeddings = item_embeddings  # filled by the caller from embed_items when None

    def _index(self, name, keys, offset):
        if name not in self._ix:
            self._ix[name] = {k: i + offset for i, k in enumerate(keys.tolist())}
        return self._ix[name]

    @property
    def item_index(self) -> dict[str, int]:
        """Item id -> row of `item_ids` / `item_embeddings`."""
        return self._index("items", self.item_ids, 0)

    def encode_histories(self, histories: Sequence[Sequence[str] | None], default_rows=None) -> np.ndarray:
        """Item-id sequences (most recent LAST) -> [n, N] right-aligned vocab indices; unknown items dropped.
        A None entry takes the stored train history of `default_rows[i]`."""
        n_hist = self.config.history_length
        vocab = self._index("item_vocab", self.item_vocab, 1)
        out = np.zeros((len(histories), n_hist), dtype=np.int32)
        for r, h in enumerate(histories):
            if h is None:
                out[r] = self.user_hist[default_rows[r]] if default_rows is not None else 0
                continue
            idx = [j for j in (vocab.get(str(i), 0) for i in h) if j][-n_hist:] if n_hist else []
            if idx:
                out[r, n_hist - len(idx):] = idx
        return out

    def user_embeddings(self, user_ids: Sequence[str], histories=None) -> np.ndarray:
        """float32 [n, d] user vectors. Unknown users get the OOV id vector plus their attributes (if the
        users table had them). histories: per user item ids, most recent last; None = stored train history."""
        user_ids = [str(u) for u in user_ids]
        vocab = self._index("user_vocab", self.user_vocab, 1)
        table = self._index("user_table", self.user_table_ids, 0)
        uid = np.fromiter((vocab.get(u, 0) for u in user_ids), np.int64, len(user_ids))
        rows = np.fromiter((table.get(u, -1) for u in user_ids), np.int64, len(user_ids))
        feats = {k: v[rows] for k, v in self.user_table.items()}  # row -1 is the all-missing row
        hist = None
        if self.config.history_length:
            hist = self.encode_histories([None] * len(user_ids) if histories is None else histories, uid)
        return tw.tower(tw.NP, self.weights, "user", self.specs["user"], self.config, uid, feats, hist)

    def embed_items(self, items_df: pd.DataFrame) -> np.ndarray:
        """float32 [n, d] vectors for items from their attributes (cold-start items need no retraining)."""
        vocab = self._index("item_vocab", self.item_vocab, 1)
        ids = items_df[ITEM_ID].astype(str).tolist()
        iid = np.fromiter((vocab.get(i, 0) for i in ids), np.int64, len(ids))
        feats = tw.encode(items_df, self.specs["item"])
        return tw.tower(tw.NP, self.weights, "item", self.specs["item"], self.config, iid, feats)

    def add_items(self, items_df: pd.DataFrame) -> None:
        """Append new catalogue items (not already present) with attribute-based vectors."""
        new = items_df[~items_df[ITEM_ID].astype(str).isin(self.item_index)]
        if len(new):
            self.item_embeddings = np.vstack([self.item_embeddings, self.embed_items(new)])
            self.item_ids = np.concatenate([self.item_ids, new[ITEM_ID].astype(str).to_numpy(dtype=str)])
            self._ix.pop("items", None)

    def save(self, path) -> Path:
        """Directory with config.json (config, encoders, history) and arrays.npz (no pickle, no TF)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"format": "recsys.two_tower/1", "config": dataclasses.asdict(self.config),
                "specs": self.specs, "history": self.history}
        (path / "config.json").write_text(json.dumps(meta, indent=1, default=float))
        arrays = {f"w:{k}": v for k, v in self.weights.items()}
        arrays.update({f"u:{k}": v for k, v in self.user_table.items()})
        np.savez(path / "arrays.npz", item_vocab=self.item_vocab, user_vocab=self.user_vocab,
                 user_table_ids=self.user_table_ids, user_hist=self.user_hist, item_ids=self.item_ids,
                 item_embeddings=self.item_embeddings, **arrays)
        return path

    @classmethod
    def load(cls, path) -> "TwoTowerModel":
        path = Path(path)
        meta = json.loads((path / "config.json").read_text())
        with np.load(path / "arrays.npz", allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        pick = lambda p: {k[len(p):]: v for k, v in a.items() if k.startswith(p)}  # noqa: E731
        known = {f.name for f in dataclasses.fields(TwoTowerConfig)}  # tolerate fields added later
        config = TwoTowerConfig(**{k: v for k, v in meta["config"].items() if k in known})
        return cls(config, meta["specs"], pick("w:"), a["item_vocab"],
                   a["user_vocab"], a["user_table_ids"], pick("u:"), a["user_hist"], a["item_ids"],
                   a["item_embeddings"], meta["history"])


def _log(config, msg):
    if config.verbose:
        print(f"[two_tower] {msg}", flush=True)


def train_two_tower(train: pd.DataFrame, valid: pd.DataFrame | None, items: pd.DataFrame | None,
                    users: pd.DataFrame | None, config: TwoTowerConfig | None = None) -> TwoTowerModel:
    """Fit the towers on `train` interactions, early-stopping on recall@eval_k of `valid` users (their
    train items masked), and return the best epoch's model with catalogue = items table ∪ train items."""
    config = config or TwoTowerConfig()
    if not len(train):
        raise ValueError("train_two_tower needs at least one train interaction")
    t0 = time.time()
    items = items if items is not None else pd.DataFrame({ITEM_ID: pd.Series(dtype=str)})
    users = users if users is not None else pd.DataFrame({USER_ID: pd.Series(dtype=str)})
    train = train.assign(**{USER_ID: train[USER_ID].astype(str), ITEM_ID: train[ITEM_ID].astype(str)})
    train = train.sort_values([USER_ID, TIMESTAMP], kind="stable").reset_index(drop=True)

    # Catalogue = items table, then train items missing from it (their attributes count as missing).
    items = items.assign(**{ITEM_ID: items[ITEM_ID].astype(str)}).drop_duplicates(ITEM_ID)
    extra = pd.unique(train[ITEM_ID][~train[ITEM_ID].isin(items[ITEM_ID])])
    catalogue = pd.concat([items, pd.DataFrame({ITEM_ID: extra})], ignore_index=True)
    users = users.assign(**{USER_ID: users[USER_ID].astype(str)}).drop_duplicates(USER_ID)
    specs = {"user": tw.feature_specs(users, USER_ID, config.user_features, config.max_vocab),
             "item": tw.feature_specs(items, ITEM_ID, config.item_features, config.max_vocab)}

    item_ids = catalogue[ITEM_ID].to_numpy(dtype=str)
    cat_row = {k: i for i, k in enumerate(item_ids.tolist())}
    item_vocab = item_ids[np.isin(item_ids, train[ITEM_ID].unique())]  # id embeddings only for train items
    vocab_ix = {k: i + 1 for i, k in enumerate(item_vocab.tolist())}
    user_vocab = pd.unique(train[USER_ID]).astype(str)  # sorted order of `train`; index = position + 1
    user_table_ids = users[USER_ID].to_numpy(dtype=str)
    user_table = tw.encode(pd.concat([users, users.iloc[:0].reindex([0])], ignore_index=True),
                           specs["user"])  # + the all-missing row

    # One example per train interaction: (user, item, the user's previous <= N items in time order).
    t_items = train[ITEM_ID].map(vocab_ix).to_numpy(np.int32)
    t_users = train[USER_ID].to_numpy(dtype=str)
    starts = np.r_[0, np.flatnonzero(t_users[1:] != t_users[:-1]) + 1]
    lengths = np.diff(np.r_[starts, len(train)])
    first = np.repeat(starts, lengths)
    n_hist = config.history_length
    # History = items strictly earlier in time: same-timestamp events (bulk ratings, one basket) are not
    # ordered, so they must not see each other; end each window at the start of the example's tie run.
    ts = train[TIMESTAMP].to_numpy()
    new_run = np.r_[True, (t_users[1:] != t_users[:-1]) | (ts[1:] != ts[:-1])]
    run_start = np.maximum.accumulate(np.where(new_run, np.arange(len(train)), 0))
    pos = run_start[:, None] - n_hist + np.arange(n_hist)[None, :]
    hist = np.where(pos >= first[:, None], t_items[np.maximum(pos, 0)], 0).astype(np.int32)
    ends = starts + lengths  # stored history for inference = last N train items of each user
    hpos = ends[:, None] - n_hist + np.arange(n_hist)[None, :]
    user_hist = np.zeros((len(user_vocab) + 1, n_hist), np.int32)
    user_hist[1:] = np.where(hpos >= starts[:, None], t_items[np.maximum(hpos, 0)], 0)
    t_table = {k: i for i, k in enumerate(user_table_ids.tolist())}
    freq = np.bincount(t_items, minlength=len(item_vocab) + 1) / len(train)
    examples = {
        "uid": np.repeat(np.arange(1, len(user_vocab) + 1), lengths).astype(np.int32),
        "urow": train[USER_ID].map(t_table).fillna(len(user_table_ids)).to_numpy(np.int32),
        "iid": t_items, "irow": train[ITEM_ID].map(cat_row).to_numpy(np.int32), "hist": hist,
        "prob": freq[t_items].astype(np.float32)}

    model = TwoTowerModel(config, specs, {}, item_vocab, user_vocab, user_table_ids, user_table,
                          user_hist, item_ids)
    cat_iid = np.array([vocab_ix.get(i, 0) for i in item_ids], np.int64)
    item_feats = tw.encode(catalogue, specs["item"])
    evaluate = _valid_recall_fn(model, train, valid, cat_row, config)

    def refresh(weights):  # point the model at new weights and recompute catalogue vectors
        model.weights = weights
        model.item_embeddings = tw.tower(tw.NP, weights, "item", specs["item"], config, cat_iid, item_feats)
        return model

    steps = -(-len(train) // config.batch_size)
    with Bar(config.epochs * steps, "two-tower", "batch", enabled=bool(config.verbose)) as progress:
        weights, history = tw.fit_tf(config, specs, examples, user_table, item_feats,
                                     (len(user_vocab), len(item_vocab)), lambda w: evaluate(refresh(w)), progress)
    refresh(weights).history = history
    scored = [h["val_recall"] for h in history if h["val_recall"] == h["val_recall"]]  # none: no valid data
    _log(config, f"done in {time.time() - t0:.1f}s" + (f"; best val recall@{config.eval_k}={max(scored):.4f}"
                                                        if scored else ""))
    return model


def _valid_recall_fn(model, train, valid, cat_row, config):
    """Honest early-stopping metric: each valid user is scored from their train history over the whole
    catalogue with train items masked; recall@k of valid items not already seen in train."""
    if valid is None or not len(valid):
        return lambda m: float("nan")
    seen = train.groupby(USER_ID)[ITEM_ID].agg(set).to_dict()
    truth = {}
    for u, i in zip(valid[USER_ID].astype(str), valid[ITEM_ID].astype(str)):
        if i not in seen.get(u, ()):
            truth.setdefault(u, set()).add(i)
    users = sorted(truth)
    if len(users) > config.eval_max_users:
        users = sorted(np.random.default_rng(config.seed).choice(users, config.eval_max_users, replace=False))

    def recall(m: TwoTowerModel) -> float:
        k = min(config.eval_k, len(m.item_ids))
        chunk = max(1, int(2e7 // max(len(m.item_ids), 1)))
        total = 0.0
        for s in range(0, len(users), chunk):
            us = users[s:s + chunk]
            scores = m.user_embeddings(us) @ m.item_embeddings.T
            for r, u in enumerate(us):
                scores[r, [cat_row[i] for i in seen.get(u, ())]] = -np.inf
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            for r, u in enumerate(us):
                total += len(truth[u] & set(m.item_ids[top[r]].tolist())) / len(truth[u])
        return total / len(users)
    return recall
