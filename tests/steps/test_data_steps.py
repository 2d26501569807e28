"""Data-stage steps called directly (`.entrypoint`): load, validate, split."""

import pandas as pd
import pytest

from recsys.data.validation import DataValidationError
from steps.data import load_data, split_data, validate_data
from tests.steps.images import png_images

TINY = {"n_users": 40, "n_items": 20, "n_events": 800, "seed": 1}


def test_load_validate_split_synthetic():
    interactions, items, users = load_data.entrypoint("synthetic", TINY)
    assert (len(interactions), len(items), len(users)) == (800, 20, 40)
    interactions, items, users = validate_data.entrypoint(interactions, items, users)
    assert str(interactions.timestamp.dtype) == "datetime64[ns, UTC]"
    train, valid, test, summary = split_data.entrypoint(interactions, "temporal_user", [0.8, 0.1, 0.1])
    assert len(train) + len(valid) + len(test) == 800
    assert png_images(summary, at_least=3) and "Event mix" in summary and "Split over time" in summary
    last_train = train.groupby("user_id").timestamp.max()
    first_test = test.groupby("user_id").timestamp.min()
    assert (last_train.reindex(first_test.index).dropna() <= first_test.reindex(last_train.index).dropna()).all()


def test_load_files_with_a_column_mapping(tmp_path):
    pd.DataFrame({"userId": ["1", "1", "2"], "movieId": ["10", "11", "10"], "ts": [1, 2, 3],
                  "rating": [4.0, 5.0, 3.0]}).to_csv(tmp_path / "ratings.csv", index=False)
    interactions, items, users = load_data.entrypoint("files", {
        "interactions": str(tmp_path / "ratings.csv"),
        "columns": {"user_id": "userId", "item_id": "movieId", "timestamp": "ts", "value": "rating"}})
    assert list(interactions.user_id) == ["1", "1", "2"] and set(interactions.event_type) == {"rating"}


def test_validation_names_the_column_at_fault():
    interactions, items, users = load_data.entrypoint("synthetic", TINY)
    broken = interactions.assign(event_type=interactions.event_type.where(interactions.index != 3, "teleport"))
    with pytest.raises(DataValidationError, match="event_type"):
        validate_data.entrypoint(broken, items, users)


def test_unknown_split_method_is_rejected():
    interactions, _, _ = load_data.entrypoint("synthetic", TINY)
    with pytest.raises(ValueError, match="split method"):
        split_data.entrypoint(interactions, "random", (0.8, 0.1, 0.1))
