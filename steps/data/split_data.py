"""Step: split interactions into train / valid / test (per-user temporal or global time, by config).

Also the data summary a person looks at first (event mix, activity long tail, the split over time): an HTML
artifact the ZenML dashboard renders, the same figures in the run's MLflow run, the sizes as metadata.
"""

from typing import Annotated, List, Tuple

import pandas as pd
from zenml import step
from zenml.logger import get_logger
from zenml.types import HTMLString

from recsys.data.schema import ITEM_ID, USER_ID
from recsys.data.splits import split_interactions
from recsys.evaluation.report import data_report
from steps.names import DATA_SUMMARY, TEST, TRAIN, VALID
from steps.tracking import record

logger = get_logger(__name__)


@step
def split_data(interactions: pd.DataFrame, method: str = "temporal_user",
               ratios: List[float] = [0.8, 0.1, 0.1]) -> Tuple[  # noqa: B006 (ZenML parameters must be literal)
    Annotated[pd.DataFrame, TRAIN],
    Annotated[pd.DataFrame, VALID],
    Annotated[pd.DataFrame, TEST],
    Annotated[HTMLString, DATA_SUMMARY],
]:
    """`method`: temporal_user | global_time (recsys.data.splits); `ratios`: train, valid, test shares."""
    split = split_interactions(interactions, method, ratios)
    logger.info("%s split: train %d, valid %d, test %d interactions", method, len(split.train),
                len(split.valid), len(split.test))
    page, figures = data_report(interactions, {"train": split.train, "valid": split.valid, "test": split.test})
    sizes = {"events": len(interactions), "users": int(interactions[USER_ID].nunique()),
             "items": int(interactions[ITEM_ID].nunique()), "train_events": len(split.train),
             "valid_events": len(split.valid), "test_events": len(split.test)}
    record(figures=figures, params={"data": sizes}, step_metadata=sizes, run_metadata={"data": sizes})
    return split.train, split.valid, split.test, HTMLString(page)
