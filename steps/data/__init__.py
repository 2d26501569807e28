"""Data stage: load a source's raw tables, validate them against the contract, split them in time."""

from steps.data.load_data import load_data
from steps.data.split_data import split_data
from steps.data.validate_data import validate_data

__all__ = ["load_data", "validate_data", "split_data"]
