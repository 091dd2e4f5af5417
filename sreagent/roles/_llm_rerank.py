"""Optional model re-ranking of hypotheses, as a recorded activity with a strict schema.

The model sees the deterministic hypotheses (class, entity, score, features) and may only
answer with a permutation of their ranks. Anything else (no answer, a timeout, invalid JSON,
an unknown rank, a missing one) falls back to the deterministic order. The model cannot add
a hypothesis, change an entity or touch execution.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sreagent.artifacts import Artifact, Hypothesis
from sreagent.canonical import canonical_digest
from sreagent.runtime._context import RoleContext

SYSTEM_PROMPT = (
    "You are a site reliability engineer reviewing ranked root-cause hypotheses computed from "
    "telemetry. Use only the data given. Answer with JSON only, matching the schema: "
    '{"order": [ranks, best first, each given rank exactly once], "rationale": "one short '
    'paragraph"}. Do not invent hypotheses.'
)


class RerankAnswer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    order: list[Annotated[int, Field(ge=1)]]
    rationale: Annotated[str, Field(max_length=2000)] = ""


RERANK_SCHEMA = RerankAnswer.model_json_schema()


def rerank_request(hypotheses: list[Hypothesis], finding: Artifact,
                   model: str, max_tokens: int, temperature: float) -> dict[str, object]:
    brief = [{"rank": h.rank, "fault_class": h.fault_class, "entity": h.entity,
              "score": h.score, "features": h.features,
              "counter_evidence": h.counter_evidence[:3]} for h in hypotheses]
    user = json.dumps({"incident_summary": getattr(finding.payload, "summary", ""),
                       "hypotheses": brief}, sort_keys=True)
    return {
        "model": model,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                     {"role": "user", "content": user}],
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "rerank", "strict": True,
                                            "schema": RERANK_SCHEMA}},
    }


def parse_answer(content: str, ranks: list[int]) -> RerankAnswer | None:
    """The validated answer, or None when it is not exactly a permutation of ``ranks``."""
    try:
        answer = RerankAnswer.model_validate_json(content)
    except ValidationError:
        return None
    if sorted(answer.order) != sorted(ranks):
        return None
    return answer


def rerank(hypotheses: list[Hypothesis], finding: Artifact,
           ctx: RoleContext) -> tuple[list[Hypothesis], str]:
    cfg = ctx.config.llm
    request = rerank_request(hypotheses, finding, cfg.model, cfg.max_tokens, cfg.temperature)
    record = ctx.activity("llm_complete", canonical_digest(request)[:32], request)
    content = record.result.get("content") if record.status == "ok" else None
    answer = parse_answer(content, [h.rank for h in hypotheses]) if isinstance(
        content, str) else None
    if answer is None:
        return hypotheses, "deterministic"
    by_rank = {h.rank: h for h in hypotheses}
    reordered = [by_rank[r].model_copy(update={"rank": i})
                 for i, r in enumerate(answer.order, start=1)]
    return reordered, f"model:{cfg.model}"
