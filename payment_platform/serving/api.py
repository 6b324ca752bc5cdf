"""The read-only REST API over the query module (FastAPI; `payment-platform api` serves it with uvicorn).

    GET /payments/{payment_id}     GET /payments?originator_id=&beneficiary_id=&...&limit=&cursor=
    GET /stats/daily               GET /quarantine?limit=&cursor=      GET /backup
    GET /health                    GET /metrics                        (OpenAPI: /openapi.json, docs: /docs)
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
import threading
from contextlib import asynccontextmanager
from typing import Callable

from fastapi import FastAPI, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from payment_platform.serving.params import InvalidParameter
from payment_platform.serving.queries import NotFound, PaymentQueries, StoreUnavailable

TOKEN_SETTING = "PAYMENT_API_TOKEN"
WORKER_THREADS = 16  # request threads, each with its own store connections
LIVENESS_PATH = "/livez"
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

    @app.exception_handler(InvalidParameter)
    async def invalid_parameter(request, error: InvalidParameter):
        return JSONResponse({"error": str(error), "parameter": error.parameter}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, error: RequestValidationError):
        names = [str(e["loc"][-1]) for e in error.errors() if e.get("loc")]
        return JSONResponse({"error": "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}"
                                                for e in error.errors()),
                             "parameter": names[0] if names else None}, status_code=422)

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
        """JSON serialised once, here (FastAPI's validation of a returned dict costs more than the store reads)."""
        headers = {}
        if source:
            headers["X-Served-By"] = source
        if degraded:
            headers["X-Degraded"] = degraded.encode("ascii", "replace").decode()[:500]
        return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
                        media_type="application/json", headers=headers)

    @app.get("/payments/{payment_id}", summary="One payment by id (HBase, else Postgres, else the backup)",
             response_class=JSONResponse)
    async def get_payment(payment_id: str) -> Response:
        view = queries().payment(payment_id)
        return answer(view.as_dict(), view.source, view.degraded)

    @app.get("/payments", summary="Payments newest first: one party's, or all in a window, with filters",
             response_class=JSONResponse)
    def list_payments(originator_id: str | None = None, beneficiary_id: str | None = None,
                      payment_type: str | None = None, currency: str | None = None, status: str | None = None,
                      created_from: str | None = None, created_to: str | None = None, min_amount: str | None = None,
                      max_amount: str | None = None, limit: str | None = None, cursor: str | None = None) -> Response:
        page = queries().list_payments(
            originator_id=originator_id, beneficiary_id=beneficiary_id, payment_type=payment_type,
            currency=currency, status=status, created_from=created_from, created_to=created_to,
            min_amount=min_amount, max_amount=max_amount, limit=limit, cursor=cursor)
        return answer(page.as_dict(), page.source, page.degraded)

    @app.get("/stats/daily", summary="Count and sum per UTC day x rail x currency (x status), from Postgres",
             response_class=JSONResponse)
    def daily(created_from: str | None = None, created_to: str | None = None, payment_type: str | None = None,
              currency: str | None = None, by_status: bool = False) -> Response:
        totals = queries().daily_totals(created_from=created_from, created_to=created_to, payment_type=payment_type,
                                        currency=currency, by_status=by_status)
        return answer(totals.as_dict(), totals.source)

    @app.get("/quarantine", summary="Quarantined messages newest first (reason, Kafka position, raw text)",
             response_class=JSONResponse)
    def quarantine(limit: str | None = None, cursor: str | None = None) -> Response:
        return answer(queries().quarantine(limit=limit, cursor=cursor).as_dict())

    @app.get("/backup", summary="The failed-payment backup per store: size, oldest age, oldest items",
             response_class=JSONResponse)
    def backup(limit: str | None = None) -> Response:
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

    @app.get("/health", summary="Each service: up or down, with the error")
    def health() -> JSONResponse:
        snap = snapshot()
        body = {"healthy": snap.healthy, "services": {
            name: {"up": s["ok"], "error": None if s["ok"] else s["detail"], "detail": s["detail"] if s["ok"] else None,
                   "seconds": s["seconds"]} for name, s in snap.services.items()}}
        return JSONResponse(body, status_code=200 if snap.healthy else 503)

    @app.get(LIVENESS_PATH, summary="The API process answers (no store is asked; no token needed): liveness probes")
    async def live() -> Response:
        # async on purpose: answered by the event loop itself, so a wedged loop fails the probe, a slow store never
        return Response(b'{"live":true}', media_type="application/json")

    @app.get("/metrics", summary="The figures of `payment-platform status --json`")
    def metrics() -> dict:
        return snapshot().as_dict()

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
