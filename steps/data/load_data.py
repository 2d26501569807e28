"""Step: read a data source's raw tables (synthetic generator, MovieLens-100K cache, or the user's files).

The raw tables are stored as they were read, so a validation failure can be inspected in the dashboard.
"""

from typing import Annotated, Any, Dict, Optional, Tuple

import pandas as pd
from zenml import step

from recsys.data.loader import read_dataset
from steps.names import RAW_INTERACTIONS, RAW_ITEMS, RAW_USERS


@step
def load_data(source: str = "synthetic", params: Optional[Dict[str, Any]] = None) -> Tuple[
    Annotated[pd.DataFrame, RAW_INTERACTIONS],
    Annotated[pd.DataFrame, RAW_ITEMS],
    Annotated[pd.DataFrame, RAW_USERS],
]:
    """`source` is one of recsys.data.loader.SOURCES; `params` its builder's keyword arguments. Missing
    items / users tables come back as empty frames (no attributes)."""
    dataset = read_dataset(source, params or {})
    items = dataset.items if dataset.items is not None else pd.DataFrame({"item_id": pd.Series(dtype=str)})
    users = dataset.users if dataset.users is not None else pd.DataFrame({"user_id": pd.Series(dtype=str)})
    return dataset.interactions, items, users
