"""The app factory. Nothing is built at import time: ``create_app(settings)`` makes the
controller, registers the routers and the error mapping, and starts/stops the controller
with the app's lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from sreagent import __version__
from sreagent.api.errors import ERROR_RESPONSES, register_error_handlers
from sreagent.api.metrics import build_registry
from sreagent.api.routes import ROUTERS
from sreagent.api.routes.ingest import IngestFastPath
from sreagent.controller.service import Controller
from sreagent.controller.settings import Settings
from sreagent.controller.workflow import Chain

log = logging.getLogger(__name__)


class _ControllerApp(FastAPI):
    """FastAPI that hands ``POST /api/v1/ingest/batches`` to :class:`IngestFastPath` before
    any of its own layers (telemetry, middleware, routing): the collectors' requests skip
    everything they do not need."""

    ingest_fast_path = True
    """False leaves ingest to the FastAPI route (a test compares the two)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.ingest_fast_path and IngestFastPath.serves(scope):
            await IngestFastPath(self.state)(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, chain: Chain | None = None) -> FastAPI:
    controller = Controller(settings, chain=chain)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.insecure_dev:
            log.warning(
                "AUTHENTICATION IS OFF (--insecure-dev): anyone who can reach this "
                "port can ingest, read and approve. Development only."
            )
        controller.start()
        try:
            await controller.ingest.start_decoders(settings.ingest.effective_decode_workers)
            yield
        finally:
            await controller.ingest.stop_decoders()
            controller.stop()

    app = _ControllerApp(
        title="sreagent controller",
        version=__version__,
        description="Ingest, hot state, incidents, workflow runs and evidence. "
        "Every endpoint except /healthz and /readyz needs a bearer token.",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.controller = controller
    registry, ack_hist, flush_hist = build_registry(controller)
    app.state.registry = registry
    app.state.ack_histogram = ack_hist
    controller._flush_observer = lambda batches, seconds: flush_hist.observe(seconds)
    register_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router, responses=ERROR_RESPONSES)
    return app
