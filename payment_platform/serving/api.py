"""The read-only REST API over the query module (FastAPI; `payment-platform api` serves it with uvicorn).

    GET /payments/{payment_id}     GET /payments?originator_id=&beneficiary_id=&...&limit=&cursor=
    GET /stats/daily               GET /quarantine?limit=&cursor=      GET /backup
    GET /health                    GET /metrics (Prometheus text)       GET /status (the same figures as JSON)
    (OpenAPI: /openapi.json, docs: /docs)
    GET /livez                     (the process answers; no store asked, no token: for liveness probes)

Errors are JSON `{"error": ..., "parameter": ...}`: a malformed parameter is a 400 naming it, an unknown id a 404,
a store that did not answer a 503 naming it. An answer from the fallback store carries `X-Degraded` (why) and
every payment answer `X-Served-By` (the store). When PAYMENT_API_TOKEN is set every request needs
`Authorization: Bearer <token>` (401 otherwise; compared in constant time), except `/livez`, which says nothing but
that the process answers.
"""
from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import uuid
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Callable

from fastapi import FastAPI, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BeforeValidator

from payment_platform.domain.schema import RAILS, STATUS_CODES
from payment_platform.serving import metrics, schemas
from payment_platform.serving.cursor import MAX_CURSOR_CHARS
from payment_platform.serving.params import DEFAULT_LIMIT, MAX_LIMIT, InvalidParameter
from payment_platform.serving.queries import NotFound, PaymentQueries, StoreUnavailable

TOKEN_SETTING = "PAYMENT_API_TOKEN"
WORKER_THREADS = 16  # request threads, each with its own store connections
LIVENESS_PATH = "/livez"
METRICS_PATH = "/metrics"  # Prometheus text format
STATUS_PATH = "/status"  # the JSON figures /metrics served before
WINDOW_FROM = "Inclusive; ISO 8601 date or date-time, UTC when no zone is given"
WINDOW_TO = "Exclusive; ISO 8601 date or date-time, UTC when no zone is given"
_ERROR_TEXT = {400: "A parameter is malformed (`parameter` names it)", 401: "Missing or wrong bearer token",
               404: "No payment with that id", 503: "A store needed for the answer did not answer (`stores`)"}


def _iso_text(value):
    """Only ISO 8601 text is a moment here (pydantic alone would also take a number as Unix seconds)."""
    if isinstance(value, str) and not _ISO_START.match(value.strip()):
        raise ValueError("not an ISO 8601 date or date-time (e.g. 2026-11-24 or 2026-11-24T14:00:00Z)")
    return value


_ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}")
Moment = Annotated[datetime | None, BeforeValidator(_iso_text)]


def _errors(*codes: int) -> dict:
    return {code: {"model": schemas.ErrorBody, "description": _ERROR_TEXT[code]} for code in codes}


def _openapi(app: FastAPI) -> dict:
    """FastAPI's document, with the error contract as it is: 400 `ErrorBody` instead of the default 422, and 401
    on every route but liveness when a token is required."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if responses.pop("422", None) is not None and "400" not in responses:
                responses["400"] = {"description": _ERROR_TEXT[400],
                                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
            if getattr(app.state, "token_required", False) and path != LIVENESS_PATH:
                responses["401"] = {"description": _ERROR_TEXT[401],
                                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    schemas_ = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas_.pop(unused, None)
    app.openapi_schema = document
    return document
logger = logging.getLogger(__name__)


class BearerToken:
    """Pure ASGI middleware: every HTTP request needs `Authorization: Bearer <token>` (constant-time compare)."""

    def __init__(self, app, token: str):
        self.app, self.expected = app, token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] != LIVENESS_PATH:
            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            scheme, _, supplied = header.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(supplied.strip(), self.expected):
                refusal = JSONResponse({"error": "missing or wrong bearer token (Authorization: Bearer <token>)",
                                        "parameter": "Authorization"}, status_code=401,
                                       headers={"WWW-Authenticate": "Bearer"})
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _PerThread(threading.local):
    queries: PaymentQueries | None = None


def create_app(queries_factory: Callable[[], PaymentQueries], *, token: str | None = None,
               probes_factory: Callable[[], object] | None = None) -> FastAPI:
    """The API. `queries_factory` builds one PaymentQueries per request thread (store connections are not shared
    across threads); `probes_factory` builds the monitoring probes behind /health and /metrics."""
    local = _PerThread()
    made: list[PaymentQueries] = []
    made_lock = threading.Lock()

    def queries() -> PaymentQueries:
        if local.queries is None:
            local.queries = queries_factory()
            with made_lock:
                made.append(local.queries)
        return local.queries

    @asynccontextmanager
    async def lifespan(app):
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        yield
        for q in made:
            q.close()

    app = FastAPI(title="payment_platform read API", version="1", lifespan=lifespan,
                  description="Read-only access to the payments in HBase and PostgreSQL, the quarantine and the "
                              "failed-payment backup. Amounts are decimal strings, times ISO 8601 UTC.")
    if token:
        app.add_middleware(BearerToken, token=token)
    app.state.token_required = bool(token)
    registry = metrics.registry_for(probes_factory)
    app.add_middleware(metrics.RequestMetrics, registry=registry)  # outermost: refused requests are counted too

    @app.exception_handler(InvalidParameter)
    async def invalid_parameter(request, error: InvalidParameter):
        return JSONResponse({"error": str(error), "parameter": error.parameter}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, error: RequestValidationError):
        # a typed parameter FastAPI refused: the same contract as the hand-made checks (400 naming it)
        names = [str(e["loc"][-1]) for e in error.errors() if e.get("loc")]
        return JSONResponse({"error": "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}"
                                                for e in error.errors()),
                             "parameter": names[0] if names else None}, status_code=400)

    @app.exception_handler(NotFound)
    async def not_found(request, error: NotFound):
        return JSONResponse({"error": str(error)}, status_code=404)

    @app.exception_handler(StoreUnavailable)
    async def unavailable(request, error: StoreUnavailable):
        return JSONResponse({"error": str(error), "stores": error.stores}, status_code=503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def unexpected(request, error: Exception):
        logger.exception("unexpected error serving %s", request.url.path)
        return JSONResponse({"error": f"internal error ({type(error).__name__}); see the API log"}, status_code=500)

    def answer(body: dict, source: str | None = None, degraded: str | None = None) -> Response:
        """JSON serialised once, here (FastAPI's validation of a returned dict costs more than the store reads);
        the route's response_model documents it (and the suite checks the two agree)."""
        headers = {}
        if source:
            headers["X-Served-By"] = source
        if degraded:
            headers["X-Degraded"] = degraded.encode("ascii", "replace").decode()[:500]
        return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
                        media_type="application/json", headers=headers)

    # Every route is a plain `def`: FastAPI runs it in the threadpool, so a store that hangs holds one worker
    # thread, never the event loop (liveness and every other request keep being answered).
    @app.get("/payments/{payment_id}", response_model=schemas.PaymentOut, responses=_errors(400, 404, 503),
             summary="One payment by id (HBase, else Postgres, else the backup)",
             description="Two HBase gets (`payments_by_id`, then `payments`). When HBase does not answer, Postgres "
                         "answers: `source` is `postgres`, `degraded` (and the `X-Degraded` header) says why. A "
                         "payment whose write waits in the failed-payment backup is found there (`source` "
                         "`backup`). Card data only as token, BIN and last 4; full card numbers in free text are "
                         "redacted.")
    def get_payment(payment_id: Annotated[uuid.UUID, Path(description="The payment's UUID")]) -> Response:
        view = queries().payment(str(payment_id))
        return answer(view.as_dict(), view.source, view.degraded)

    @app.get("/payments", response_model=schemas.PaymentPageOut, responses=_errors(400, 503),
             summary="Payments newest first: one party's, or all in a window, with filters",
             description="Exactly newest first by `created_at` (microseconds), ties by `payment_id` ascending, "
                         "across pages: the order of Postgres' `ORDER BY created_at DESC, payment_id`. One "
                         "party's through its HBase index (originator preferred when both are given), or every "
                         "party's through the `payments` row key. Cursors are positions, so a walk neither repeats "
                         "nor skips whatever is written meanwhile; a cursor made by another query is refused "
                         "(400). When HBase does not answer, Postgres answers the same page, marked degraded.")
    def list_payments(
            originator_id: Annotated[str | None, Query(max_length=200, description="Party id of the originator")] = None,
            beneficiary_id: Annotated[str | None, Query(max_length=200, description="Party id of the beneficiary")] = None,
            payment_type: Annotated[str | None, Query(description=f"Rail, any case: {', '.join(RAILS)}")] = None,
            currency: Annotated[str | None, Query(description="ISO 4217 code, any case")] = None,
            status: Annotated[str | None, Query(description=f"ISO 20022 status: {', '.join(STATUS_CODES)}")] = None,
            created_from: Annotated[Moment, Query(description=WINDOW_FROM)] = None,
            created_to: Annotated[Moment, Query(description=WINDOW_TO)] = None,
            min_amount: Annotated[Decimal | None, Query(ge=0, allow_inf_nan=False, description="Inclusive")] = None,
            max_amount: Annotated[Decimal | None, Query(ge=0, allow_inf_nan=False, description="Inclusive")] = None,
            limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")] = DEFAULT_LIMIT,
            cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS,
                                                description="`next_cursor` of the previous page")] = None) -> Response:
        page = queries().list_payments(
            originator_id=originator_id, beneficiary_id=beneficiary_id, payment_type=payment_type,
            currency=currency, status=status, created_from=created_from, created_to=created_to,
            min_amount=min_amount, max_amount=max_amount, limit=limit, cursor=cursor)
        return answer(page.as_dict(), page.source, page.degraded)

    @app.get("/stats/daily", response_model=schemas.DailyTotalsOut, responses=_errors(400, 503),
             summary="Count and sum per UTC day x rail x currency (x status), from Postgres")
    def daily(created_from: Annotated[Moment, Query(description=WINDOW_FROM)] = None,
              created_to: Annotated[Moment, Query(description=WINDOW_TO)] = None,
              payment_type: Annotated[str | None, Query(description=f"Rail, any case: {', '.join(RAILS)}")] = None,
              currency: Annotated[str | None, Query(description="ISO 4217 code, any case")] = None,
              by_status: Annotated[bool, Query(description="One row per status too")] = False) -> Response:
        totals = queries().daily_totals(created_from=created_from, created_to=created_to, payment_type=payment_type,
                                        currency=currency, by_status=by_status)
        return answer(totals.as_dict(), totals.source)

    @app.get("/quarantine", response_model=schemas.QuarantinePageOut, responses=_errors(400, 503),
             summary="Quarantined messages newest first (reason, Kafka position, redacted raw text)",
             description="The raw text has every full card number replaced by `[PAN REDACTED hmac:<16 hex>]`: a "
                         "keyed hash (PAN_HASH_KEY) an operator can compute for a reported number to match it.")
    def quarantine(limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")] = DEFAULT_LIMIT,
                   cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS,
                                                       description="`next_cursor` of the previous page")] = None
                   ) -> Response:
        return answer(queries().quarantine(limit=limit, cursor=cursor).as_dict())

    @app.get("/backup", response_model=schemas.BackupReportOut, responses=_errors(400, 503),
             summary="The failed-payment backup per store: size, oldest age, oldest items")
    def backup(limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Oldest items per store")] = DEFAULT_LIMIT
               ) -> Response:
        return answer(queries().backup_report(limit=limit).as_dict())

    def snapshot():
        from payment_platform.monitoring.snapshot import collect

        if probes_factory is None:
            raise StoreUnavailable(["monitoring"], "no probes configured")
        probes = probes_factory()
        try:
            return collect(probes)
        finally:
            probes.close()

    @app.get("/health", response_model=schemas.HealthOut, responses={503: {"model": schemas.HealthOut,
                                                                          "description": "A service is down"}},
             summary="Each service: up or down, with the error")
    def health() -> JSONResponse:
        snap = snapshot()
        body = {"healthy": snap.healthy, "services": {
            name: {"up": s["ok"], "error": None if s["ok"] else s["detail"], "detail": s["detail"] if s["ok"] else None,
                   "seconds": s["seconds"]} for name, s in snap.services.items()}}
        return JSONResponse(body, status_code=200 if snap.healthy else 503)

    @app.get(LIVENESS_PATH, response_model=schemas.LiveOut,
             summary="The API process answers (no store is asked; no token needed): liveness probes")
    async def live() -> Response:
        # async on purpose: answered by the event loop itself, so a wedged loop fails the probe, a slow store never
        return Response(b'{"live":true}', media_type="application/json")

    @app.get(METRICS_PATH, response_class=PlainTextResponse, responses={200: {"content": {metrics.CONTENT_TYPE: {}}}},
             summary="Prometheus text format: requests and latency per route and status, the platform's figures")
    def prometheus() -> Response:
        return Response(metrics.exposition(registry), media_type=metrics.CONTENT_TYPE)

    @app.get(STATUS_PATH, response_model=schemas.StatusOut, responses=_errors(503),
             summary="The figures of `payment-platform status --json` (JSON)")
    def status() -> Response:
        return answer(snapshot().as_dict())

    app.openapi = lambda: _openapi(app)
    return app


def app_from_env(env=None) -> FastAPI:
    """The API over the services the environment names (as every other command: `payment-platform stack env`)."""
    import os

    from payment_platform.config import endpoints_from_env
    from payment_platform.monitoring.snapshot import Probes
    from payment_platform.stores.backup import default_fallback_dir

    env = os.environ if env is None else env
    endpoints = endpoints_from_env(env)
    backup_dir = str(default_fallback_dir(env))
    return create_app(lambda: PaymentQueries.from_endpoints(endpoints, backup_dir),
                      token=(env.get(TOKEN_SETTING) or "").strip() or None,
                      probes_factory=lambda: Probes.from_endpoints(endpoints, backup_dir=backup_dir))
