"""Step: train the two-tower retrieval model (stage 1 of retrieve -> filter -> rank -> re-rank)."""

from typing import Annotated, Any, Dict, Optional

import pandas as pd
from zenml import step

from recsys.retrieval.two_tower import TwoTowerConfig, TwoTowerModel, train_two_tower
from steps.materializers import RecsysModelMaterializer
from steps.names import TWO_TOWER


@step(output_materializers=RecsysModelMaterializer)
def train_retrieval(train_interactions: pd.DataFrame, valid_interactions: pd.DataFrame, items: pd.DataFrame,
                    users: pd.DataFrame, params: Optional[Dict[str, Any]] = None,
                    ) -> Annotated[TwoTowerModel, TWO_TOWER]:
    """User and item towers learnt on train, early-stopped on valid recall; `params` are TwoTowerConfig
    fields (epochs, embedding_dim, ...)."""
    return train_two_tower(train_interactions, valid_interactions, items, users, TwoTowerConfig(**(params or {})))
