"""Step: top-K recommendations for many users at once, written to a file for downstream jobs.

Known interactions are never recommended back. Those newer than what the recommender already holds for a
user (e.g. events since it was trained) are first added to its history, so they personalise the lists;
older ones are not added again (repeats would count twice). Users without history get the cold start.
Output rows: user_id, rank, item_id, score, source, model_version; CSV or Parquet by the file suffix, at
`output_path` (shared as steps/locations.py says: the project's data/ locally, the state root on Kubeflow).
"""

from typing import Annotated, List, Optional

import pandas as pd
from zenml import step
from zenml.logger import get_logger

from recsys.data.schema import ITEM_ID, TIMESTAMP, USER_ID
from recsys.serving.recommender import Recommender
from steps.locations import state_location
from steps.names import BATCH_RECOMMENDATIONS

logger = get_logger(__name__)


def _newer_than_history(recommender: Recommender, interactions: pd.DataFrame) -> pd.DataFrame:
    """Rows later than the recommender's last known event of their user (all rows of unknown users)."""
    user_ids = interactions[USER_ID].astype(str)
    distinct = pd.unique(user_ids)
    seen_until = user_ids.map(dict(zip(distinct, recommender.history.last_time(distinct))))  # NaN: unknown
    seconds = pd.to_datetime(interactions[TIMESTAMP], utc=True).astype("int64") / 1e9  # as History stores it
    return interactions[~(seconds <= seen_until)]


@step(enable_cache=False)  # writes output_path
def batch_predict(recommender: Recommender, interactions: pd.DataFrame, users: pd.DataFrame, k: int = 10,
                  user_ids: Optional[List[str]] = None, output_path: str = "data/batch/recommendations.parquet",
                  ) -> Annotated[pd.DataFrame, BATCH_RECOMMENDATIONS]:
    """`user_ids` None means every user in the interactions or the users table."""
    recommender.update_history(_newer_than_history(recommender, interactions))
    if user_ids is None:
        user_ids = sorted(set(interactions[USER_ID].astype(str)) | set(users[USER_ID].astype(str)))
    recs = recommender.recommend_batch(list(user_ids), k, exclude=interactions[[USER_ID, ITEM_ID]])
    recs = recs.assign(model_version=str(recommender.version))
    output = state_location(output_path)
    output.local.parent.mkdir(parents=True, exist_ok=True)
    if output.local.suffix == ".csv":
        recs.to_csv(output.local, index=False)
    else:
        recs.to_parquet(output.local, index=False)
    output.push()
    logger.info("%d recommendations for %d users (k=%d) -> %s", len(recs), len(user_ids), k, output.shared)
    return recs
