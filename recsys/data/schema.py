"""Table contracts shared by every data source (synthetic, MovieLens, user files) and every consumer.

Interactions: user_id (str), item_id (str), timestamp (UTC datetime), event_type (one of EVENT_TYPES),
optional value (float) and session_id (str). Items and users: an id column plus optional attributes.
Validation (recsys.data.validation) coerces tables to these dtypes or names the column and rows at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
EVENT_TYPE = "event_type"
VALUE = "value"
SESSION_ID = "session_id"

INTERACTION_REQUIRED = (USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE)
INTERACTION_OPTIONAL = (VALUE, SESSION_ID)

# Known event types, weakest to strongest signal. "purchase" is the retail name for "booking".
EVENT_TYPES = ("view", "click", "add_to_cart", "booking", "purchase", "rating")

# Default implicit-feedback strength of each event type; configs may override it.
DEFAULT_EVENT_WEIGHTS = {
    "view": 1.0,
    "click": 2.0,
    "add_to_cart": 3.0,
    "booking": 5.0,
    "purchase": 5.0,
    "rating": 1.0,
}


@dataclass
class Dataset:
    """One validated dataset: interactions plus optional item and user attribute tables."""

    interactions: pd.DataFrame
    items: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({ITEM_ID: pd.Series(dtype=str)}))
    users: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({USER_ID: pd.Series(dtype=str)}))
    name: str = "dataset"


@dataclass
class Split:
    """Train / valid / test interactions. Models learn from train; valid is for early stopping and ranker
    labels; test is only ever scored."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
