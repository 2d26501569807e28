"""Step: train a challenger when the decision says so, the way the production model was trained.

The challenger learns from the configured training window up to the start of the window just checked
(`training_days`: a sliding window; null: all data) with the production model's own recipe (its bundle
records the training steps' parameters and split), then is refit on all of that data with the settings
validation chose (recsys.training.train_staged, refit_staged). The checked window stays held out: champion
and challenger are scored on it next. No decision to retrain: no training, and no challenger (None).
"""

from typing import Annotated, Any, Dict, Optional, Tuple

import pandas as pd
from zenml import log_metadata, step
from zenml.logger import get_logger
from zenml.materializers.built_in_materializer import BuiltInMaterializer

from recsys.data.windows import EventSource
from recsys.monitoring.verdict import Decision
from recsys.serving.recommender import Recommender
from recsys.training import train_on
from steps.materializers import RecsysModelMaterializer
from steps.names import CHALLENGER, CHALLENGER_INFO

logger = get_logger(__name__)
EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


@step(output_materializers={CHALLENGER: (RecsysModelMaterializer, BuiltInMaterializer)})
def train_challenger(retrain_decision: Decision, promoted_info: Dict[str, Any], window: Dict[str, Any],
                     window_items: pd.DataFrame, window_users: pd.DataFrame, current: Dict[str, Any],
                     training_days: Optional[float] = None, recipe: Optional[Dict[str, Any]] = None) -> Tuple[
    Annotated[Optional[Recommender], CHALLENGER],
    Annotated[Dict[str, Any], CHALLENGER_INFO],
]:
    """`current`: the event source (as load_windows); `recipe`: per-step params overriding the production
    model's (e.g. fewer two-tower epochs)."""
    if not retrain_decision.retrain:
        return None, {"trained": False, "reason": retrain_decision.reason}
    end = pd.Timestamp(window["start"])
    start = end - pd.Timedelta(days=training_days) if training_days else EPOCH
    data = EventSource(current["source"], current.get("params")).read(start, end)
    steps = {name: {**(promoted_info.get("recipe") or {}).get(name, {}), **((recipe or {}).get(name) or {})}
             for name in set(promoted_info.get("recipe") or {}) | set(recipe or {})}
    split = {"method": "temporal_user", "ratios": [0.8, 0.1, 0.1], **(promoted_info.get("split") or {})}
    logger.info("challenger: %d interactions %s .. %s", len(data.interactions), data.interactions.timestamp.min(), end)
    users = window_users if len(window_users) else data.users
    challenger, settings = train_on(data.interactions, window_items, users, steps, split)
    info = {"trained": True, "events": len(data.interactions), "settings": settings, "recipe": steps, "split": split,
            "data_window": {"start": data.interactions.timestamp.min().isoformat(), "end": end.isoformat(),
                            "events": len(data.interactions)}}
    log_metadata({"challenger": {k: v for k, v in info.items() if k != "recipe"}})
    return challenger, info
