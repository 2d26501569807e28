"""Step: the model to register learns from everything its data holds, with the settings validation chose.

The evaluated recommender learnt from train (two-tower, ranker labels from valid) and knows train + valid;
once the gate has passed, `recsys.training.refit_staged` relearns it on train + valid + test with the
two-tower's best epoch count and the ranker's round count fixed, so a user's latest interactions are in the
production model, not only in its serving history. A model that failed the gate is passed through
unchanged (nothing is registered from it).
"""

from typing import Annotated, Any, Dict, Tuple

import pandas as pd
from zenml import step
from zenml.logger import get_logger

from recsys.data.schema import TIMESTAMP
from recsys.serving.recommender import Recommender
from recsys.training import STAGES, chosen_settings, refit_staged
from recsys.retrieval.sources import TwoTowerSource
from steps.context import run_configuration
from steps.materializers import RecsysModelMaterializer
from steps.names import DATA_WINDOW, PRODUCTION_RECOMMENDER

logger = get_logger(__name__)


@step(output_materializers={PRODUCTION_RECOMMENDER: RecsysModelMaterializer})
def refit_recommender(recommender: Recommender, train_interactions: pd.DataFrame,
                      valid_interactions: pd.DataFrame, test_interactions: pd.DataFrame, items: pd.DataFrame,
                      users: pd.DataFrame, gate_passed: bool, refit: bool = True) -> Tuple[
    Annotated[Recommender, PRODUCTION_RECOMMENDER],
    Annotated[Dict[str, Any], DATA_WINDOW],
]:
    """`refit`: false registers the evaluated model as it is (it then knows train + valid histories)."""
    frames = [train_interactions, valid_interactions, test_interactions]
    times = pd.concat([f[TIMESTAMP] for f in frames])
    window = {"start": times.min().isoformat(), "end": times.max().isoformat(), "events": int(len(times))}
    if not (gate_passed and refit):
        return recommender, window
    steps = run_configuration()["steps"]
    recipe = {name: (steps.get(name) or {}).get("params") or {} for name in STAGES}
    tower = next((s for s in recommender.generator.sources if isinstance(s, TwoTowerSource)), None)
    settings = chosen_settings(tower.model if tower else None, recommender.ranking)
    logger.info("refitting on %d interactions with %s", window["events"], settings)
    production = refit_staged(recommender, settings, recipe, *frames, items, users)
    return production, window
