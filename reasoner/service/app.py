"""The HTTP application: CDS Hooks 2.0 discovery (`GET /cds-services`), the three hook
services (`POST /cds-services/{id}`), feedback (`POST /cds-services/{id}/feedback`) and
the rulebook the cards link to (`GET /rulebook`), on Starlette.

One engine, one thread: pyDatalog keeps its state per thread and globally (an engine
used from another thread sees an empty program, ../shared/pydatalog-notes.md), so the
rule set is compiled once, at start-up, *in* a dedicated engine thread, and every
evaluation is handed to that thread (a one-worker executor): evaluations are serialised
and the rules are never re-loaded. Reading the request, fetching from the client's FHIR
server, reading FHIR into facts, the proofs and the cards run beside it in other
threads. Worker processes were the other choice: each would hold its own copy of the
engine and hand back models by pickling, for no gain on the two cores this runs on (the
evaluation of one patient is a few milliseconds; the GIL serialises the rest anyway).

Every refusal is an OperationOutcome with a code (outcome.py) and one log line; an
unforeseen failure is a 500 with E023 and one log line, never a traceback.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from reasoner.analysis.program import RuleSet
from reasoner.engines.pydatalog import Engine
from reasoner.io.fhir_map import FhirMapping
from reasoner.language.errors import EvaluationLimit
from reasoner.service.cards import Inputs, RULES_EXTENSION, cards_for, ruleset_title
from reasoner.service.data import gather, new_order, prefetch_templates, read_facts
from reasoner.service.feedback import FeedbackStore
from reasoner.service.hooks import Service, parse_request, read_json, services
from reasoner.service.outcome import MALFORMED, TOO_LARGE, WRONG_HOOK, Issue, ServiceError, operation_outcome

LOG = logging.getLogger("reasoner.service")
MAX_BODY = 5_000_000
"""Bytes of a request body, by default (413 beyond, E052)."""
FETCH_TIMEOUT = 10.0
"""Seconds for one request to the client's FHIR server."""


class CdsService:
    """A rule set served as CDS services: the engine (built in its thread), the services,
    the feedback database."""

    def __init__(self, rules: RuleSet, mapping: FhirMapping, *, settings: dict[str, float] | None = None,
                 feedback_db: str | None = None, max_body: int = MAX_BODY, time_limit: float | None = None,
                 cors_origins: tuple[str, ...] = ()):
        self.rules, self.mapping, self.max_body, self.cors_origins = rules, mapping, max_body, cors_origins
        self.title = ruleset_title(rules)
        name = Path(rules.path.rstrip("/")).stem or "rules"
        self.services = {s.id: s for s in services(name, self.title, prefetch_templates(mapping))}
        self.store = FeedbackStore(feedback_db or ":memory:")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reasoner-engine")
        self.engine: Engine = self._pool.submit(Engine, rules, settings, time_limit=time_limit).result()
        self._client: Any = None
        from reasoner.io.fhir import facts_from_fhir
        facts_from_fhir({"resourceType": "Bundle", "type": "collection"}, mapping=mapping)  # loads the FHIR models now,
        # not during the first request (about 0.4 s)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.store.close()

    # ------------------------------------------------------------------ the application
    def asgi(self) -> Any:
        """The Starlette application."""
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.middleware.cors import CORSMiddleware
        from starlette.routing import Route

        @contextlib.asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[None]:
            import httpx
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as client:
                self._client = client
                yield

        routes = [
            Route("/cds-services", self._guard(self.discovery), methods=["GET"]),
            Route("/cds-services/{service_id}", self._guard(self.hook), methods=["POST"]),
            Route("/cds-services/{service_id}/feedback", self._guard(self.feedback), methods=["POST"]),
            Route("/rulebook", self._guard(self.rulebook), methods=["GET"]),
        ]
        middleware = [Middleware(CORSMiddleware, allow_origins=list(self.cors_origins), allow_methods=["GET", "POST"],
                                 allow_headers=["Authorization", "Content-Type"])] if self.cors_origins else []
        from starlette.exceptions import HTTPException
        return Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                         exception_handlers={HTTPException: self._http_error})

    def _guard(self, handler: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
        """`handler` with every failure answered as an OperationOutcome, logged in one line."""
        async def guarded(request: Any) -> Any:
            try:
                return await handler(request)
            except ServiceError as exc:
                LOG.warning("%s %s: %d %s", request.method, request.url.path, exc.status, exc)
                return self._outcome(exc.status, exc.issues)
            except EvaluationLimit as exc:
                LOG.warning("%s %s: 503 %s", request.method, request.url.path, exc)
                return self._outcome(503, [Issue("E022", str(exc))])
            except Exception as exc:  # the safety net: one line, never a traceback
                text = " ".join(str(exc).split())
                LOG.error("%s %s: 500 internal error: %s: %s (please report)", request.method, request.url.path,
                          type(exc).__name__, text)
                return self._outcome(500, [Issue("E023", f"internal error: {type(exc).__name__}: {text} "
                                                          "(please report)")])
        return guarded

    @staticmethod
    def _outcome(status: int, issues: list[Issue]) -> Any:
        from starlette.responses import JSONResponse
        return JSONResponse(operation_outcome(issues), status_code=status, media_type="application/fhir+json")

    async def _http_error(self, request: Any, exc: Any) -> Any:
        """Starlette's own refusals (no such path, a wrong method) as OperationOutcomes."""
        code = WRONG_HOOK if exc.status_code == 404 else MALFORMED
        message = f"no such endpoint: {request.method} {request.url.path}" if exc.status_code == 404 else \
            f"{request.method} is not allowed on {request.url.path}"
        LOG.warning("%s %s: %d %s", request.method, request.url.path, exc.status_code, message)
        return self._outcome(exc.status_code, [Issue(code, message)])

    # ------------------------------------------------------------------ endpoints
    async def discovery(self, request: Any) -> Any:
        from starlette.responses import JSONResponse
        return JSONResponse({"services": [s.discovery() for s in self.services.values()]})

    async def rulebook(self, request: Any) -> Any:
        from starlette.responses import PlainTextResponse

        from reasoner.render.rulebook import to_markdown
        return PlainTextResponse(to_markdown(self.rules), media_type="text/markdown; charset=utf-8")

    def _service(self, request: Any) -> Service:
        service_id = request.path_params["service_id"]
        service = self.services.get(service_id)
        if service is None:
            raise ServiceError.one(404, WRONG_HOOK, f"no CDS service {service_id[:80]!r} here; the services are "
                                   f"{', '.join(self.services)} (GET /cds-services)")
        return service

    async def _body(self, request: Any) -> Any:
        """The request's JSON document, read no further than the size limit."""
        limit = self.max_body
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise ServiceError.one(413, TOO_LARGE, f"the request body is {int(length):,} bytes; the limit is "
                                   f"{limit:,} (reasoner serve --max-body-bytes)")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ServiceError.one(413, TOO_LARGE, f"the request body is over the limit of {limit:,} bytes "
                                       "(reasoner serve --max-body-bytes)")
            chunks.append(chunk)
        return read_json(b"".join(chunks))

    async def hook(self, request: Any) -> Any:
        from starlette.responses import JSONResponse
        service = self._service(request)
        hook = parse_request(await self._body(request), service)
        data, notes = await gather(hook, service.prefetch, self._client)
        patient = await asyncio.to_thread(read_facts, self.rules, self.mapping, hook, data, notes)
        model = await asyncio.wrap_future(self._pool.submit(self.engine.evaluate, patient.facts))
        stamp = hook.assessed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        inputs = Inputs(hook.patient_id, hook.hook, hook.hook_instance,
                        f"{stamp} ({'from the request' if hook.assessed_at_given else 'when the request arrived'})",
                        str(request.base_url).rstrip("/"), patient.drafts, patient.notes,
                        lambda drug, item: new_order(self.mapping, hook.patient_id, drug, hook.assessed_at,
                                                     item.dose_mg if item else None, item.frequency if item else None))
        cards = await asyncio.to_thread(cards_for, self.rules, model, inputs, self.title)
        if cards:
            issued = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            await asyncio.to_thread(self.store.record_cards, service.id, hook.hook, hook.hook_instance,
                                    hook.patient_id, cards, issued, RULES_EXTENSION)
        return JSONResponse({"cards": cards})

    async def feedback(self, request: Any) -> Any:
        from starlette.responses import JSONResponse
        service = self._service(request)
        doc = await self._body(request)
        received = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        recorded = await asyncio.to_thread(self.store.record_feedback, service.id, doc, received)
        return JSONResponse({"recorded": recorded})


def run(service: CdsService, host: str, port: int, log_level: str = "info") -> None:
    """Serve until interrupted (uvicorn)."""
    import uvicorn
    try:
        uvicorn.run(service.asgi(), host=host, port=port, log_level=log_level, server_header=False)
    finally:
        service.close()
