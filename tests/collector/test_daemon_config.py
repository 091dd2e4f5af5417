"""Collector configuration: precedence, named errors, and that every key is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from sreagent.collector.config import CollectorSettings, load_settings
from sreagent.collector.daemon import sampler_options
from sreagent.errors import BadInput
from tests.conftest import REPO

EXAMPLE = REPO / "service" / "collector.example.toml"
DOC = REPO / "docs" / "collector.md"


def all_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += all_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_every_key_is_in_the_docs_table_and_the_example() -> None:
    doc = DOC.read_text()
    example = EXAMPLE.read_text()
    keys = all_keys(CollectorSettings)
    assert len(keys) > 30
    for key in keys:
        assert f"| `{key}` |" in doc, f"{key} missing from docs/collector.md"
        leaf = key.rsplit(".", 1)[-1]
        pattern = rf"^#? ?(\[\[sources\.)?{leaf}( = |\]\])"
        assert re.search(pattern, example, re.M), f"{key} missing from the example"


def test_the_shipped_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("SREAGENT_COLLECTOR_"):
            monkeypatch.delenv(name)
    settings = load_settings(EXAMPLE)
    assert settings.transport.endpoints[0] == "https://controller-a.example.net:8443"
    assert settings.spool_dir == Path("/var/lib/sreagent/collector/spool")
    assert sampler_options(settings).process_every == 3  # 15 s at a 5 s interval


def test_precedence_is_flags_over_environment_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        'interval_seconds = 2.0\nhost = "file"\n[transport]\nendpoints = ["a:1"]\ncompression = "gzip"\n'
    )
    monkeypatch.setenv("SREAGENT_COLLECTOR_HOST", "env")
    monkeypatch.setenv("SREAGENT_COLLECTOR_TRANSPORT__TIMEOUT_SECONDS", "3")
    settings = load_settings(config, {"interval_seconds": 7.0, "transport": {"endpoints": None}})
    assert settings.interval_seconds == 7.0, "flag over file"
    assert settings.host == "env", "environment over file"
    assert settings.transport.endpoints == ["http://a:1"], "an unset flag does not override"
    assert settings.transport.compression == "gzip"
    assert settings.transport.timeout_seconds == 3.0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"spool": {"fsync": "sometimes"}}, "spool.fsync"),
        ({"transport": {"token": "a", "token_file": "/x"}}, "transport"),
        ({"protection": {"pressure_fill_ratio": 0.9, "critical_fill_ratio": 0.5}}, "protection"),
        ({"collector_idd": "x"}, "collector_idd"),
    ],
)
def test_invalid_settings_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(BadInput) as caught:
        load_settings(None, overrides)
    assert caught.value.field == field


def test_an_unreadable_token_file_is_named(tmp_path: Path) -> None:
    settings = load_settings(None, {"transport": {"token_file": tmp_path / "missing"}})
    with pytest.raises(BadInput, match="missing"):
        settings.transport.bearer_token()
    (tmp_path / "token").write_text("  s3cret\n")
    settings = load_settings(None, {"transport": {"token_file": tmp_path / "token"}})
    assert settings.transport.bearer_token() == "s3cret"
