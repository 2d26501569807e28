"""Internals of the two-tower retrieval model (recsys.retrieval.two_tower): attribute encoders, the tower
forward pass written once for numpy (serving) and TensorFlow (training), and the TFRS training loop.

Tower = concat(id embedding, attribute embeddings, numeric attributes, pooled history embeddings)
-> Dense+ReLU layers -> Dense(embedding_dim) -> optional L2 normalisation. Index 0 of every table means
OOV / missing / padding, so unknown ids and values never fail, they fall back to a learned or zero vector.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd

MULTI_SEP = "|"
MAX_TOKENS = 32  # multi-valued attributes keep at most this many values per row


# ----------------------------------------------------------------------------------------------- encoders
def feature_specs(df: pd.DataFrame, id_col: str, columns, max_vocab: int) -> list[dict]:
    """One encoder per attribute column: numeric -> standardised float; strings/bools -> vocabulary
    (most frequent first); strings containing "|" (or list values) -> multi-valued bag of tokens."""
    columns = [c for c in df.columns if c != id_col] if columns is None else list(columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"feature columns {missing} not in table with columns {list(df.columns)}")
    specs = []
    for c in columns:
        s = df[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            s = _days(s)
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            v = s.astype(float)
            mean, std = float(np.nan_to_num(v.mean())), float(np.nan_to_num(v.std()))
            specs.append({"name": c, "kind": "num", "mean": mean, "std": std if std > 0 else 1.0})
            continue
        tokens = _tokens(s.dropna())
        multi = tokens is not None
        counts = (pd.Series([t for ts in tokens for t in ts]) if multi else s.dropna().astype(str)).value_counts()
        vocab = counts.index.astype(str).tolist()[:max_vocab]
        spec = {"name": c, "kind": "multi" if multi else "cat", "vocab": vocab}
        if multi:
            spec["max_len"] = int(min(MAX_TOKENS, max([len(t) for t in tokens] or [1])))
        specs.append(spec)
    return specs


def _days(s):
    return pd.Series(pd.to_datetime(s, utc=True).astype("int64") / 8.64e13, index=s.index).where(s.notna())


def _tokens(s: pd.Series):
    """List of token lists if the column is multi-valued, else None."""
    if len(s) and isinstance(s.iloc[0], (list, tuple, set, np.ndarray)):
        return [[str(t) for t in v] for v in s]
    s = s.astype(str)
    if not s.str.contains(MULTI_SEP, regex=False).any():
        return None
    return [[t.strip() for t in v.split(MULTI_SEP) if t.strip()] for v in s]


def encode(df: pd.DataFrame, specs: list[dict]) -> dict[str, np.ndarray]:
    """Attribute columns -> arrays (cat int32 [n], multi int32 [n, max_len], num float32 [n]). Missing
    columns or values encode as missing (index 0 / the training mean)."""
    out = {}
    for sp in specs:
        name, n = sp["name"], len(df)
        s = df[sp["name"]] if sp["name"] in df.columns else pd.Series([None] * n, index=df.index, dtype=object)
        if sp["kind"] == "num":
            s = _days(s) if pd.api.types.is_datetime64_any_dtype(s) else pd.to_numeric(s, errors="coerce")
            out[name] = np.nan_to_num(((s.astype(float) - sp["mean"]) / sp["std"]).to_numpy()).astype(np.float32)
            continue
        lut = {v: i + 1 for i, v in enumerate(sp["vocab"])}
        if sp["kind"] == "cat":
            out[name] = s.map(lambda v: lut.get(str(v), 0) if pd.notna(v) else 0).to_numpy(np.int32)
            continue
        arr = np.zeros((n, sp["max_len"]), np.int32)
        for r, v in enumerate(s.tolist()):
            if isinstance(v, (list, tuple, set, np.ndarray)):
                toks = [str(t) for t in v]
            elif v is None or (isinstance(v, float) and np.isnan(v)):
                continue
            else:
                toks = [t.strip() for t in str(v).split(MULTI_SEP)]
            idx = [j for j in (lut.get(t, 0) for t in toks) if j][: sp["max_len"]]
            arr[r, : len(idx)] = idx
        out[name] = arr
    return out


# ------------------------------------------------------------------------------------------- forward pass
NP = SimpleNamespace(
    take=lambda t, i: t[i],
    concat=lambda xs: np.concatenate(xs, axis=1),
    sum=lambda x, axis: x.sum(axis=axis),
    maximum=np.maximum,
    relu=lambda x: np.maximum(x, 0),
    f32=lambda x: np.asarray(x, np.float32),
    l2n=lambda x: x / np.sqrt(np.maximum((x * x).sum(axis=1, keepdims=True), 1e-12)),
)


def _pool(ops, emb, w):
    """Weighted mean over axis 1 of emb [n, L, d] with weights w [n, L] (0 = padding); empty -> zeros."""
    return ops.sum(emb * w[:, :, None], 1) / ops.maximum(ops.sum(w, 1)[:, None], 1e-6)


def decay_weights(config) -> np.ndarray:
    """History position weights; histories are right-aligned, so the last slot is the most recent item."""
    n = config.history_length
    return (config.history_decay ** np.arange(n - 1, -1, -1)).astype(np.float32)


def tower(ops, w, side, specs, config, ids, feats, hist=None):
    parts = [ops.take(w[f"{side}/id"], ids)]
    for sp in specs:
        x, table = feats[sp["name"]], w.get(f"{side}/f/{sp['name']}")
        if sp["kind"] == "num":
            parts.append(ops.f32(x)[:, None])
        elif sp["kind"] == "cat":
            parts.append(ops.take(table, x))
        else:
            parts.append(_pool(ops, ops.take(table, x), ops.f32(x > 0)))
    if hist is not None and config.history_length:
        parts.append(_pool(ops, ops.take(w[f"{side}/hist"], hist), ops.f32(hist > 0) * decay_weights(config)))
    x = ops.concat(parts)
    for i in range(len(config.hidden_units)):
        x = ops.relu(x @ w[f"{side}/dense{i}/kernel"] + w[f"{side}/dense{i}/bias"])
    x = x @ w[f"{side}/out/kernel"] + w[f"{side}/out/bias"]
    return ops.l2n(x) if config.normalize else x


def init_weights(config, specs, n_users: int, n_items: int) -> dict[str, np.ndarray]:
    """Seeded numpy initialisation (embeddings ~ N(0, 0.05), Glorot-uniform kernels, zero biases)."""
    rng = np.random.default_rng(config.seed)
    w = {}
    for side, n_ids in (("user", n_users), ("item", n_items)):
        w[f"{side}/id"] = rng.normal(0, 0.05, (n_ids + 1, config.id_embedding_dim))
        width = config.id_embedding_dim
        for sp in specs[side]:
            if sp["kind"] == "num":
                width += 1
            else:
                w[f"{side}/f/{sp['name']}"] = rng.normal(0, 0.05, (len(sp["vocab"]) + 1, config.feature_embedding_dim))
                width += config.feature_embedding_dim
        if side == "user" and config.history_length:
            w["user/hist"] = rng.normal(0, 0.05, (n_items + 1, config.embedding_dim))
            width += config.embedding_dim
        for i, units in enumerate(list(config.hidden_units) + [config.embedding_dim]):
            name = f"{side}/dense{i}" if i < len(config.hidden_units) else f"{side}/out"
            lim = np.sqrt(6.0 / (width + units))
            w[f"{name}/kernel"], w[f"{name}/bias"] = rng.uniform(-lim, lim, (width, units)), np.zeros(units)
            width = units
    return {k: v.astype(np.float32) for k, v in w.items()}


# --------------------------------------------------------------------------------------------- TF training
@contextlib.contextmanager
def _native_logs_quiet():
    """TensorFlow's native libraries log while they load ("Could not find cuda drivers", absl's "All log
    messages before absl::InitializeLog()") through absl, which ignores TF_CPP_MIN_LOG_LEVEL at that point.
    When that variable asks for no info logs (run.py sets it unless --verbose), hold file descriptor 2
    during the import; what was written is shown if the import fails."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") < "1" or "tensorflow" in sys.modules:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def fit_tf(config, specs, examples, user_table, item_feats, sizes, evaluate, progress):
    """Train with TFRS in-batch softmax; after each epoch `evaluate(numpy weights)` gives the validation
    recall used for early stopping. `progress` (recsys.progress.Bar) advances per batch and writes one line
    per epoch. Returns (best weights, per-epoch history)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TFRS needs Keras 2 (tf-keras)
    with _native_logs_quiet():
        import tensorflow as tf
        import tensorflow_recommenders as tfrs

    tf.keras.utils.set_random_seed(config.seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # noqa: BLE001 - older TF or already configured: best effort only
        pass
    TF = SimpleNamespace(take=tf.gather, concat=lambda xs: tf.concat(xs, 1), sum=tf.reduce_sum,
                         maximum=tf.maximum, relu=tf.nn.relu, f32=lambda x: tf.cast(x, tf.float32),
                         l2n=lambda x: tf.math.l2_normalize(x, axis=1))
    init = init_weights(config, specs, *sizes)
    u_tab = {k: tf.constant(v) for k, v in user_table.items()}
    i_tab = {k: tf.constant(v) for k, v in item_feats.items()}

    class Towers(tfrs.Model):
        def __init__(self):
            super().__init__()
            self.w = {k: tf.Variable(v, name=k.replace("/", "_")) for k, v in init.items()}
            self.task = tfrs.tasks.Retrieval(
                loss=tf.keras.losses.CategoricalCrossentropy(from_logits=True),  # mean over the batch
                loss_metrics=[tf.keras.metrics.Mean("epoch_loss")], temperature=config.temperature,
                remove_accidental_hits=config.remove_accidental_hits)

        def _drop(self, x, training, rate):
            """Replace whole rows by 0 (= OOV id / missing attribute) with probability `rate`."""
            if not training or rate <= 0:
                return x
            keep = tf.random.uniform(tf.shape(x)[:1]) >= rate
            return tf.where(tf.reshape(keep, [-1] + [1] * (len(x.shape) - 1)), x, tf.zeros_like(x))

        def _feats(self, table, rows, training):
            return {k: self._drop(tf.gather(v, rows), training, config.feature_dropout) for k, v in table.items()}

        def compute_loss(self, b, training=False):
            uf, itf = self._feats(u_tab, b["urow"], training), self._feats(i_tab, b["irow"], training)
            uid, iid = (self._drop(b[k], training, config.id_dropout) for k in ("uid", "iid"))
            q = tower(TF, self.w, "user", specs["user"], config, uid, uf, b["hist"])
            c = tower(TF, self.w, "item", specs["item"], config, iid, itf)
            return self.task(q, c, candidate_ids=b["irow"], compute_metrics=False,
                             candidate_sampling_probability=b["prob"] if config.logq_correction else None)

    model = Towers()
    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
    n = len(examples["uid"])
    ds = (tf.data.Dataset.from_tensor_slices(examples)
          .shuffle(n, seed=config.seed, reshuffle_each_iteration=True)
          .batch(config.batch_size).prefetch(2))
    state = {"best": -1.0, "weights": None, "wait": 0, "t": time.time()}
    history = []

    def log(msg):
        progress.write(f"[two_tower] {msg}")

    class EarlyStop(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            progress.update()

        def on_epoch_end(self, epoch, logs=None):
            w = {k: v.numpy() for k, v in model.w.items()}
            rec = float(evaluate(w))
            improved = not rec <= state["best"]  # NaN (no valid data) counts as improving: keep last
            if improved:
                state.update(best=rec if rec == rec else state["best"], weights=w, wait=0)
            else:
                state["wait"] += 1
            history.append({"epoch": epoch + 1, "loss": float(logs["epoch_loss"]), "val_recall": rec,
                            "seconds": round(time.time() - state["t"], 2)})
            scored = f" val_recall@{config.eval_k}={rec:.4f}{' *' if improved else ''}" if rec == rec else ""
            log(f"epoch {epoch + 1}/{config.epochs} loss={logs['epoch_loss']:.4f}{scored} ({history[-1]['seconds']}s)")
            state["t"] = time.time()
            if state["wait"] >= config.patience:
                log(f"early stop: no improvement for {config.patience} epochs")
                model.stop_training = True

    model.fit(ds, epochs=config.epochs, verbose=1 if config.verbose >= 2 else 0, callbacks=[EarlyStop()])
    return state["weights"], history
