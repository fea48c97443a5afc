"""The FastAPI application: routes, the checks every scoring request passes first, errors, metrics, lifespan.

A scoring request is checked in this order: API key (401), rate limit (429), body size (413); then the
service (scoring_api/service.py) runs on a worker thread under the request timeout (504). Request bodies
are never logged: the contract marks personal data in them.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loanrisk.settings import Settings
from scoring_api.champion import ChampionModel, scorer_from_settings
from scoring_api.keys import Authenticator, Unauthorized
from scoring_api.limits import BodyTooLarge, RateLimiter, read_limited, retry_after
from scoring_api.metrics import ApiMetrics
from scoring_api.publish import KafkaPublisher, Publisher
from scoring_api.schemas import BatchReply, ErrorReply, Health, ScoreReply, contract_schema
from scoring_api.service import Answer, ApiError, ScoreCall, ScoringService
from scoring_api.store import PostgresStore, ServingStore, StoreUnavailable

log = logging.getLogger(__name__)
API_VERSION = "1"
SCORE = "/v1/score"
SCORE_BATCH = "/v1/score:batch"
ROUTES = (SCORE, SCORE_BATCH, "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs")
PURGE_EVERY_S = 60.0  # expired idempotency records are deleted this often
_IDEMPOTENCY_KEY_CHARS = set(map(chr, range(0x21, 0x7F)))

JSON = "application/json"
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorReply, "description": text} for status, text in (
        (401, "Missing, unknown or revoked API key."),
        (409, "A request with the same Idempotency-Key is still running."),
        (413, "The body (or the batch) is larger than allowed."),
        (422, "The request breaks a rule: each broken contract rule is listed, or the Idempotency-Key was used "
              "for another request."),
        (429, "The API key's rate limit is reached; see Retry-After."),
        (503, "The serving store, the model or Kafka is unavailable; nothing was published."),
        (504, "Not answered within api.request_timeout_s; nothing is published after that."))}


@dataclass
class Services:
    """What the app works with; built from the settings unless given (tests give their own).

    ``clock`` times the rate limits, the API key cache and the registry polls (the scorer's own clock),
    ``wall_clock`` is "now" for the contract's event-time rules; request deadlines always run on time.monotonic.
    """

    model: ChampionModel
    store: ServingStore
    publisher: Publisher | None
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    upkeep_tick_s: float = 1.0  # how often the upkeep thread checks whether the registry is due a poll

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """The champion from the registry, the serving PostgreSQL database, Kafka for publishing."""
        return cls(model=ChampionModel(scorer_from_settings(settings)),
                   store=PostgresStore(settings.postgres, settings.api),
                   publisher=KafkaPublisher(settings.kafka, settings.api.request_timeout_s))


@dataclass
class _State:
    """The app's running parts, set up by the lifespan."""

    services: Services | None = None
    service: ScoringService | None = None
    auth: Authenticator | None = None
    limiter: RateLimiter | None = None


def _application_body(batch: bool) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/LoanApplication"}
    schema = ({"type": "object", "required": ["applications"], "properties": {"applications": {
        "type": "array", "minItems": 1, "items": ref,
        "description": "At most api.max_batch applications; each is validated and answered on its own."}}}
              if batch else ref)
    return {"requestBody": {"required": True, "content": {JSON: {"schema": schema}}}}


def create_app(settings: Settings, services: Services | None = None, *, serving_process: bool = False) -> FastAPI:
    """The scoring API on ``settings``; ``services`` None builds them from the settings when the app starts.

    ``serving_process``: the app is the process's only work (``riskctl serve``), so what is alive once it has
    started is frozen for the garbage collector (gc.freeze): it lives as long as the process, and a full
    collection then no longer walks it while a request waits.
    """
    state = _State()
    metrics = ApiMetrics(lambda: state.services.model if state.services else None)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        built: Services = services if services is not None else await anyio.to_thread.run_sync(
            Services.from_settings, settings)
        state.services = built
        state.service = ScoringService(settings, built.model, built.store, built.publisher, metrics,
                                       wall_clock=built.wall_clock)
        state.auth = Authenticator(built.store, settings.api.key_cache_s, clock=built.clock)
        state.limiter = RateLimiter(settings.api.rate_limit_per_s, settings.api.rate_limit_burst, clock=built.clock)
        stop = threading.Event()
        upkeep = threading.Thread(target=_upkeep, args=(built, stop), name="api-upkeep", daemon=True)
        upkeep.start()
        if serving_process:
            gc.collect()
            gc.freeze()
        log.info("scoring API ready: model %s, decision bands approve < %g <= refer < %g <= decline",
                 built.model.version, settings.api.approve_below, settings.api.decline_at)
        try:
            yield
        finally:
            stop.set()
            upkeep.join(timeout=5)
            if built.publisher is not None and services is None:
                built.publisher.close()
            close = getattr(built.store, "close", None)
            if services is None and close is not None:
                close()

    app = FastAPI(title="loan-risk scoring API", version=API_VERSION, lifespan=lifespan,
                  description="Scores one loan application (or a batch) with the stream's champion model, the stream's "
                  "feature formulas and the customer's behaviour window from the serving store; docs/API.md.")
    bearer = HTTPBearer(auto_error=False, description="The client's API key (riskctl api-key create CLIENT).")

    def running() -> _State:
        if state.service is None:
            raise ApiError(503, "starting", "the service is starting")
        return state

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> Response:
        metrics.errors.labels(exc.code).inc()
        if exc.status >= 500:
            log.warning("%s %s: %s", exc.status, exc.code, exc.message)
        return Response(exc.reply().model_dump_json(), status_code=exc.status, media_type=JSON, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> Response:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return await api_error(_request, ApiError(422, "invalid_request", f"invalid request parameter ({where})"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        body = ErrorReply(error=code, message=str(exc.detail)).model_dump_json()
        return Response(body, status_code=exc.status_code, media_type=JSON, headers=getattr(exc, "headers", None))

    app.add_middleware(_Measured, metrics=metrics)

    async def client_of(credentials: HTTPAuthorizationCredentials | None) -> str:
        """The caller's client name (401), once it is within its rate limit (429)."""
        run = running()
        assert run.auth is not None and run.limiter is not None
        key = credentials.credentials if credentials is not None else None
        try:
            client = run.auth.cached_client_for(key)
            if client is None:
                client = await anyio.to_thread.run_sync(run.auth.client_for, key)
        except Unauthorized as exc:
            raise ApiError(401, "unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        except StoreUnavailable as exc:
            raise ApiError(503, "store_unavailable", f"the API key cannot be checked: {exc}",
                           headers={"Retry-After": "1"}) from None
        wait = run.limiter.take(client)
        if wait > 0:
            raise ApiError(429, "rate_limited", f"rate limit of {settings.api.rate_limit_per_s:g} requests/s "
                           f"(burst {settings.api.rate_limit_burst}) reached for this API key",
                           headers={"Retry-After": retry_after(wait)})
        return client

    async def run_call(request: Request, credentials: HTTPAuthorizationCredentials | None, *, batch: bool,
                       publish: bool | None, application_only: bool, idempotency_key: str | None) -> Response:
        client = await client_of(credentials)
        run = running()
        assert run.service is not None and run.services is not None
        if idempotency_key is not None and not (0 < len(idempotency_key) <= 255
                                                and set(idempotency_key) <= _IDEMPOTENCY_KEY_CHARS):
            raise ApiError(422, "invalid_request", "Idempotency-Key must be 1-255 visible ASCII characters")
        limit = settings.api.max_body_bytes
        try:
            body = await read_limited(request.stream(), request.headers.get("content-length"), limit)
        except BodyTooLarge:
            raise ApiError(413, "body_too_large", f"the body is larger than {limit} bytes (api.max_body_bytes)") from None
        timeout = settings.api.request_timeout_s
        call = ScoreCall(client=client, body=body, batch=batch,
                         publish=settings.api.publish_default if publish is None else publish,
                         use_behaviour=not application_only, idempotency_key=idempotency_key,
                         deadline=time.monotonic() + timeout, route=request.url.path)
        answer: Answer | None = None
        with anyio.move_on_after(timeout):
            answer = await anyio.to_thread.run_sync(run.service.handle, call, abandon_on_cancel=True)
        if answer is None:
            raise ApiError(504, "timeout", f"not answered within {timeout:g}s (api.request_timeout_s); no "
                           "application is published after that")
        headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
        log.debug("%s client=%s status=%s%s", request.url.path, client, answer.status,
                  " (replayed)" if answer.replayed else "")
        return Response(answer.body, status_code=answer.status, media_type=JSON, headers=headers)

    publish_doc = Query(None, description="Also publish the application to the loan-applications topic "
                        "(default: api.publish_default).")
    application_only_doc = Query(False, description="Score without the behaviour features (zeros, as for a "
                                 "customer without a window) instead of answering 503 when the serving store is "
                                 "unavailable; the reply says behaviour: not_used.")
    idempotency_doc = Header(None, alias="Idempotency-Key", description="Repeating a request with the same key "
                             "returns the first answer and publishes once.")
    api_key_doc = Depends(bearer)

    @app.post(SCORE, response_model=ScoreReply, responses=_ERRORS, openapi_extra=_application_body(False),
              summary="Score one loan application")
    async def score(request: Request, publish: bool | None = publish_doc, application_only: bool = application_only_doc,
                    idempotency_key: str | None = idempotency_doc,
                    credentials: HTTPAuthorizationCredentials | None = api_key_doc) -> Response:
        """One application in the loan_application contract's shape; its score, decision band and reasons."""
        return await run_call(request, credentials, batch=False, publish=publish, application_only=application_only,
                              idempotency_key=idempotency_key)

    @app.post(SCORE_BATCH, response_model=BatchReply, responses=_ERRORS, openapi_extra=_application_body(True),
              summary="Score a batch of loan applications")
    async def score_batch(request: Request, publish: bool | None = publish_doc,
                          application_only: bool = application_only_doc, idempotency_key: str | None = idempotency_doc,
                          credentials: HTTPAuthorizationCredentials | None = api_key_doc) -> Response:
        """Up to api.max_batch applications, each validated and answered on its own, in request order."""
        return await run_call(request, credentials, batch=True, publish=publish, application_only=application_only,
                              idempotency_key=idempotency_key)

    @app.get("/healthz", response_model=Health, summary="The process is up")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health, "description": "Not ready."}},
             summary="A model is loaded and the serving store answers")
    async def readyz() -> Response:
        reasons: list[str] = []
        version = None
        if state.services is None:
            reasons.append("starting")
        else:
            model, store = state.services.model, state.services.store
            version = model.version
            if version is None:
                reasons.append(f"no model loaded: {model.last_error or 'no champion'}")
            try:
                await anyio.to_thread.run_sync(store.ping)
            except StoreUnavailable as exc:
                reasons.append(str(exc))
        health = Health(status="unavailable" if reasons else "ok", model_version=version, reasons=reasons)
        return Response(health.model_dump_json(), status_code=503 if reasons else 200, media_type=JSON)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            doc.setdefault("components", {}).setdefault("schemas", {})["LoanApplication"] = contract_schema()
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.api = state
    return app


class _Measured:
    """Counts every request by route and status and times it (plain ASGI: no task or body copy per request, as
    Starlette's BaseHTTPMiddleware would add)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope.get("path", "")
        route = path if path in ROUTES else "other"
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)


def _upkeep(services: Services, stop: threading.Event) -> None:
    """Poll the registry for a new champion when the poll interval has passed; delete expired idempotency records."""
    next_purge = 0.0
    while not stop.wait(services.upkeep_tick_s):
        try:
            services.model.refresh()
            if time.monotonic() >= next_purge:
                next_purge = time.monotonic() + PURGE_EVERY_S
                with suppress(StoreUnavailable):
                    purged = services.store.purge_expired()
                    if purged:
                        log.info("deleted %d expired idempotency record(s)", purged)
        except Exception:  # upkeep must outlive any one failure; requests report their own
            log.exception("scoring API upkeep failed; trying again in %.0f s", services.upkeep_tick_s)
