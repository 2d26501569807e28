"""Step: top-K recommendations for many users at once, written to a file for downstream jobs.

The recommender first learns the known interactions (so nothing a user already has is recommended back);
users without any history get the cold-start fallback. Output rows: user_id, rank, item_id, score, source,
model_version; CSV or Parquet by the file suffix.
"""

from pathlib import Path
from typing import Annotated, List, Optional

import pandas as pd
from zenml import step
from zenml.logger import get_logger

from recsys.data.schema import USER_ID
from recsys.serving.recommender import Recommender
from steps.names import BATCH_RECOMMENDATIONS

logger = get_logger(__name__)


@step(enable_cache=False)  # writes output_path
def batch_predict(recommender: Recommender, interactions: pd.DataFrame, users: pd.DataFrame, k: int = 10,
                  user_ids: Optional[List[str]] = None,
                  output_path: str = "data/batch/recommendations.parquet") -> Annotated[pd.DataFrame, BATCH_RECOMMENDATIONS]:
    """`user_ids` None means every user in the interactions or the users table."""
    recommender.update_history(interactions)
    if user_ids is None:
        user_ids = sorted(set(interactions[USER_ID].astype(str)) | set(users[USER_ID].astype(str)))
    recs = recommender.recommend_batch(list(user_ids), k).assign(model_version=str(recommender.version))
    path = Path(output_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        recs.to_csv(path, index=False)
    else:
        recs.to_parquet(path, index=False)
    logger.info("%d recommendations for %d users (k=%d) -> %s", len(recs), len(user_ids), k, path)
    return recs
