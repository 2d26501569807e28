"""Learning-to-rank models behind one small interface: the rank stage of retrieve -> filter -> rank.

`fit` takes query groups (one per user, consecutive rows) with graded labels; `predict` scores rows. The
two implementations are LightGBM lambdarank (default) and XGBoost rank:ndcg; both save to a directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


class Ranker:
    kind = "ranker"

    def __init__(self, params: dict | None = None, num_rounds: int = 300, early_stopping: int = 30):
        self.params = dict(params or {})
        self.num_rounds, self.early_stopping = int(num_rounds), int(early_stopping)
        self.feature_names: list[str] = []
        self.best_iteration: int | None = None

    def fit(self, X: pd.DataFrame, y: np.ndarray, group: np.ndarray, X_valid=None, y_valid=None,
            group_valid=None) -> Ranker:
        raise NotImplementedError

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def feature_importance(self) -> pd.DataFrame:
        raise NotImplementedError

    def _meta(self) -> dict:
        return {"kind": self.kind, "params": self.params, "num_rounds": self.num_rounds,
                "early_stopping": self.early_stopping, "feature_names": self.feature_names,
                "best_iteration": self.best_iteration}

    @staticmethod
    def load(path: Path) -> Ranker:
        path = Path(path)
        meta = json.loads((path / "ranker.json").read_text())
        ranker = RANKERS[meta["kind"]](meta["params"], meta["num_rounds"], meta["early_stopping"])
        ranker.feature_names, ranker.best_iteration = meta["feature_names"], meta["best_iteration"]
        ranker._load_model(path)
        return ranker


class LightGBMRanker(Ranker):
    kind = "lightgbm"
    DEFAULTS = {"objective": "lambdarank", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 50,
                "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
                "lambdarank_truncation_level": 20, "eval_at": [10], "verbose": -1, "seed": 42,
                "num_threads": 2, "deterministic": True, "force_row_wise": True}

    def fit(self, X, y, group, X_valid=None, y_valid=None, group_valid=None):
        import lightgbm as lgb

        self.feature_names = list(X.columns)
        params = {**self.DEFAULTS, **self.params}
        train = lgb.Dataset(X, y, group=group)
        callbacks, valid_sets = [], []
        if X_valid is not None and len(X_valid):
            valid_sets = [lgb.Dataset(X_valid, y_valid, group=group_valid, reference=train)]
            callbacks = [lgb.early_stopping(self.early_stopping, verbose=False)]
        self.model = lgb.train(params, train, self.num_rounds, valid_sets=valid_sets, callbacks=callbacks)
        self.best_iteration = self.model.best_iteration or self.num_rounds
        return self

    def predict(self, X):
        return self.model.predict(X[self.feature_names], num_iteration=self.best_iteration)

    def feature_importance(self):
        gain = self.model.feature_importance("gain", iteration=self.best_iteration)
        frame = pd.DataFrame({"feature": self.feature_names, "gain": gain})
        frame["share"] = frame.gain / max(frame.gain.sum(), 1e-12)
        return frame.sort_values("gain", ascending=False, ignore_index=True)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_model(str(path / "model.txt"))
        (path / "ranker.json").write_text(json.dumps(self._meta()))

    def _load_model(self, path: Path) -> None:
        import lightgbm as lgb

        self.model = lgb.Booster(model_file=str(path / "model.txt"))


class XGBoostRanker(Ranker):
    kind = "xgboost"
    DEFAULTS = {"objective": "rank:ndcg", "eta": 0.05, "max_depth": 6, "min_child_weight": 10,
                "subsample": 0.8, "colsample_bytree": 0.8, "eval_metric": "ndcg@10", "seed": 42,
                "nthread": 2, "lambdarank_pair_method": "topk", "lambdarank_num_pair_per_sample": 20}

    def fit(self, X, y, group, X_valid=None, y_valid=None, group_valid=None):
        import xgboost as xgb

        self.feature_names = list(X.columns)
        params = {**self.DEFAULTS, **self.params}
        train = xgb.DMatrix(X, y)
        train.set_group(group)
        evals, kwargs = [], {}
        if X_valid is not None and len(X_valid):
            valid = xgb.DMatrix(X_valid, y_valid)
            valid.set_group(group_valid)
            evals, kwargs = [(valid, "valid")], {"early_stopping_rounds": self.early_stopping}
        self.model = xgb.train(params, train, self.num_rounds, evals=evals, verbose_eval=False, **kwargs)
        best = getattr(self.model, "best_iteration", None)
        self.best_iteration = (best + 1) if best is not None else self.num_rounds
        return self

    def predict(self, X):
        import xgboost as xgb

        return self.model.predict(xgb.DMatrix(X[self.feature_names]), iteration_range=(0, self.best_iteration))

    def feature_importance(self):
        gain = self.model.get_score(importance_type="total_gain")
        frame = pd.DataFrame({"feature": self.feature_names,
                              "gain": [gain.get(f, 0.0) for f in self.feature_names]})
        frame["share"] = frame.gain / max(frame.gain.sum(), 1e-12)
        return frame.sort_values("gain", ascending=False, ignore_index=True)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_model(str(path / "model.json"))
        (path / "ranker.json").write_text(json.dumps(self._meta()))

    def _load_model(self, path: Path) -> None:
        import xgboost as xgb

        self.model = xgb.Booster()
        self.model.load_model(str(path / "model.json"))


RANKERS = {cls.kind: cls for cls in (LightGBMRanker, XGBoostRanker)}


def make_ranker(kind: str = "lightgbm", params: dict | None = None, num_rounds: int = 300,
                early_stopping: int = 30) -> Ranker:
    if kind not in RANKERS:
        raise ValueError(f"unknown ranker {kind!r}; choose one of {sorted(RANKERS)}")
    return RANKERS[kind](params, num_rounds, early_stopping)
