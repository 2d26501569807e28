"""Step: train the two-tower retrieval model (stage 1 of retrieve -> filter -> rank -> re-rank).

Its per-epoch loss and validation recall go to the run's MLflow run as curves (steps/tracking.py)."""

from typing import Annotated, Any, Dict, Optional

import pandas as pd
from zenml import step

from recsys.retrieval.two_tower import TwoTowerConfig, TwoTowerModel, train_two_tower
from steps.materializers import RecsysModelMaterializer
from steps.names import TWO_TOWER
from steps.tracking import record


@step(output_materializers=RecsysModelMaterializer)
def train_retrieval(train_interactions: pd.DataFrame, valid_interactions: pd.DataFrame, items: pd.DataFrame,
                    users: pd.DataFrame, params: Optional[Dict[str, Any]] = None,
                    ) -> Annotated[TwoTowerModel, TWO_TOWER]:
    """User and item towers learnt on train, early-stopped on valid recall; `params` are TwoTowerConfig
    fields (epochs, embedding_dim, ...)."""
    config = TwoTowerConfig(**(params or {}))
    model = train_two_tower(train_interactions, valid_interactions, items, users, config)
    history = model.history
    best = max((h["val_recall"] for h in history if h["val_recall"] == h["val_recall"]), default=float("nan"))
    summary = {"two_tower/epochs": len(history), "two_tower/best_val_recall": best}
    record(metrics=summary, run_metadata={
               "two-tower": {"epochs": len(history), f"best valid recall@{config.eval_k}": best}},
           curves={"two_tower/loss": [h["loss"] for h in history],
                   f"two_tower/val_recall_at_{config.eval_k}": [h["val_recall"] for h in history],
                   "two_tower/epoch_seconds": [h["seconds"] for h in history]})
    return model
