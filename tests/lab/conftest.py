from __future__ import annotations

from collections.abc import Iterator

import pytest

from sreagent.lab.live import sweep

from .observe import everything_with_tag


@pytest.fixture
def nothing_left() -> Iterator[list[str]]:
    """Collects the tags a test used; afterwards asserts (independently) none left a trace,
    and sweeps them anyway so one failure does not leak into the next test."""
    tags: list[str] = []
    yield tags
    traces = {t: everything_with_tag(t) for t in tags}
    for t in tags:
        sweep(tag=t)
    assert not any(traces.values()), f"left behind: {traces}"
