"""Shared fixtures and capability flags.

Tests that need something this machine may lack (root, a Debian package, a GPU) skip with a
reason naming it; in CI (root, packages installed by `make test`) they all run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
FIXTURES = REPO / "fixtures"
IS_ROOT = os.geteuid() == 0
IN_CI = os.environ.get("CI") == "true"


def require_binary(name: str) -> str:
    """The path of a binary, or skip the test naming the Debian package to install."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is missing in CI; scripts/system-packages.txt should install it")
        pytest.skip(f"{name} not installed (run `sudo make system-deps`)")
    return path


requires_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (kernel interfaces)")


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.skip("../shared is not beside the checkout")
    return SHARED


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="rewrite golden files from the current code (review the diff before committing)",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Compare bytes with a golden file under tests/goldens/, or rewrite it on purpose."""
    update = request.config.getoption("--update-goldens")

    def check(name: str, data: bytes) -> None:
        path = REPO / "tests" / "goldens" / name
        if update or not path.exists():
            if not update and IN_CI:
                pytest.fail(f"golden {name} is missing; run pytest --update-goldens and commit it")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        assert data == path.read_bytes(), (
            f"{name} differs from its golden; if the change is on purpose, run "
            "pytest --update-goldens and review the diff"
        )

    return check
