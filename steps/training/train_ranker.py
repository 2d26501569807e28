"""Step: learn to rank the candidates (LightGBM lambdarank or XGBoost rank:ndcg), labelled by valid.

With `feature_store` (the features sub-pipeline's output) the ranker also reads the Feast features, joined
point-in-time at each user's last train interaction (recsys.features.provider.PointInTimeFeatures). The
held-out learning curve (per boosting round) and the feature importance go to the run's MLflow run."""

from typing import Annotated, Any, Dict, Optional, Tuple

import pandas as pd
from zenml import step

from recsys.evaluation.figures import feature_importance as feature_importance_figure
from recsys.features.provider import PointInTimeFeatures
from recsys.ranking.model import RankingModel
from recsys.retrieval.candidates import CandidateGenerator
from recsys.training import fit_ranker
from steps.locations import project_path
from steps.materializers import InRunPickleMaterializer
from steps.names import FEATURE_IMPORTANCE, RANKER
from steps.tracking import record


# Pickled for the same reason as the candidate generator: RankingModel.load needs the catalogue.
@step(output_materializers={RANKER: InRunPickleMaterializer})
def train_ranker(candidate_generator: CandidateGenerator, train_interactions: pd.DataFrame,
                 valid_interactions: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame,
                 params: Optional[Dict[str, Any]] = None, feature_store: Optional[Dict[str, Any]] = None,
                 ) -> Tuple[
    Annotated[RankingModel, RANKER],
    Annotated[pd.DataFrame, FEATURE_IMPORTANCE],
]:
    """`params` go to recsys.training.fit_ranker (kind, params, num_rounds, features, ...)."""
    store = (PointInTimeFeatures(project_path(feature_store["repo_path"]), feature_store["fs_yaml"])
             if feature_store else None)  # an absolute repo path: later steps run in other working directories
    ranker, importance = fit_ranker(candidate_generator, train_interactions, valid_interactions, items, users,
                                    params or {}, store)
    booster = ranker.ranker
    record(metrics={"ranker/rounds": booster.num_rounds, "ranker/features": len(booster.feature_names)},
           curves={f"ranker/held_out_{name}": values for name, values in booster.curves.items()},
           figures={"feature_importance": feature_importance_figure(importance)})
    return ranker, importance  # a literal tuple: ZenML reads the return statement to count outputs
