"""docs/ matches the code: every contract field, table column, error code and event kind."""

from __future__ import annotations

import importlib.util
import re

import pytest

import sreagent.errors as errors
from sreagent.evidence.package import TABLE_SCHEMAS
from sreagent.telemetry.names import EVENT_KINDS
from tests.conftest import REPO

FORMATS = (REPO / "docs" / "formats.md").read_text()


def _contract_models() -> list[type]:
    spec = importlib.util.spec_from_file_location("formats_tables", REPO / "scripts" / "formats_tables.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.CONTRACT_MODELS)


def documented_names(heading: str, quoted: bool = True) -> list[str]:
    """First-column names of the table under ``### `heading` `` in docs/formats.md."""
    title = f"`{heading}`" if quoted else heading
    match = re.search(rf"^### {re.escape(title)}\n\n(?:[^|\n].*\n|\n)*((?:\|.*\n)+)", FORMATS, re.MULTILINE)
    assert match, f"docs/formats.md has no section ### {title} with a table"
    rows = match.group(1).splitlines()[2:]
    return [re.match(r"\| `([^`]+)` \|", row).group(1) for row in rows]  # type: ignore[union-attr]


@pytest.mark.parametrize("model", _contract_models(), ids=lambda m: m.__name__)
def test_every_model_field_is_documented(model: type) -> None:
    fields = list(model.model_fields)  # type: ignore[attr-defined]
    assert documented_names(model.__name__) == fields


@pytest.mark.parametrize("table", sorted(TABLE_SCHEMAS))
def test_every_package_column_is_documented(table: str) -> None:
    assert documented_names(f"{table}.parquet") == TABLE_SCHEMAS[table].names


def test_every_error_code_is_documented() -> None:
    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.SreagentError)]
    for cls in classes:
        assert f"| `{cls.code}` | `{cls.__name__}` |" in FORMATS


def test_every_event_kind_is_documented() -> None:
    assert sorted(documented_names("Event kinds", quoted=False)) == sorted(EVENT_KINDS)
