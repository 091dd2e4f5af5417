from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sreagent.api import create_app
from tests.controller.conftest import pg_url, postgres_server  # noqa: F401 - shared fixtures
from tests.controller.helpers import make_settings


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path))) as c:
        yield c
