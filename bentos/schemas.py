"""Request and response models of the recommender API (the OpenAPI schema `bentoml serve` publishes).

Plain pydantic, no BentoML: the service uses them as root inputs (the JSON body is the model) and the
tests fuzz the published schema. Unknown fields are rejected (a misspelt `context.destinaton` must not
silently mean "no filter"), and sizes are bounded so a huge payload fails validation instead of work.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recsys.serving.feedback import FEEDBACK_TYPES

Id = Annotated[str, Field(min_length=1, max_length=128)]
OneOrMany = Annotated[list[Id], Field(min_length=1, max_length=100)] | Id
MAX_EXCLUDE = 1000


class RecommendContext(BaseModel):
    """Filters on item attributes; every given filter must hold for every returned item. The fields below
    are the travel catalogue's; any other item attribute (`stars`, `price_tier`, `<numeric>_min/_max`,
    `{"min": .., "max": ..}` on a numeric one) or user attribute (a cold-start segment such as
    `home_region`) passes through to the Recommender, which rejects unknown keys with a 400 naming them."""

    model_config = ConfigDict(extra="allow")
    destination: OneOrMany | None = Field(None, description="Only items at this destination (or any of these).")
    category: OneOrMany | None = Field(None, description="Only items of this category (or any of these).")
    region: OneOrMany | None = Field(None, description="Only items in this region (or any of these).")
    price_min: float | None = Field(None, ge=0, le=1e9, description="Only items priced at least this much.")
    price_max: float | None = Field(None, ge=0, le=1e9, description="Only items priced at most this much.")

    @model_validator(mode="after")
    def _range(self):
        if self.price_min is not None and self.price_max is not None and self.price_min > self.price_max:
            raise ValueError("price_min must not exceed price_max")
        return self


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: Id = Field(description="User to recommend for; an unknown user gets the cold-start list.")
    k: int = Field(10, ge=1, le=100, description="How many items to return (1-100).")
    context: RecommendContext | None = Field(None, description="Optional filters on item attributes.")
    exclude: list[Id] = Field(default_factory=list, max_length=MAX_EXCLUDE,
                              description="Item ids never to return (e.g. already on the page).")


class RecommendedItem(BaseModel):
    item_id: str = Field(description="Recommended item.")
    score: float = Field(description="Score of the stage that placed the item (higher is better).")
    source: str = Field(description="Candidate source that proposed the item (item_item, two_tower, popular...).")
    stage: str = Field(description="Stage that placed the item (ranked, reranked, cold_start...).")
    reason: str = Field(description="Short human-readable reason.")


class RecommendResponse(BaseModel):
    request_id: str = Field(description="Id of this answer (appears in the experiment logs).")
    user_id: str
    items: list[RecommendedItem]
    model_version: str = Field(description="Version of the model bundle that answered.")
    variant: str = Field(description="Experiment variant that answered: control or treatment.")
    experiment: str | None = Field(None, description="Experiment name when an A/B test is running.")


class SimilarItemsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: Id = Field(description="Item to find neighbours of.")
    k: int = Field(10, ge=1, le=100, description="How many similar items to return (1-100).")


class SimilarItemsResponse(BaseModel):
    item_id: str
    items: list[dict] = Field(description="Similar items, most similar first (item_id, score, ...).")
    model_version: str


class FeedbackEvent(BaseModel):
    """One interaction, in the ARCHITECTURE event contract."""

    model_config = ConfigDict(extra="forbid")
    user_id: Id = Field(description="Who acted.")
    item_id: Id = Field(description="On which item.")
    event_type: Literal[FEEDBACK_TYPES] = Field(description="What they did: " + ", ".join(FEEDBACK_TYPES) + ".")
    timestamp: datetime | None = Field(None, description="When (ISO 8601; default: now, UTC).")
    event_id: Id | None = Field(None, description="Idempotency key (default: a new UUID).")
    request_id: Id | None = Field(None, description="The /recommend answer the event follows, if any.")


class FeedbackResponse(BaseModel):
    event_id: str
    sink: str = Field(description="kafka (produced to the events topic) or direct (kept in the service's event "
                                  "log and applied in place).")
    variant: str = Field(description="Experiment variant of the user (control when no experiment runs).")
    applied: bool | None = Field(None, description="direct: whether the served model's state changed (false "
                                                   "for an item outside its catalogue); kafka: null (the stream "
                                                   "consumer's row brings it to every worker and replica).")
