"""Step: put retrieval, ranking and the known histories together into the servable Recommender.

This object is what evaluate scores and register_model bundles: what is evaluated is what is served.
"""

from typing import Annotated, Any, Dict, Optional

import pandas as pd
from zenml import step

from recsys.ranking.model import RankingModel
from recsys.retrieval.candidates import CandidateGenerator
from recsys.serving.recommender import Recommender
from recsys.training import build_recommender
from steps.materializers import RecsysModelMaterializer
from steps.names import RECOMMENDER


@step(output_materializers=RecsysModelMaterializer)
def assemble_recommender(candidate_generator: CandidateGenerator, ranker: RankingModel, items: pd.DataFrame,
                         users: pd.DataFrame, train_interactions: pd.DataFrame, valid_interactions: pd.DataFrame,
                         params: Optional[Dict[str, Any]] = None) -> Annotated[Recommender, RECOMMENDER]:
    """The recommender knows train + valid histories, so the test interactions that follow are what it is
    scored on; `params` go to recsys.training.build_recommender (serving settings, event weights)."""
    history = pd.concat([train_interactions, valid_interactions], ignore_index=True)
    return build_recommender(candidate_generator, ranker, items, users, history, params or {})
