"""Step: the gate between any data and training: coerce to the contract or fail naming column and rows.

A DataValidationError stops the pipeline here, before any model trains, with a message like
`interactions.event_type: 2 rows have unknown event types (known: [...]), e.g. rows [3, 17] (values [...])`.
"""

from typing import Annotated, Tuple

import pandas as pd
from zenml import step
from zenml.logger import get_logger

from recsys.data.schema import Dataset
from recsys.data.validation import validate_dataset
from steps.names import INTERACTIONS, ITEMS, USERS

logger = get_logger(__name__)


@step
def validate_data(raw_interactions: pd.DataFrame, raw_items: pd.DataFrame, raw_users: pd.DataFrame) -> Tuple[
    Annotated[pd.DataFrame, INTERACTIONS],
    Annotated[pd.DataFrame, ITEMS],
    Annotated[pd.DataFrame, USERS],
]:
    """Validated tables: string ids, UTC timestamps, known event types, interactions sorted by time."""
    ds = validate_dataset(Dataset(raw_interactions, raw_items, raw_users))
    logger.info("valid data: %d interactions by %d users on %d items (%s .. %s)", len(ds.interactions),
                ds.interactions.user_id.nunique(), ds.interactions.item_id.nunique(),
                ds.interactions.timestamp.min(), ds.interactions.timestamp.max())
    return ds.interactions, ds.items, ds.users
