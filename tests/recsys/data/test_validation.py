"""recsys.data.validation: every contract violation is rejected naming the table, column and example rows."""

import numpy as np
import pandas as pd
import pytest

from recsys.data.schema import Dataset
from recsys.data.validation import DataValidationError, validate_dataset, validate_interactions, validate_items


def interactions(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame({
        "user_id": ["u1", "u2", "u1", "u3"],
        "item_id": ["a", "b", "c", "a"],
        "timestamp": ["2025-01-02T10:00:00Z", "2025-01-01T09:00:00Z", "2025-01-03T00:00:00Z", "2025-01-01T08:00:00Z"],
        "event_type": ["view", "click", "booking", "view"],
    })
    for column, values in overrides.items():
        frame[column] = values
    return frame


def test_valid_table_is_coerced_and_sorted_by_time():
    out = validate_interactions(interactions(user_id=[1, 2, 1, 3], value=["1", "2.5", None, "4"]))
    assert list(out.user_id) == ["3", "2", "1", "1"]  # sorted by timestamp; ints became strings
    assert str(out.timestamp.dtype) == "datetime64[ns, UTC]"
    assert out.value.tolist()[:2] == [4.0, 2.5] and np.isnan(out.value.iloc[3])


@pytest.mark.parametrize("column", ["user_id", "item_id", "timestamp", "event_type"])
def test_missing_column(column):
    with pytest.raises(DataValidationError, match=f"interactions.{column}: required column is missing") as err:
        validate_interactions(interactions().drop(columns=column))
    assert (err.value.table, err.value.column, err.value.rows) == ("interactions", column, [])


@pytest.mark.parametrize("bad", [None, "", np.nan])
def test_null_ids_name_the_rows(bad):
    with pytest.raises(DataValidationError) as err:
        validate_interactions(interactions(item_id=["a", bad, "c", bad]))
    assert (err.value.column, err.value.rows) == ("item_id", [1, 3])
    assert "2 rows have a missing or empty id, e.g. rows [1, 3]" in str(err.value)


def test_unparsable_timestamps():
    with pytest.raises(DataValidationError) as err:
        validate_interactions(interactions(timestamp=["2025-01-01", "yesterday", "2025-01-02", "2025-13-45"]))
    assert (err.value.column, err.value.rows) == ("timestamp", [1, 3])
    assert "'yesterday'" in str(err.value)


def test_unix_seconds_are_timestamps():
    out = validate_interactions(interactions(timestamp=[881250949, "891717742", 0, 1.5]))
    assert out.timestamp.iloc[-1] == pd.Timestamp(891717742, unit="s", tz="UTC")


def test_unknown_event_types():
    with pytest.raises(DataValidationError) as err:
        validate_interactions(interactions(event_type=["view", "teleport", "View ", "hover"]))
    assert (err.value.column, err.value.rows) == ("event_type", [1, 3])  # "View " is normalised, not rejected


def test_non_numeric_value():
    with pytest.raises(DataValidationError, match=r"interactions.value: 1 row has non-numeric values, e.g. rows \[2\]"):
        validate_interactions(interactions(value=[1, 2, "five", 4]))


def test_empty_table():
    with pytest.raises(DataValidationError, match=r"interactions: table is empty \(0 rows\)"):
        validate_interactions(interactions().iloc[:0])


def test_duplicate_item_rows():
    items = pd.DataFrame({"item_id": ["a", "b", "a", "c", "b"], "category": list("xyzxy")})
    with pytest.raises(DataValidationError) as err:
        validate_items(items)
    assert (err.value.table, err.value.column, err.value.rows) == ("items", "item_id", [2, 4])


def test_interactions_must_name_known_items_when_an_items_table_is_given():
    items = pd.DataFrame({"item_id": ["a", "b"]})
    with pytest.raises(DataValidationError) as err:
        validate_dataset(Dataset(interactions(), items))
    # rows in the caller's order (row 2 names item "c"), not in the time-sorted copy
    assert (err.value.column, err.value.rows) == ("item_id", [2])


def test_optional_tables_may_be_absent():
    ds = validate_dataset(Dataset(interactions(), None, None))
    assert len(ds.items) == 0 and list(ds.items.columns) == ["item_id"] and len(ds.interactions) == 4


def test_error_survives_pickling():
    import pickle

    with pytest.raises(DataValidationError) as err:
        validate_interactions(interactions(user_id=["u1", None, "u2", "u3"]))
    copy = pickle.loads(pickle.dumps(err.value))
    assert (copy.table, copy.column, copy.rows, str(copy)) == ("interactions", "user_id", [1], str(err.value))


def test_every_problem_is_reported_at_once():
    items = pd.DataFrame({"item_id": ["a", "b", "a"]})
    raw = interactions(timestamp=["2025-01-01", "yesterday", "2025-01-02", "2025-01-03"],
                       event_type=["view", "teleport", "click", "hover"], item_id=["a", "b", None, "zz"])
    with pytest.raises(DataValidationError) as err:
        validate_dataset(Dataset(raw.drop(columns="user_id"), items))
    found = [(p.table, p.column, p.rows) for p in err.value.problems]
    assert found == [("items", "item_id", (2,)), ("interactions", "user_id", ()), ("interactions", "item_id", (2,)),
                     ("interactions", "timestamp", (1,)), ("interactions", "event_type", (1, 3)),
                     ("interactions", "item_id", (3,))]  # row 2 has no id: missing, not "absent from items"
    message = str(err.value)
    assert message.startswith("6 problems in the data:") and "values ['teleport', 'hover']" in message
    assert message.count("\n") == 6  # one line per problem
    assert "1 row repeats an item_id" in message and "1 row names items that are absent" in message
    assert (err.value.table, err.value.column, err.value.rows) == ("items", "item_id", [2])  # the first one
