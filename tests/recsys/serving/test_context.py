"""Context filters: attribute values and lists, numeric ranges, segments; bad keys and types -> InvalidRequest."""

import numpy as np
import pandas as pd
import pytest

from recsys.serving.context import ContextFilter
from recsys.serving.errors import InvalidRequest

ATTRS = pd.DataFrame({"destination": ["Paris", "Rome", "Paris", "Oslo", None],
                      "tags": ["spa|pool", "pool", "gym", "", "spa"],
                      "price": [100.0, 250.0, 80.0, np.nan, 300.0],
                      "stars": [3, 4, 5, 2, 4]})


@pytest.fixture
def cf():
    return ContextFilter(ATTRS, {"home_region": ["north", "south"], "destination": ["x"]})


@pytest.mark.parametrize("context, allowed", [
    ({"destination": "Paris"}, [0, 2]),
    ({"destination": ["Rome", "Oslo"]}, [1, 3]),
    ({"tags": "spa"}, [0, 4]),  # multi-valued: any value matches
    ({"price_min": 90, "price_max": 250}, [0, 1]),  # inclusive; NaN price never passes a range
    ({"price": {"max": 100}}, [0, 2]),
    ({"stars": [4, 5]}, [1, 2, 4]),
    ({"destination": "Paris", "stars_min": 4}, [2]),
    ({"destination": None, "stars": 2}, [3]),  # null = no filter
    ({"destination": "Atlantis"}, []),
])
def test_filters_give_the_hand_derived_masks(cf, context, allowed):
    assert list(np.flatnonzero(cf.parse(context).mask)) == allowed


def test_user_attributes_are_segments_not_filters(cf):
    parsed = cf.parse({"home_region": "north"})
    assert parsed.mask is None and parsed.segment == {"home_region": "north"}
    assert cf.parse({"destination": "Rome"}).segment == {}  # an item attribute wins over a user one


@pytest.mark.parametrize("context, field", [
    ({"colour": "red"}, "context.colour"),
    ({"price_min": "100"}, "context.price_min"),
    ({"price_max": True}, "context.price_max"),
    ({"price_min": float("nan")}, "context.price_min"),
    ({"destination": 3}, "context.destination"),
    ({"destination": []}, "context.destination"),
    ({"destination": [{"a": 1}]}, "context.destination"),
    ({"price": {"low": 3}}, "context.price"),
    ({"home_region": ["north"]}, "context.home_region"),
    ({"stars": ["4"]}, "context.stars"),
    ({"destination": ["x"] * 1001}, "context.destination"),
])
def test_bad_context_raises_invalid_request_naming_the_key(cf, context, field):
    with pytest.raises(InvalidRequest) as err:
        cf.parse(context)
    assert err.value.field == field and isinstance(err.value, ValueError)


def test_context_must_be_a_mapping(cf):
    with pytest.raises(InvalidRequest):
        cf.parse(["destination", "Paris"])


def test_recommendations_honour_context_and_fill_within_it(make):
    rec = make({"filters": {"record_impressions": False}})
    cats = dict(zip(rec.catalog.item_ids, rec.catalog.attributes.category))
    stars = dict(zip(rec.catalog.item_ids, rec.catalog.attributes.stars))
    for user in rec.history.users + ["stranger"]:
        out = rec.recommend(user, 10, context={"category": "ski", "stars_min": 4})
        assert out and all(cats[r["item_id"]] == "ski" and stars[r["item_id"]] >= 4 for r in out)
    with pytest.raises(InvalidRequest, match="unknown context filter 'colour'"):
        rec.recommend("u1", 3, context={"colour": "red"})
    assert "category" in rec.context_schema() and "stars_min" in rec.context_schema()


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": 1001}, {"k": "5"}, {"k": True}, {"exclude": "a1"},
                                    {"exclude": [1, 2]}, {"user_id": None}, {"user_id": ""}])
def test_bad_requests_raise_invalid_request(make, kwargs):
    rec = make()
    args = {"user_id": "u1", "k": 5, **kwargs}
    with pytest.raises(InvalidRequest):
        rec.recommend(args.pop("user_id"), **args)
