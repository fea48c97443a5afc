"""One scoring request from its body to its answer, synchronous (the app runs it on a worker thread).

Order of work: the Idempotency-Key claim, the contract's validation, one behaviour lookup for every
application of the request, one call of the stream's scorer, the optional publication, the answer (stored
for the key). Answers that the same request would always get again (200, 422) are stored; failures that a
repeat may not meet (the store, the model or Kafka unavailable, a timeout; a batch with such an item) release
the key instead, so the repeat runs again (a republished application is dropped by the stream's
de-duplication).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from contracts.validate import parse_json
from loanrisk.settings import Settings
from scoring_api.champion import ChampionModel
from scoring_api.inputs import ScoringInput, check, scoring_input, wanted_windows, window_ms
from scoring_api.metrics import ApiMetrics
from scoring_api.publish import Publisher, PublishFailed, application_message
from scoring_api.schemas import BatchItem, BatchReply, ErrorReply, ScoreReply, Violation
from scoring_api.store import ServingStore, StoreUnavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request answered with an error: its status, stable code, one sentence, and any headers."""

    def __init__(self, status: int, code: str, message: str, *, violations: Sequence[Violation] = (),
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.violations = list(violations)
        self.headers = headers or {}

    def reply(self) -> ErrorReply:
        """The body of the error answer."""
        return ErrorReply(error=self.code, message=self.message, violations=self.violations)


@dataclass(frozen=True)
class Answer:
    """A finished answer: status and JSON body, stored as is for an Idempotency-Key unless ``transient`` (a batch
    with an application that failed for a reason a repeat may not meet)."""

    status: int
    body: str
    replayed: bool = False
    transient: bool = False


@dataclass(frozen=True)
class ScoreCall:
    """What the app hands over: who asks, the raw body, the flags, the key, and when the answer is due."""

    client: str
    body: bytes
    batch: bool
    publish: bool
    use_behaviour: bool
    idempotency_key: str | None
    deadline: float  # time.monotonic() by which the answer is due
    route: str = field(default="")

    def request_hash(self) -> str:
        """What makes two requests the same request: route, flags and body bytes."""
        head = f"{self.route}\n{self.batch}\n{self.publish}\n{self.use_behaviour}\n".encode()
        return hashlib.sha256(head + self.body).hexdigest()


def invalid_application(violations: Sequence[Violation]) -> ErrorReply:
    """The 422 body of an application breaking contract rules."""
    rules = ", ".join(v.rule for v in violations)
    return ErrorReply(error="invalid_application", message=f"the application breaks {len(violations)} contract "
                      f"rule(s): {rules}", violations=list(violations))


class ScoringService:
    """Scores requests with the champion, the serving store's behaviour windows and the contract's rules."""

    def __init__(self, settings: Settings, model: ChampionModel, store: ServingStore, publisher: Publisher | None,
                 metrics: ApiMetrics, *, wall_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.settings, self.model, self.store, self.publisher, self.metrics = settings, model, store, publisher, metrics
        self.wall_clock = wall_clock
        self.window = window_ms(settings.flink.behaviour_window_days)
        self.future_tolerance = settings.flink.future_tolerance
        # A pending key older than this belongs to a request that has ended without finishing it: the request
        # stops publishing at its deadline, and waits for a delivery report at most until then.
        self.stale_s = 2 * settings.api.request_timeout_s + 5

    # -- idempotency -------------------------------------------------------------------------------------------
    def handle(self, call: ScoreCall) -> Answer:
        """The answer to ``call``: a stored one for a repeated Idempotency-Key (ApiError when there is none)."""
        if call.idempotency_key is None:
            return self._answer(call)
        key, claim_id = call.idempotency_key, uuid.uuid4().hex
        try:
            claim = self.store.claim(call.client, key, call.request_hash(), claim_id,
                                     self.settings.api.idempotency_ttl_s, self.stale_s)
        except StoreUnavailable as exc:
            raise ApiError(503, "store_unavailable", f"the Idempotency-Key cannot be checked: {exc}",
                           headers={"Retry-After": "1"}) from None
        if claim.outcome == "replay":
            return Answer(int(claim.status_code or 200), claim.response or "", replayed=True)
        if claim.outcome == "in_progress":
            raise ApiError(409, "idempotency_key_in_progress", "a request with this Idempotency-Key is still "
                           "running; repeat it once that one is answered", headers={"Retry-After": "1"})
        if claim.outcome == "mismatch":
            raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for another request "
                           "(different body, route or flags); send a new key for a new request")
        try:
            answer = self._answer(call)
        except BaseException:
            try:
                self.store.release(call.client, key, claim_id)
            except StoreUnavailable:
                log.warning("an Idempotency-Key claim was not released (store unavailable): repeats get 409 for "
                            "up to %.0f s", self.stale_s)
            raise
        try:
            if answer.transient:
                self.store.release(call.client, key, claim_id)
            else:
                self.store.finish(call.client, key, claim_id, answer.status, answer.body)
        except StoreUnavailable:
            log.warning("the answer to an Idempotency-Key was not stored (store unavailable): a repeat after "
                        "%.0f s is scored again", self.stale_s)
        return answer

    # -- answers -----------------------------------------------------------------------------------------------
    def _answer(self, call: ScoreCall) -> Answer:
        now = self.wall_clock()
        if call.batch:
            return self._batch(call, now)
        event, violations = check(call.body, now, self.future_tolerance)
        if event is None:
            self._count_invalid(violations)
            return Answer(422, invalid_application(violations).model_dump_json())
        [result] = self._score([event], call)
        if isinstance(result, ApiError):
            raise result
        return Answer(200, result.model_dump_json())

    def _batch(self, call: ScoreCall, now: datetime) -> Answer:
        doc = parse_json(call.body)
        items = doc.get("applications") if doc is not None else None
        if not isinstance(items, list) or not items:
            raise ApiError(422, "invalid_request", 'the body must be a JSON object {"applications": [...]} with at '
                           "least one application")
        limit = self.settings.api.max_batch
        if len(items) > limit:
            raise ApiError(413, "batch_too_large", f"{len(items)} applications in one call; at most {limit} "
                           "(api.max_batch)")
        results: list[BatchItem | None] = [None] * len(items)
        valid: list[tuple[int, dict[str, Any]]] = []
        for index, item in enumerate(items):
            event, violations = check(item, now, self.future_tolerance)
            if event is None:
                self._count_invalid(violations)
                results[index] = BatchItem(index=index, status=422, error=invalid_application(violations))
            else:
                valid.append((index, event))
        if valid:
            for (index, _), result in zip(valid, self._score([e for _, e in valid], call)):
                results[index] = (BatchItem(index=index, status=result.status, error=result.reply())
                                  if isinstance(result, ApiError) else BatchItem(index=index, status=200, score=result))
        answered = [r for r in results if r is not None]
        return Answer(200, BatchReply(results=answered).model_dump_json(), transient=any(r.status >= 500 for r in answered))

    def _inputs(self, events: Sequence[dict[str, Any]], use_behaviour: bool) -> list[ScoringInput]:
        """Each application's model input; one lookup of the serving store for all of them."""
        windows = None
        if use_behaviour:
            try:
                windows = self.store.behaviour_windows(wanted_windows(events, self.window))
            except StoreUnavailable as exc:
                raise ApiError(503, "store_unavailable", f"no score without the behaviour features: {exc}; "
                               "application_only=true scores without them", headers={"Retry-After": "1"}) from None
        return [scoring_input(e, windows, self.window) for e in events]

    def _score(self, events: Sequence[dict[str, Any]], call: ScoreCall) -> list[ScoreReply | ApiError]:
        """The scores of valid applications (one scorer call), published when asked; an error per failed publish."""
        inputs = self._inputs(events, call.use_behaviour)
        probabilities, version, reasons = self.model.score([i.row for i in inputs])
        if version is None:
            raise ApiError(503, "model_unavailable", f"no model loaded: {self.model.last_error or 'no champion'}",
                           headers={"Retry-After": "5"})
        failures: list[str | None] = [None] * len(inputs)
        if call.publish:
            failures = self._publish(inputs, call.deadline)
        out: list[ScoreReply | ApiError] = []
        for i, p, codes, failure in zip(inputs, probabilities, reasons, failures):
            if failure is not None:
                self.metrics.errors.labels("publish_failed").inc()
                out.append(ApiError(503, "publish_failed", f"scored but not published, so not answered: {failure}",
                                    headers={"Retry-After": "1"}))
                continue
            self.metrics.scored.labels(i.behaviour).inc()
            out.append(ScoreReply(
                event_id=str(i.event["event_id"]), application_id=str(i.event["application_id"]),
                model_version=version, probability=float(p), decision=self.settings.api.decision(float(p)),
                reason_codes=[c for c in (codes or "").split(",") if c], features=i.reply_features, behaviour=i.behaviour,
                behaviour_as_of=i.behaviour_as_of, published=call.publish))
        return out

    def _publish(self, inputs: Sequence[ScoringInput], deadline: float) -> list[str | None]:
        """Publish every application; per application None when the broker has it, else why not."""
        if self.publisher is None:
            raise ApiError(503, "publish_failed", "publishing is not configured in this process")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ApiError(504, "timeout", "the request ran out of time before publishing; nothing was published")
        topic = self.settings.kafka.topics.applications
        try:
            failures = self.publisher.publish_many(topic, [application_message(i.event) for i in inputs], remaining)
        except PublishFailed as exc:
            failures = [str(exc)] * len(inputs)
        self.metrics.published.inc(sum(f is None for f in failures))
        return failures

    def _count_invalid(self, violations: Sequence[Violation]) -> None:
        for v in violations:
            self.metrics.errors.labels(v.rule.partition(":")[0]).inc()
