"""Step: split interactions into train / valid / test (per-user temporal or global time, by config)."""

from typing import Annotated, List, Tuple

import pandas as pd
from zenml import step
from zenml.logger import get_logger

from recsys.data.splits import split_interactions
from steps.names import TEST, TRAIN, VALID

logger = get_logger(__name__)


@step
def split_data(interactions: pd.DataFrame, method: str = "temporal_user",
               ratios: List[float] = [0.8, 0.1, 0.1]) -> Tuple[  # noqa: B006 (ZenML parameters must be literal)
    Annotated[pd.DataFrame, TRAIN],
    Annotated[pd.DataFrame, VALID],
    Annotated[pd.DataFrame, TEST],
]:
    """`method`: temporal_user | global_time (recsys.data.splits); `ratios`: train, valid, test shares."""
    split = split_interactions(interactions, method, ratios)
    logger.info("%s split: train %d, valid %d, test %d interactions", method, len(split.train),
                len(split.valid), len(split.test))
    return split.train, split.valid, split.test
