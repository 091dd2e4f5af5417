"""schemathesis against the OpenAPI spec: no 5xx, responses match their documented schemas."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sreagent.api import create_app
from tests.controller.helpers import auth, make_settings

pytestmark = pytest.mark.slow

_APP = create_app(make_settings(Path(tempfile.mkdtemp(prefix="sreagent-fuzz-"))))
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)


@schemathesis.serializer("application/vnd.sreagent.batch.v1+arrow")
def _arrow_bytes(ctx: object, value: object) -> bytes:
    # The spec says "binary": fuzz with whatever bytes were generated (all must be refused
    # with a 4xx naming the problem, never a 5xx).
    return value if isinstance(value, bytes) else str(value).encode()


@pytest.fixture(scope="module", autouse=True)
def _controller():
    controller = _APP.state.controller
    controller.start()
    yield
    controller.stop()


@schema.parametrize()
@settings(max_examples=12, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_api_never_errors_and_matches_its_schema(case: schemathesis.Case) -> None:
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    case.call_and_validate(headers=auth("admin"), checks=[not_a_server_error, *checks])
