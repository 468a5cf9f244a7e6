"""The console's FastAPI app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse

from console.config import ConsoleConfig
from console.context import ConsoleContext
from console.errors import ConsoleError
from console.importer.lease import recover_jobs
from console.persons_fast import KeptListMiddleware
from console.sync.announce import install_announcer
from console.sync.gzip_body import GzipRequestMiddleware
from vision.engines.base import FaceEngine


def create_app(config: ConsoleConfig, *, context: ConsoleContext | None = None,
               engine: FaceEngine | None = None) -> FastAPI:
    """The console app on ``config`` (or on an open ``context``, which the caller then closes).

    The database must be at the newest revision (``smartbranch console migrate``)."""
    owned = context is None
    ctx = context or ConsoleContext.open(config, engine=engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owned:
                ctx.close()

    app = FastAPI(title="smartbranch console", lifespan=lifespan, docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.ctx = ctx
    app.add_middleware(GZipMiddleware, minimum_size=1000, compresslevel=6)  # large JSON: gallery pages, lists
    app.add_middleware(GzipRequestMiddleware)  # an edge gzips its bodies over ~1 KB (only /api/sync/ is inflated)
    app.add_middleware(KeptListMiddleware, ctx=ctx)  # a kept persons-list answer, before all the rest
    install_announcer(ctx)  # MQTT "branch X is at version N" after each gallery change, when sync.mqtt is set
    recover_jobs(ctx)  # bulk imports whose console died: marked interrupted (resumable), stale uploads deleted

    @app.exception_handler(ConsoleError)
    async def _console_error(_request: Request, exc: ConsoleError) -> JSONResponse:
        headers = {"Retry-After": str(int(exc.extra["retry_after"]))} if "retry_after" in exc.extra else None
        return JSONResponse({"error": exc.code, "detail": exc.message, **exc.extra}, status_code=exc.status,
                            headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "message": e.get("msg", "")}
                    for e in exc.errors()]
        text = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return JSONResponse({"error": "invalid", "detail": text, "problems": problems}, status_code=422)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    from console.api import routers

    for router in routers.ALL:
        app.include_router(router)
    return app
