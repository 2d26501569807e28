"""Step: score the staged recommender and its comparison models on the test interactions.

Every model answers through `recommend_batch`, with train + valid as known history, so the figures are
what serving would return. The table is an artifact (for the gate and for comparing runs) and a markdown
report shown on the artifact's page in the ZenML dashboard.
"""

from typing import Annotated, Optional, Tuple

import pandas as pd
from zenml import step
from zenml.logger import get_logger
from zenml.types import MarkdownString

from recsys.data.schema import ITEM_ID
from recsys.evaluation.metrics import item_popularity
from recsys.evaluation.protocol import evaluate as evaluate_models
from recsys.evaluation.protocol import format_table
from recsys.registry.gate import CANDIDATE
from recsys.serving.recommender import Recommender
from recsys.training import comparison_models
from steps.names import EVALUATION_METRICS, EVALUATION_REPORT

logger = get_logger(__name__)


@step
def evaluate(recommender: Recommender, train_interactions: pd.DataFrame, valid_interactions: pd.DataFrame,
             test_interactions: pd.DataFrame, items: pd.DataFrame, k: Tuple[int, ...] = (10,),
             category_column: Optional[str] = "category") -> Tuple[
    Annotated[pd.DataFrame, EVALUATION_METRICS],
    Annotated[MarkdownString, EVALUATION_REPORT],
]:
    """One row per model ("recommender" first), metrics @ each of `k`; diversity uses `category_column`
    of the items table when it has one."""
    history = pd.concat([train_interactions, valid_interactions], ignore_index=True)
    models = {CANDIDATE: recommender, **comparison_models(recommender, train_interactions, history)}
    categories = items.set_index(ITEM_ID)[category_column] if category_column in items.columns else None
    table = evaluate_models(models, test_interactions, list(k), n_items=len(items) or None,
                            item_categories=categories, item_popularity=item_popularity(history))
    text = format_table(table)
    logger.info("offline evaluation on %d test interactions:\n%s", len(test_interactions), text)
    report = (f"## Offline evaluation\n\n{test_interactions.user_id.nunique()} test users, "
              f"{len(test_interactions)} test interactions; history = train + valid.\n\n{text}\n")
    return table, MarkdownString(report)
