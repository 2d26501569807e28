"""Step: fit the candidate sources (item-item, co-visitation, two-tower, popular) and measure their recall.

Candidate recall on valid is the ceiling of everything downstream: the ranker can only reorder what the
sources propose.
"""

from typing import Annotated, Any, Dict, Optional, Tuple

import pandas as pd
from zenml import step
from zenml.logger import get_logger

from recsys.retrieval.candidates import CandidateGenerator
from recsys.retrieval.index import AnnIndex
from recsys.retrieval.two_tower import TwoTowerModel
from recsys.training import candidate_recall, fit_candidate_generator
from steps.materializers import InRunPickleMaterializer
from steps.names import CANDIDATE_GENERATOR, CANDIDATE_RECALL
from steps.tracking import record

logger = get_logger(__name__)


# Pickled: CandidateGenerator.load needs the catalogue and the two-tower model, so it cannot be restored
# from its own directory the way RecsysModelMaterializer does. It only travels between steps of one run.
@step(output_materializers={CANDIDATE_GENERATOR: InRunPickleMaterializer})
def generate_candidates(train_interactions: pd.DataFrame, valid_interactions: pd.DataFrame, items: pd.DataFrame,
                        users: pd.DataFrame, two_tower: TwoTowerModel, ann_index: AnnIndex,
                        params: Optional[Dict[str, Any]] = None, recall_n: Optional[int] = None) -> Tuple[
    Annotated[CandidateGenerator, CANDIDATE_GENERATOR],
    Annotated[Dict[str, float], CANDIDATE_RECALL],
]:
    """`params` go to recsys.training.fit_candidate_generator (per-source settings under "sources");
    recall is of the valid interactions given train histories, within `recall_n` candidates (None: all)."""
    generator = fit_candidate_generator(train_interactions, valid_interactions, items, users, two_tower,
                                        ann_index, params or {})
    recall = candidate_recall(generator, train_interactions, valid_interactions, recall_n)
    logger.info("candidate recall on valid: %s", ", ".join(f"{k.removeprefix('candidate_recall/')} {v:.3f}"
                                                          for k, v in recall.items()))
    record(step_metadata=recall, run_metadata={"candidate recall (union)": recall.get("candidate_recall/union")})
    return generator, recall
