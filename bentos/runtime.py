"""What the service does between HTTP and the Recommender, without the HTTP framework.

`ServingRuntime` owns the model slots (control; treatment when an A/B experiment is configured; shadow),
assigns each user to a variant by a stable hash, scores the shadow on live traffic (logged, never served),
makes feedback durable (Kafka, or the local event log) and applies it in place, gives every loaded
version's online state its source of other processes' events (recsys/serving/state.py: the users' rows in
the online store with Kafka, the shared event log without), and keeps the metrics. bentos/service.py is a
thin BentoML adapter over it; the tests and the benchmark drive it directly too.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from datetime import datetime
from pathlib import Path

from bentos.feedback import KafkaSink
from bentos.settings import ServingSettings
from bentos.slots import Loaded, ModelSlot
from bentos.warmup import BUSY_SECONDS, Warmer, prime
from recsys.serving.eventlog import EventLog
from recsys.serving.experiments import Experiment, ExperimentLog, Shadow

log = logging.getLogger(__name__)
WARMUP_USER = "__warmup_unknown_user__"


class ServingRuntime:
    def __init__(self, settings: ServingSettings, metrics=None):
        self.settings, self.metrics = settings, metrics
        self.slots: dict[str, ModelSlot] = {"control": self._slot("control", settings.model)}
        if settings.experiment.active:
            self.slots["treatment"] = self._slot("treatment", settings.experiment.treatment)
        if settings.shadow:
            self.slots["shadow"] = self._slot("shadow", settings.shadow, self._prepare_shadow)
        self.kafka = (KafkaSink(settings.kafka_bootstrap_servers, settings.feedback_topic)
                      if settings.kafka_bootstrap_servers else None)
        # Without Kafka an accepted event is on disk before /feedback answers, and the other processes of
        # this deployment on the host (workers, a second server) read it from the same file.
        self.event_log = EventLog(settings.event_log) if self.kafka is None and settings.event_log else None
        exp = settings.experiment
        self.experiment = (Experiment(exp.name, {"control": 1.0 - exp.treatment_share, "treatment": exp.treatment_share})
                           if exp.active else None)
        # One experiment log per process (workers never share a file); the readout reads them all:
        #   python -m recsys.serving.readout --log '<log_dir>/experiments-*.jsonl'
        self.log = (ExperimentLog(Path(settings.log_dir) / f"experiments-{os.getpid()}.jsonl")
                    if self.experiment or settings.shadow else None)
        self.shadow: Shadow | None = None
        self.warmers: dict[str, Warmer] = {}  # served slots: ranked lists computed off the request path
        self.last_request = 0.0  # monotonic time of the latest /recommend (warm-ups yield while serving)
        self._gauges_at = 0.0

    def _slot(self, name: str, ref: str, prepare=None) -> ModelSlot:
        return ModelSlot(name, ref, self.settings.tracking_uri, self.settings.cache_dir,
                         prepare=prepare or (lambda recommender: self._prepare(recommender, name)))

    # ---- loading and hot reload ----
    def _prepare(self, recommender, slot: str = "control"):
        """Attach the online feature store (when the ranker uses store features), warm up (the first calls
        build caches and compile), then wire the stage-timing hook. The warm-up runs on a variant that
        records no impressions (models shared). On a hot reload, also compute the new version's ranked
        lists for the users the old one served most recently (`warm_before_swap_seconds`), so they stay
        fast across the swap. Returns the online feature provider or None."""
        online = self._attach_online_features(recommender)
        self._attach_state(recommender, online)
        warm = recommender.variant(filters={"record_impressions": False})
        users = recommender.history.users[:1]
        for user in users + [WARMUP_USER]:
            warm.recommend(user, k=10)
        current = self.slots[slot].current if slot in getattr(self, "slots", {}) else None
        if current is not None and self.settings.warm_up:
            started = time.perf_counter()
            n = prime(recommender, current.recommender, self.settings.warm_before_swap_seconds)
            log.info("slot %s: %d ranked lists computed before the swap (%.1fs)", slot, n,
                     time.perf_counter() - started)
        if self.metrics is not None:
            recommender.observer = self.metrics.observe_stage
        return online

    def _prepare_shadow(self, recommender):
        online = self._attach_online_features(recommender)
        self._attach_state(recommender, online)
        warm = recommender.variant(filters={"record_impressions": False})
        for user in recommender.history.users[:1] + [WARMUP_USER]:
            warm.recommend(user, k=10)
        return online

    def _attach_online_features(self, recommender):
        """The Feast online store behind the ranker's store features (recsys.features.online), or None
        for a ranker without them (Feast is then never imported)."""
        features = getattr(getattr(recommender, "ranking", None), "features", None)
        if getattr(features, "store", None) is None:
            return None
        from datetime import timedelta

        from recsys.features.online import attach_online_features

        cfg = self.settings.online_features
        return attach_online_features(recommender, cfg.repo_path, cfg.fs_yaml, timedelta(hours=cfg.max_age_hours),
                                      cfg.clock, cfg.item_refresh_seconds, cfg.user_refresh_seconds)

    def _attach_state(self, recommender, online) -> None:
        """Where this version's online state gets the events other processes accepted: with Kafka, each
        requesting user's row in the online store (the stream consumer writes it; read in the same lookup as
        the ranker's store features, `online`); without, the shared event log, replayed now (so a restarted
        service has every event it acknowledged) and followed on every request."""
        state = recommender.state
        if self.kafka is not None:
            from recsys.serving.state import StoreRows

            cfg = self.settings.online_features
            views = online.user_views if online is not None else ()
            state.use_store(StoreRows(cfg.repo_path, cfg.fs_yaml, views,
                                      store=(lambda: online.store) if online is not None else None))
        elif self.event_log is not None:
            started = time.perf_counter()
            counts = state.use_log(self.event_log.reader())
            log.info("event log %s replayed in %.1fs: %s", self.settings.event_log, time.perf_counter() - started,
                     counts)

    def load(self) -> None:
        """Initial load of every slot, in the caller's thread. The control model must load; a failing
        treatment or shadow is reported and retried by `poll`."""
        for name, slot in self.slots.items():
            loaded = slot.check() if name == "control" else slot.try_check()
            if loaded is not None:
                self.install(slot, loaded)

    def poll(self) -> list[tuple[ModelSlot, Loaded]]:
        """Check every slot for a promoted version; returns the loaded ones to `install` (slow: run it off
        the request path). A failure keeps the old version and counts in recsys_model_reloads_total."""
        ready = []
        for slot in self.slots.values():
            failures = slot.failures
            loaded = slot.try_check()
            if loaded is not None:
                ready.append((slot, loaded))
            elif slot.failures > failures and self.metrics is not None:
                self.metrics.reloads.labels(slot.name, "failed").inc()
        return ready

    def install(self, slot: ModelSlot, loaded: Loaded) -> None:
        """Swap `loaded` in. Call it on the thread that serves requests: the online state of the version it
        replaces (feedback applied in place, impressions, blocklist) is carried over first, so nothing
        recorded up to the swap is lost and no request sees a half-updated model."""
        previous = slot.current
        if previous is not None:
            loaded.recommender.adopt_online_state(previous.recommender)
        if slot.name == "shadow":  # scores in its own thread from a queue; never served
            old, self.shadow = self.shadow, Shadow(loaded.recommender, self.log, name=loaded.version)
            if old is not None:
                old.close(timeout=1.0)
        slot.install(loaded)
        if self.settings.warm_up and slot.name != "shadow":  # the shadow scores in its own thread anyway
            warmer = self.warmers.get(slot.name)
            if warmer is None:
                current = (lambda name=slot.name: getattr(self.slots[name].current, "recommender", None))
                warmer = self.warmers[slot.name] = Warmer(current, self._busy, f"warm-up-{slot.name}")
            warmer.restart()
        if self.metrics is not None:
            self.metrics.set_model(slot.name, loaded.version, loaded.resolved.key,
                                   (previous.version, previous.resolved.key) if previous else None)
            self.metrics.reloads.labels(slot.name, "swapped").inc()
        log.info("slot %s now serves %s (was %s)", slot.name, loaded.version, previous and previous.version)

    # ---- serving ----
    def variant(self, user_id: str) -> str:
        """The user's variant (stable hash of experiment and user); control while no treatment is loaded."""
        if self.experiment is None or self.slots["treatment"].current is None:
            return "control"
        return self.experiment.assign(user_id)

    def experiment_name(self) -> str | None:
        return self.experiment.name if self.experiment is not None else None

    def recommend(self, user_id: str, k: int, exclude=(), context: dict | None = None) -> dict:
        """The served answer: items (item_id, score, source, stage, reason), model version and variant.
        Raises the Recommender's InvalidRequest (a ValueError) for a request it cannot serve."""
        variant = self.variant(user_id)
        loaded = self.slots[variant].current
        self.last_request = now = time.monotonic()
        items = loaded.recommender.recommend(user_id, k=k, exclude=exclude, context=context)
        warmer = self.warmers.get(variant)
        if warmer is not None and loaded.recommender.ranked._deferred:
            warmer.poke()  # a list was computed on request: explain its pool in the background
        if self.metrics is not None and now - self._gauges_at > 1.0:  # cache figures, at most once a second
            self._gauges_at = now
            self.metrics.set_ranked_lists(variant, loaded.recommender.ranked.stats(),
                                          self.warmers.get(variant) is not None
                                          and self.warmers[variant].finished_at is not None)
            self.metrics.set_online_state(variant, loaded.recommender.state)
        if self.metrics is not None:
            n_cold = sum(item["stage"] == "cold_start" for item in items)
            if n_cold:
                self.metrics.fallbacks.labels("cold_start" if n_cold == len(items) else "short_list").inc()
        response = {"request_id": uuid.uuid4().hex, "user_id": user_id, "items": items,
                    "model_version": loaded.version, "variant": variant, "experiment": self.experiment_name()}
        if self.experiment is not None:
            self.log.impressions(self.experiment.name, variant, user_id, [i["item_id"] for i in items],
                                 loaded.version, response["request_id"])
        if self.shadow is not None:  # a queue put; the shadow thread scores and logs it
            self.shadow.submit(user_id, k, exclude, context, items)
        return response

    def similar_items(self, item_id: str, k: int) -> dict:
        loaded = self.slots["control"].current
        return {"item_id": item_id, "items": loaded.recommender.similar_items(item_id, k=k),
                "model_version": loaded.version}

    # ---- feedback ----
    def record_feedback(self, event: dict) -> dict:
        """`accept_feedback` then `apply_feedback`, in the caller's thread."""
        return self.apply_feedback(self.accept_feedback(event))

    def accept_feedback(self, event: dict) -> dict:
        """Make a contract event durable before it is acknowledged: produced to Kafka (the broker's ack), or
        appended to the event log (fsync). Tags it with the user's experiment variant and the model version
        serving them. Blocking I/O: the service runs it off the event loop. Raises ValueError for an event
        that is not a valid contract event (nothing is stored)."""
        from recsys.streaming.events import parse

        variant = self.variant(event["user_id"])
        event = {**event, "experiment": self.experiment_name(), "variant": variant,
                 "model_version": self.slots[variant].current.version}
        parse(event)  # the contract's validation: InvalidEvent (a ValueError) names the field
        if self.kafka is not None:
            self.kafka.send(event)
        elif self.event_log is not None:
            self.event_log.append([event])
        return event

    def apply_feedback(self, event: dict) -> dict:
        """Apply an accepted event to every loaded version at once (with Kafka: read-your-writes in this
        worker; the stream consumer's row brings it to the others, and here again changes nothing: same
        event id), log it for experiment readouts, count it. Call it on the thread that serves requests."""
        variant = event["variant"]
        local = {"user_id": event["user_id"], "item_id": event["item_id"], "event_type": event["event_type"],
                 "timestamp": datetime.fromisoformat(event["timestamp"]).timestamp(), "event_id": event["event_id"]}
        known = None
        for slot in self.slots.values():  # every loaded version keeps the same online state
            if slot.current is None:
                continue
            recommender = slot.current.recommender
            in_catalogue = event["item_id"] in recommender.catalog.index
            if in_catalogue:
                recommender.record_feedback(local)
                warmer = self.warmers.get(slot.name)
                if warmer is not None and event["event_type"] != "impression":
                    warmer.touch(event["user_id"])  # their ranked list is recomputed before they return
            known = in_catalogue if known is None else known
        sink = "kafka" if self.kafka is not None else "direct"
        if self.log is not None:  # the readout joins feedback to impressions by user and item
            self.log.write({"type": "feedback", **{k: event[k] for k in ("event_id", "user_id", "item_id",
                            "event_type", "experiment", "variant", "model_version") if k in event}})
        if self.metrics is not None:
            self.metrics.feedback.labels(sink, event["event_type"], variant).inc()
        return {"event_id": event["event_id"], "sink": sink, "variant": variant,
                "applied": None if sink == "kafka" else bool(known)}

    # ---- health ----
    def ready(self) -> tuple[bool, str]:
        """Ready when the control bundle is loaded and the online feature store answers. A ranker without
        store features has nothing external to ask (its online state is in process)."""
        control = self.slots["control"].current
        if control is None:
            return False, f"model not loaded: {self.slots['control'].last_error or 'loading'}"
        # A treatment or shadow still loading would send its users to control: wait for it, unless it
        # failed (then the experiment runs control-only and the error is reported, serving goes on).
        pending = [name for name, slot in self.slots.items() if slot.current is None and not slot.failures]
        if pending:
            return False, f"still loading: {', '.join(pending)}"
        for name, slot in self.slots.items():
            online = slot.current.online if slot.current is not None else None
            if online is not None and not online.ping():  # ping never raises; bounded by its timeout
                return False, f"online feature store of {name} not answering"
            rows = slot.current.recommender.state.rows if slot.current is not None else None
            if online is None and rows is not None and not rows.ping():
                return False, f"online store of {name} (the users' real-time rows) not answering"
        return True, "ok"

    def _busy(self) -> bool:
        return time.monotonic() - self.last_request < BUSY_SECONDS

    def close(self) -> None:
        for warmer in self.warmers.values():
            warmer.stop()
        if self.shadow is not None:
            self.shadow.close(timeout=1.0)
        if self.kafka is not None:
            self.kafka.close()
        if self.event_log is not None:
            self.event_log.close()
