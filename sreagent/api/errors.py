"""Error-to-HTTP mapping, registered once on the app.

Every error answers ``{"error": {"code", "message", "field"}}``; a follower's 503 adds
``"leader": "<url>"``. docs/controller.md has the table.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from sreagent.controller.errors import (
    BatchConflict,
    Forbidden,
    InvalidState,
    NotFound,
    NotImplementedYet,
    NotLeader,
    Overloaded,
    Unauthenticated,
)
from sreagent.errors import (
    BadInput,
    LimitExceeded,
    NonFiniteValue,
    NotLanded,
    SchemaVersionError,
    SreagentError,
    UnsupportedEncoding,
)

log = logging.getLogger(__name__)

# Most specific first: the first matching class decides the status.
STATUS: list[tuple[type[SreagentError], int]] = [
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (BatchConflict, 409),
    (InvalidState, 409),
    (LimitExceeded, 413),
    (UnsupportedEncoding, 415),
    (SchemaVersionError, 422),
    (NonFiniteValue, 422),
    (NotLeader, 503),
    (Overloaded, 503),
    (NotImplementedYet, 501),
    (NotLanded, 501),
]


def status_for(error: SreagentError) -> int:
    for cls, status in STATUS:
        if isinstance(error, cls):
            return status
    if isinstance(error, BadInput):
        # A named field that failed validation is 422; a body that cannot be read at all
        # (not JSON, not Arrow, not UTF-8, not gzip) is 400.
        return 422 if error.field else 400
    return 500


class ErrorDetail(BaseModel):
    code: str
    """Stable machine-readable code (docs/formats.md#error-codes)."""
    message: str
    field: str | None = None
    """The offending field (``samples[12].value``), when one is to blame."""


class ErrorBody(BaseModel):
    error: ErrorDetail
    leader: str | None = None
    """On a follower's 503: the leader's URL."""


ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 415, 422, 500, 501, 503)
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody, "description": "error"} for status in ERROR_STATUSES
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(error: SreagentError) -> JSONResponse:
    """The one HTTP answer for a :class:`SreagentError` (status, body, headers)."""
    body = error_body(error.code, error.message, error.field)
    headers: dict[str, str] = {}
    if isinstance(error, NotLeader):
        body["leader"] = error.leader
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, Overloaded | NotLeader):
        headers["Retry-After"] = "1"
    return JSONResponse(body, status_code=status_for(error), headers=headers)


def internal_error_response(error: Exception, method: str, path: str) -> JSONResponse:
    """The answer for an error nobody raised on purpose (logged with its traceback)."""
    log.error("unhandled error on %s %s", method, path, exc_info=error)
    return JSONResponse(
        error_body("internal", f"internal error: {type(error).__name__}"), status_code=500
    )


def register_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SreagentError)
    async def _sreagent_error(request: Request, error: SreagentError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"msg": "invalid request", "loc": ()}
        field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return JSONResponse(
            error_body("bad_input", str(first.get("msg")), field or None), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(error.detail)),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        return internal_error_response(error, request.method, request.url.path)
