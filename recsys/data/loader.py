"""One entry point for every data source: `load_dataset(source, params) -> Dataset`, always validated.

Sources (the `source` / `source_params` of a pipeline config):
- `synthetic`: the embedded travel generator (recsys.data.synthetic), no download;
- `movielens-100k`: fetched once into a cache (recsys.data.movielens);
- `files`: the user's interactions / items / users files with a column mapping (recsys.data.files).
"""

from __future__ import annotations

from collections.abc import Mapping

from recsys.data.files import load_user_files
from recsys.data.movielens import read_movielens_100k
from recsys.data.schema import Dataset
from recsys.data.synthetic import generate_travel_data
from recsys.data.validation import validate_dataset

# source -> builder; the builder's keyword arguments are exactly what `source_params` may hold
# (tests/test_configs.py checks every config against these signatures).
_BUILDERS = {
    "synthetic": generate_travel_data,
    "movielens-100k": read_movielens_100k,
    "files": load_user_files,
}
SOURCES = tuple(_BUILDERS)


def read_dataset(source: str, params: Mapping | None = None) -> Dataset:
    """The raw tables of a source, before validation (what the pipeline's load step stores)."""
    if source not in _BUILDERS:
        raise ValueError(f"unknown data source {source!r}; choose one of {list(SOURCES)}")
    return _BUILDERS[source](**dict(params or {}))


def load_dataset(source: str, params: Mapping | None = None) -> Dataset:
    """Read and validate: a `Dataset` that honours the contract, or a DataValidationError naming the fault."""
    return validate_dataset(read_dataset(source, params))
