"""Recorded artifacts: ids checked once from the stored bytes, models built only when read.

Verification hashes every artifact row's stored envelope (payload and evidence references
kept as canonical JSON text) and compares it with the recorded id; the replay then decides
identity on ids alone. These tests hold both halves to the model's own check: a forged row
is caught by one or the other, never by neither.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sreagent.canonical import canonical_digest, canonical_json, sha256_hex
from sreagent.errors import ManifestMismatch
from sreagent.evidence import EvidencePackage, verify_package
from sreagent.evidence import package as package_module
from sreagent.evidence import tables as tables_module
from sreagent.evidence.tables import ARTIFACTS_SCHEMA, stored_artifact_ids
from sreagent.replay import Replayer
from sreagent.replay._lab import record_scenario


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ids") / "r01"
    record_scenario("01", path, resolution_s=10)
    return path


def _rewrite_artifacts(package: Path, rows: list[dict[str, Any]]) -> None:
    """Write artifact rows back and re-sign the manifest, as a forger would."""
    target = package / "artifacts.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=ARTIFACTS_SCHEMA), target)
    manifest = json.loads((package / "manifest.json").read_bytes())
    data = target.read_bytes()
    manifest["files"]["artifacts.parquet"].update(sha256=sha256_hex(data), bytes=len(data))
    del manifest["manifest_sha256"]
    manifest["manifest_sha256"] = canonical_digest(manifest)
    (package / "manifest.json").write_bytes(canonical_json(manifest))


def _copy(recorded: Path, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    copy = tmp_path / "copy"
    shutil.copytree(recorded, copy)
    return copy, pq.read_table(copy / "artifacts.parquet").sort_by("position").to_pylist()


def test_stored_ids_are_the_models_content_hashes(recorded: Path) -> None:
    package = EvidencePackage(recorded)
    pairs = stored_artifact_ids(package.table("artifacts"))
    assert [content for _, content in pairs] == [a.artifact_id for a in package.artifacts]
    assert [recorded_id for recorded_id, _ in pairs] == list(package.artifact_ids)
    assert len(pairs) == 8


def test_a_payload_rewritten_to_equal_json_is_caught(recorded: Path, tmp_path: Path) -> None:
    """Same meaning, other bytes (a space after a comma): not the canonical text the id was
    made from, so verification refuses it and names the artifact."""
    copy, rows = _copy(recorded, tmp_path)
    rows[3]["payload"] = rows[3]["payload"].replace(",", ", ", 1)
    assert json.loads(rows[3]["payload"]) == json.loads(
        pq.read_table(recorded / "artifacts.parquet").sort_by("position")
        .column("payload")[3].as_py())
    _rewrite_artifacts(copy, rows)
    with pytest.raises(ManifestMismatch, match="does not match its id") as caught:
        verify_package(copy)
    assert caught.value.field == "artifacts[3]"
    assert caught.value.path == str(copy / "artifacts.parquet")


def test_an_envelope_column_edit_is_caught(recorded: Path, tmp_path: Path) -> None:
    copy, rows = _copy(recorded, tmp_path)
    rows[1]["logical_time"] += 1
    _rewrite_artifacts(copy, rows)
    with pytest.raises(ManifestMismatch, match="does not match its id") as caught:
        Replayer().replay(copy)
    assert caught.value.field == "artifacts[1]"


def test_a_forged_id_over_invalid_content_fails_when_the_models_are_built(
        recorded: Path, tmp_path: Path) -> None:
    """A forger who recomputes the id over a payload the schema rejects passes the byte
    check. A full verification builds the models and refuses it; the replay, which builds
    them only when it needs them, diverges at that artifact and then names the file the
    same way instead of crashing."""
    copy, rows = _copy(recorded, tmp_path)
    payload = json.loads(rows[1]["payload"])
    del payload["findings"]
    rows[1]["payload"] = canonical_json(payload).decode()
    forged = pa.Table.from_pylist(rows, schema=ARTIFACTS_SCHEMA)
    rows[1]["artifact_id"] = stored_artifact_ids(forged)[1][1]
    _rewrite_artifacts(copy, rows)
    verify_package(copy, artifact_models=False)  # consistent bytes
    with pytest.raises(ManifestMismatch, match="schema") as caught:
        verify_package(copy)
    assert caught.value.path == str(copy / "artifacts.parquet")
    with pytest.raises(ManifestMismatch, match="schema") as caught:
        Replayer().replay(copy)
    assert caught.value.path == str(copy / "artifacts.parquet")


def test_an_identical_replay_builds_the_recorded_models_only_when_read(
        recorded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    real = tables_module.artifacts_from_table

    def counting(table: pa.Table) -> Any:
        built.append(table.num_rows)
        return real(table)

    monkeypatch.setattr(package_module, "artifacts_from_table", counting)
    result = Replayer().replay(recorded)
    assert result.identical and built == []
    assert result.to_json()["artifacts"] == 8 and built == []
    assert [a.artifact_id for a in result.recorded] == list(result.recorded_ids)
    assert [a.artifact_id for a in result.replayed] == list(result.recorded_ids)
    assert built == [8]
