"""Step: score the staged recommender and its comparison models on the test interactions.

Every model answers through `recommend_batch`, with train + valid as known history, so the figures are
what serving would return. The table is an artifact (for the gate and for comparing runs); the report (HTML
the ZenML dashboard renders: metrics beside the baselines, candidate recall by source, quality per user
segment, the score distribution, feature importance, a few users' lists) and its figures also go to the
run's MLflow run, the headline figures to the run's metadata.
"""

from typing import Annotated, Dict, Optional, Tuple

import pandas as pd
from zenml import step
from zenml.logger import get_logger
from zenml.types import HTMLString

from recsys.data.schema import ITEM_ID
from recsys.evaluation.metrics import item_popularity
from recsys.evaluation.protocol import evaluate as evaluate_models
from recsys.evaluation.protocol import format_table
from recsys.evaluation.report import evaluation_report
from recsys.registry.gate import CANDIDATE
from recsys.serving.recommender import Recommender
from recsys.training import comparison_models
from steps.names import EVALUATION_METRICS, EVALUATION_REPORT
from steps.tracking import record

logger = get_logger(__name__)
SHOWN = ("ndcg", "recall", "mrr", "hit", "coverage")  # the columns the step log prints (the report has all)


@step
def evaluate(recommender: Recommender, train_interactions: pd.DataFrame, valid_interactions: pd.DataFrame,
             test_interactions: pd.DataFrame, items: pd.DataFrame, k: Tuple[int, ...] = (10,),
             category_column: Optional[str] = "category", candidate_recall: Optional[Dict[str, float]] = None,
             feature_importance: Optional[pd.DataFrame] = None) -> Tuple[
    Annotated[pd.DataFrame, EVALUATION_METRICS],
    Annotated[HTMLString, EVALUATION_REPORT],
]:
    """One row per model ("recommender" first), metrics @ each of `k`; diversity uses `category_column`
    of the items table when it has one. `candidate_recall` and `feature_importance` (from the training
    steps) join the report when given."""
    history = pd.concat([train_interactions, valid_interactions], ignore_index=True)
    models = {CANDIDATE: recommender, **comparison_models(recommender, train_interactions, history)}
    categories = items.set_index(ITEM_ID)[category_column] if category_column in items.columns else None
    table, lists = evaluate_models(models, test_interactions, list(k), n_items=len(items) or None,
                                   item_categories=categories, item_popularity=item_popularity(history),
                                   return_recommendations=True)
    first = min(k)
    shown = table[[f"{m}@{first}" for m in SHOWN if f"{m}@{first}" in table.columns]]
    logger.info("offline evaluation on %d test interactions of %d users:\n%s", len(test_interactions),
                test_interactions.user_id.nunique(), format_table(shown, 3))
    page, figures = evaluation_report(table, lists, test_interactions, history, items, first, candidate_recall,
                                      feature_importance)
    headline = {name: float(value) for name, value in table.loc[CANDIDATE].items()}
    best = table.iloc[1:][f"ndcg@{first}"].idxmax() if len(table) > 1 else None
    record(figures=figures, files={"evaluation_report.html": page}, step_metadata=headline, run_metadata={
        f"ndcg@{first}": headline[f"ndcg@{first}"], f"recall@{first}": headline[f"recall@{first}"],
        f"best baseline ({best}) ndcg@{first}": float(table.loc[best, f"ndcg@{first}"]) if best else None})
    return table, HTMLString(page)
