"""Entities: who and what features describe. Join keys are the ids of the data contract (strings)."""

from feast import Entity
from feast.value_type import ValueType

from common import d

user = Entity(name="user", join_keys=[d.USER_KEY], value_type=ValueType.STRING,
              description="A traveller / viewer: user_id of the interactions table.")
item = Entity(name="item", join_keys=[d.ITEM_KEY], value_type=ValueType.STRING,
              description="A hotel / movie: item_id of the items table.")
