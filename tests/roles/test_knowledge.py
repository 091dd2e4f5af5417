"""Runbook retrieval (BM25) and incident memory."""

from __future__ import annotations

from sreagent.chain import DEFAULT_RUNBOOKS, Chain, load_runbooks
from sreagent.roles import HYPOTHESIS_CATALOGUE, IncidentMemory, PastIncident, RunbookIndex
from sreagent.roles.knowledge import tokenize

from . import windows


def test_every_fault_class_has_a_starter_runbook_that_ranks_first() -> None:
    index = load_runbooks(DEFAULT_RUNBOOKS)
    names = {rb.name for rb in index.runbooks}
    for fc in HYPOTHESIS_CATALOGUE:
        assert fc.name in names
        hits = index.search(" ".join(fc.keywords), fault_class=fc.name, top_k=1)
        assert hits[0].name == fc.name


def test_bm25_prefers_the_matching_text_and_is_deterministic() -> None:
    index = RunbookIndex.from_texts({
        "b": "# Disk\nclasses: disk_io_saturation\nawait latency queue iostat",
        "a": "# CPU\nrun queue cpu pressure throttling",
        "c": "# Nothing\nunrelated words only",
    })
    hits = index.search("disk await latency")
    assert [h.name for h in hits] == ["b"]
    assert index.search("queue") == index.search("queue")
    assert [h.name for h in index.search("queue")] == ["a", "b"] or \
        [h.name for h in index.search("queue")] == ["b", "a"]
    assert index.search("zzz") == []
    assert tokenize("The CPU_saturation of a host") == ["cpu", "saturation", "host"]


def test_hypotheses_and_report_cite_runbooks() -> None:
    chain = Chain(runbooks=load_runbooks(DEFAULT_RUNBOOKS))
    r = chain.run(windows.cpu_saturation().view())
    top = r.of_kind("root_cause_hypothesis").payload.hypotheses[0]  # type: ignore[union-attr]
    assert top.runbook_refs[0] == "cpu_saturation"
    report = r.of_kind("incident_report").payload  # type: ignore[union-attr]
    assert "docs/runbooks/cpu_saturation.md" in report.summary


def test_similar_past_incidents_by_fingerprint() -> None:
    chain = Chain()
    first = chain.run(windows.cpu_saturation(seed=1).view())
    assert first.memory.incidents and first.memory.incidents[0].fault_class == "cpu_saturation"
    unrelated = PastIncident("inc-disk", "disk_io_saturation",
                             {"family:io": 1.0, "class:disk_io_saturation": 2.0})
    chain.memory = IncidentMemory((*first.memory.incidents, unrelated))
    later = windows.quiet().start_ns + 86_400 * 10**9  # the same shape, a day later
    second = chain.run(windows.cpu_saturation(seed=2, start_ns=later).view())
    assert second.incident_id != first.incident_id
    similar = second.of_kind("incident_report").payload.similar_incidents  # type: ignore[union-attr]
    assert similar[0].incident_id == first.incident_id
    assert similar[0].similarity > 0.9
    assert all(s.incident_id != "inc-disk" for s in similar) or similar[-1].similarity < 0.5
