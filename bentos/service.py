"""The BentoML service: the staged Recommender over HTTP.

    bentoml serve bentos.service:RecommenderService        # from the project root; see docs/serving.md

A thin adapter: requests are pydantic root inputs (bentos/schemas.py), the work is done by
`bentos.runtime.ServingRuntime` (model slots, experiments, shadow, feedback), which runs the very
Recommender object the training pipeline evaluated. Configuration: bentos/serving.yaml + environment
(bentos/settings.py). The bundle loads in the background after start-up: /livez answers at once, /readyz
and the APIs answer 503 until the bundle is loaded; a poller swaps in promoted versions (hot reload).

The handlers are `async def` and call the Recommender directly on the event loop: a request is a few
milliseconds of CPU work under the GIL, so a thread pool only adds hand-offs, and serving every request on
one thread means feedback applied in place never races a recommendation (docs/serving.md has the numbers).
/feedback makes the event durable off the loop (Kafka's ack, or the event log's fsync), then applies it on it.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import bentoml
from bentoml.exceptions import InvalidArgument, NotFound, ServiceUnavailable

from bentos.content_type import JsonOnly
from bentos.schemas import (FeedbackEvent, FeedbackResponse, RecommendRequest, RecommendResponse,
                            SimilarItemsRequest, SimilarItemsResponse)
from bentos.settings import load_settings

with bentoml.importing():
    import anyio.to_thread

    from bentos.feedback import make_event
    from bentos.runtime import ServingRuntime
    from recsys.monitoring.metrics import ServingMetrics
    from recsys.serving.errors import UnknownItem

log = logging.getLogger("bentos.service")
SETTINGS = load_settings()
BENTO_MODEL = SETTINGS.model.removeprefix("bento:") if SETTINGS.model.startswith("bento:") else None


API_ROUTES = ("/recommend", "/similar_items", "/feedback")
# Server settings, shared with benchmarks/noop_service.py so both are measured under the same ones.
# docs/serving.md has the measurements behind the choices: BentoML's per-request OpenTelemetry spans
# (created even when no exporter is configured) and access-log lines cost about a third of a no-op
# request's CPU, and full garbage collections over the framework's ~10^6 long-lived objects stall the
# event loop for tens of milliseconds (see `_freeze_heap`).
SERVICE_OPTIONS = dict(
    workers=SETTINGS.workers,  # workers share the online state: store rows (Kafka) or the event log
    traffic={"timeout": 10, "max_concurrency": 256},  # beyond 256 in flight: 503 at once instead of queueing
    logging={"access": {"enabled": SETTINGS.access_log}},
    tracing={"excluded_urls": [] if SETTINGS.trace_api else list(API_ROUTES)},
    # One OpenMP thread for Faiss and LightGBM (the environment can override it): a request scores one
    # user, too little to split, and OpenMP workers spin-waiting for a core shared with the HTTP loop and
    # other processes made /recommend 3x slower on a 10k-item catalogue (docs/serving.md).
    envs=[{"name": "OMP_NUM_THREADS", "value": "1"}],
)


def _freeze_heap() -> None:
    """Move every object alive now (framework, libraries, the loaded bundle) out of the garbage
    collector's reach: a full collection then walks only request garbage instead of ~10^6 long-lived
    objects. Objects are still freed by reference counting; a reload unfreezes and collects once."""
    if not SETTINGS.gc_freeze:
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@bentoml.service(name="recommender", **SERVICE_OPTIONS)
class RecommenderService:
    # The bundle as a BentoML model when the configuration serves one (`bento:<tag>`, as the built bento
    # does): `bentoml build` packs it and the server resolves it before start-up. MLflow aliases and
    # bundle paths are resolved by the runtime at start-up and on every reload poll instead.
    if BENTO_MODEL:
        bundle_model = bentoml.models.BentoModel(BENTO_MODEL)

    def __init__(self) -> None:
        self.metrics = ServingMetrics()
        self.runtime = ServingRuntime(SETTINGS, self.metrics)
        self._tasks: list[asyncio.Task] = []

    @bentoml.on_startup
    async def _start(self) -> None:
        self._tasks.append(asyncio.create_task(self._load_then_poll()))

    @bentoml.on_shutdown
    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.runtime.close()

    async def _load_then_poll(self) -> None:
        """Initial load, then the hot-reload loop: load in a thread, install on the serving thread."""
        while self.runtime.slots["control"].current is None:
            for slot in self.runtime.slots.values():
                loaded = await anyio.to_thread.run_sync(slot.try_check)
                if loaded is not None:
                    self.runtime.install(slot, loaded)
                    _freeze_heap()
            if self.runtime.slots["control"].current is None:
                await asyncio.sleep(min(SETTINGS.reload_interval_seconds or 5, 5))
        while SETTINGS.reload_interval_seconds > 0:
            await asyncio.sleep(SETTINGS.reload_interval_seconds)
            swapped = await anyio.to_thread.run_sync(self.runtime.poll)
            for slot, loaded in swapped:
                self.runtime.install(slot, loaded)
            if swapped:
                _freeze_heap()

    def __is_ready__(self) -> bool:
        ready, why = self.runtime.ready()
        if not ready:
            log.info("not ready: %s", why)
        return ready

    def _require_model(self) -> None:
        if self.runtime.slots["control"].current is None:
            raise ServiceUnavailable("model bundle not loaded yet")

    @bentoml.api(route="/recommend")
    async def recommend(self, request: RecommendRequest, /) -> RecommendResponse:
        """Top-k items for a user: retrieve -> filter -> rank -> re-rank, cold start for unknown users."""
        self._require_model()
        context = request.context.model_dump(exclude_none=True) if request.context else None
        with self.metrics.request_seconds.labels("recommend", self.runtime.variant(request.user_id)).time():
            try:
                response = self.runtime.recommend(request.user_id, request.k, request.exclude, context)
            except ValueError as error:  # the Recommender's InvalidRequest: the caller's mistake, 400
                self.metrics.errors.labels("recommend", "invalid").inc()
                raise InvalidArgument(str(error)) from None
        return RecommendResponse.model_validate(response)

    @bentoml.api(route="/similar_items")
    async def similar_items(self, request: SimilarItemsRequest, /) -> SimilarItemsResponse:
        """Items similar to an item (item-item neighbours of the served model)."""
        self._require_model()
        try:
            return SimilarItemsResponse.model_validate(self.runtime.similar_items(request.item_id, request.k))
        except UnknownItem as error:
            self.metrics.errors.labels("similar_items", "unknown").inc()
            raise NotFound(str(error)) from None
        except ValueError as error:
            self.metrics.errors.labels("similar_items", "invalid").inc()
            raise InvalidArgument(str(error)) from None

    @bentoml.api(route="/feedback")
    async def feedback(self, event: FeedbackEvent, /) -> FeedbackResponse:
        """Record one interaction: stored (Kafka, or the event log) before the answer, applied at once."""
        self._require_model()
        fields = event.model_dump(exclude_none=True)
        contract = make_event(**fields)
        try:  # the broker's ack or the log's fsync: off the event loop
            accepted = await anyio.to_thread.run_sync(self.runtime.accept_feedback, contract)
            result = self.runtime.apply_feedback(accepted)
        except ValueError as error:
            self.metrics.errors.labels("feedback", "invalid").inc()
            raise InvalidArgument(str(error)) from None
        return FeedbackResponse.model_validate(result)


RecommenderService.add_asgi_middleware(JsonOnly, paths=API_ROUTES)  # non-JSON bodies: 415, never parsed
