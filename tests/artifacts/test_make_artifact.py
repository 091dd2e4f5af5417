"""make_artifact serialises and hashes once: the id is still the hash of exactly the content,
the bytes are those the former two-pass way made, and the id check stays on every artifact
that comes in from outside (storage, packages, the API all validate without make_artifact's
private context)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from sreagent import artifacts as a
from sreagent.canonical import canonical_digest
from tests.test_artifacts import PAYLOADS, REF, T0


def _two_pass(kind: a.ArtifactKind, payload: BaseModel, refs: list[a.EvidenceRef],
              inputs: list[str]) -> a.Artifact:
    """The former make_artifact, verbatim in effect: hash the dumped body, then validate it
    (the validator dumps and hashes again and compares)."""
    producer, consumer = a.CHAIN[kind]
    body: dict[str, Any] = {
        "schema_version": a.ENVELOPE_VERSION, "kind": kind.value, "run_id": "run-1",
        "incident_id": "inc-1", "correlation_id": "run-1", "producer": producer,
        "consumer": consumer, "logical_time": T0, "status": "degraded",
        "input_artifact_ids": inputs, "evidence_refs": [r.model_dump(mode="json") for r in refs],
        "replayable": False, "recorded_activity_ids": ["act-9"],
        "payload": payload.model_dump(mode="json"),
    }
    return a.Artifact.model_validate({**body, "artifact_id": canonical_digest(body)})


@pytest.mark.parametrize("kind", list(a.ArtifactKind))
def test_one_pass_gives_the_two_pass_id_and_bytes(kind: a.ArtifactKind) -> None:
    payload = PAYLOADS[kind]
    assert isinstance(payload, BaseModel)
    inputs = ["ab" * 32]
    made = a.make_artifact(kind=kind, run_id="run-1", incident_id="inc-1", logical_time=T0,
                           status="degraded", payload=payload, input_artifact_ids=inputs,
                           evidence_refs=[REF], replayable=False,
                           recorded_activity_ids=["act-9"])
    old = _two_pass(kind, payload, [REF], inputs)
    assert made.artifact_id == old.artifact_id
    assert made.canonical() == old.canonical()
    # and it reads back: the id check, run in full, agrees with the id it was given
    assert a.Artifact.model_validate_json(made.canonical()) == made


def test_a_payload_given_as_data_is_still_validated() -> None:
    data = PAYLOADS[a.ArtifactKind.OBSERVATION_SUMMARY].model_dump(mode="json")  # type: ignore[attr-defined]
    data["signals"][0]["p95"] = "not a number"
    with pytest.raises(ValidationError, match="p95"):
        a.make_artifact(kind="observation_summary", run_id="r", incident_id="i",
                        logical_time=T0, payload=data)


def test_the_envelope_is_still_validated() -> None:
    with pytest.raises(ValidationError, match="run_id"):
        a.make_artifact(kind="verification_result", run_id="", incident_id="i",
                        logical_time=T0, payload=PAYLOADS[a.ArtifactKind.VERIFICATION_RESULT])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="does not match"):
        a.make_artifact(kind="observation_summary", run_id="r", incident_id="i",
                        logical_time=T0, payload=PAYLOADS[a.ArtifactKind.VERIFICATION_RESULT])  # type: ignore[arg-type]


def test_the_skip_cannot_be_asked_for_from_outside() -> None:
    # Only make_artifact's own context object skips the check; an equal dict does not.
    made = a.make_artifact(kind="verification_result", run_id="r", incident_id="i",
                           logical_time=T0, payload=PAYLOADS[a.ArtifactKind.VERIFICATION_RESULT])  # type: ignore[arg-type]
    edited = {**made.model_dump(mode="json"), "logical_time": T0 + 1}
    for context in (None, {"artifact_id": "pending"}, {}):
        with pytest.raises(ValidationError, match="edited after it was made"):
            a.Artifact.model_validate(edited, context=context)
