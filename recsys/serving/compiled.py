"""Compiled ranker for the serving path: the LightGBM boosters as native code (lleaves, LLVM).

The rank stage scores ~200 candidates per request with three seed boosters; LightGBM's own predict costs
~0.6 ms per booster for that on the 2-core box, lleaves' compiled forest ~0.06 ms, with the same numbers
(differences ~1e-16; tests/recsys/serving/test_compiled.py checks equality on real feature rows, NaNs
included). Compiling takes ~3 s per booster, so compiled objects are cached on disk by a hash of the model
text (`RECSYS_COMPILE_CACHE`, default <tmp>/recsys-lleaves): a reloaded bundle or a second worker loads them
in milliseconds. Written under a per-process name and renamed, so workers compiling at once never read a
half-written file. Without lleaves installed (or for XGBoost) `compiled_predictor` returns None and the
Recommender uses the ranker's own predict.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import weakref
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # ranker -> predictor (or None)
_LOCK = threading.Lock()


def cache_dir() -> Path:
    return Path(os.environ.get("RECSYS_COMPILE_CACHE") or Path(tempfile.gettempdir()) / "recsys-lleaves")


def compiled_predictor(ranker):
    """`predict(X: float64 array in ranker.feature_names order) -> scores` (mean over the seed models,
    like `Ranker.predict`), or None when it cannot be compiled here."""
    if ranker is None or getattr(ranker, "kind", None) != "lightgbm":
        return None
    with _LOCK:
        if ranker in _CACHE:
            return _CACHE[ranker]
        try:
            predictor = _compile(ranker)
        except Exception as err:  # noqa: BLE001 - an optional speed-up: never fail serving over it
            log.warning("ranker not compiled (%s); serving uses LightGBM's predict", err)
            predictor = None
        _CACHE[ranker] = predictor
        return predictor


def _compile(ranker):
    try:
        import lleaves
    except ImportError:
        return None
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    models = []
    for booster in ranker.models:
        text = booster.model_to_string(num_iteration=ranker.best_iteration)
        key = hashlib.sha256(text.encode()).hexdigest()[:32]
        source, obj = root / f"{key}.txt", root / f"{key}.o"
        if not source.exists():
            _write_atomically(source, lambda tmp: tmp.write_text(text))
        model = lleaves.Model(model_file=str(source))
        if obj.exists():
            model.compile(cache=str(obj))
        else:
            tmp = root / f"{key}.{os.getpid()}.{threading.get_ident()}.o"
            model.compile(cache=str(tmp))
            os.replace(tmp, obj)
        models.append(model)

    def predict(X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float64)
        return np.mean([m.predict(X, n_jobs=1) for m in models], axis=0)

    return predict


def _write_atomically(path: Path, write) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    write(tmp)
    os.replace(tmp, path)
