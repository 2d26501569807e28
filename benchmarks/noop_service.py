"""A BentoML service that does nothing, declared like the recommender service (same workers, traffic and
server settings): benchmarks/serving.py measures it beside /recommend in the same run, so the framework's
own cost is visible next to the model's. Not part of the product."""

from __future__ import annotations

import bentoml
from pydantic import BaseModel

from bentos.service import SERVICE_OPTIONS, _freeze_heap


class Ping(BaseModel):
    user_id: str = "x"


class Pong(BaseModel):
    ok: bool = True


# The same options, with its own route in place of the recommender's where tracing is switched off.
OPTIONS = {**SERVICE_OPTIONS, "tracing": {"excluded_urls": ["/noop"] if SERVICE_OPTIONS["tracing"]["excluded_urls"] else []}}


@bentoml.service(name="noop", **OPTIONS)
class NoopService:
    @bentoml.on_startup
    def _start(self) -> None:
        _freeze_heap()  # as the recommender service does after loading its bundle

    @bentoml.api(route="/noop")
    async def noop(self, request: Ping, /) -> Pong:
        """Parse the body, answer a constant."""
        return Pong()
