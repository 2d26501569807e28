"""Shared by the repo's definition files: the project's feature definitions and where the tables are.

Names, dtypes and the meaning of every feature live in recsys/features/definitions.py (the batch job writes
from them); this repo only declares them to Feast. The schema follows the spec the last job run wrote
beside its tables (data/features/spec.json); before any run, the synthetic travel data's default.
"""

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent
if importlib.util.find_spec("recsys") is None:  # `feast` run from this directory: the project is one up
    sys.path.insert(0, str(REPO.parent))

from feast.types import Array, Float32, Float64, Int64, String  # noqa: E402

from recsys.features import definitions as d  # noqa: E402

FEATURES_DIR = d.features_dir(REPO)
# The state feature_store*.yaml points at (registry, sqlite online store): Feast creates only the last
# directory of those paths, and data/ is not in a fresh clone.
(REPO.parent / "data" / "feast").mkdir(parents=True, exist_ok=True)
SPEC = d.FeatureSpec.read(FEATURES_DIR) if (FEATURES_DIR / d.SPEC_FILE).is_file() else d.default_spec()
FEAST_TYPES = {d.INT64: Int64, d.FLOAT64: Float64, d.FLOAT32_LIST: Array(Float32), d.STRING: String,
               d.STRING_LIST: Array(String), d.FLOAT64_LIST: Array(Float64)}
