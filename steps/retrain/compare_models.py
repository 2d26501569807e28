"""Step: champion and challenger scored on the same most recent held-out window, and the promotion rule.

Both models know everything before the window (the champion learns the events since its training data as
serving history, as it does in production) and are scored by recsys.evaluation.window on the window's
interactions; the rule (recsys.registry.promotion.compare) asks for a margin on NDCG@10 and guardrails on
coverage and popularity. No challenger: nothing to compare, the champion stays.
"""

from typing import Annotated, Any, Dict, Optional

import pandas as pd
from zenml import log_metadata, step
from zenml.logger import get_logger

from recsys.registry.promotion import Comparison, PromotionRule, duel
from recsys.serving.recommender import Recommender
from steps.names import COMPARISON

logger = get_logger(__name__)


@step(enable_cache=False)
def compare_models(recommender: Recommender, challenger: Optional[Recommender],
                   interactions_before_window: pd.DataFrame, window_interactions: pd.DataFrame,
                   reference_interactions: pd.DataFrame, rule: Optional[Dict[str, Any]] = None, k: int = 10,
                   max_users: Optional[int] = None) -> Annotated[Optional[Comparison], COMPARISON]:
    """`recommender`: the production model (champion); `rule`: PromotionRule fields."""
    if challenger is None:
        return None
    popularity = pd.concat([reference_interactions, interactions_before_window]).item_id.astype(str).value_counts()
    result = duel(recommender, challenger, interactions_before_window, window_interactions, popularity,
                  PromotionRule.model_validate(rule or {}), k, max_users)
    logger.info("champion vs challenger on %d window users: %s\n  %s", int(result.champion["users"]),
                "PROMOTE" if result.promote else "keep the champion", "\n  ".join(result.reasons))
    log_metadata({"promote": result.promote, "reasons": result.reasons,
                  "ndcg@10": {"champion": result.champion[f"ndcg@{k}"], "challenger": result.challenger[f"ndcg@{k}"]}})
    return result
