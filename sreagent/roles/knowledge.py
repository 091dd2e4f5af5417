"""Runbook retrieval (BM25) and incident memory (signal-fingerprint similarity), both pure.

The texts are handed in (the runtime reads the runbook folder once); nothing here reads a
file. Retrieval is deterministic: the same corpus and query give the same ranking, ties
broken by name. A runbook is only ever *cited*: its text never authorises an action (the
planner takes actions from the catalogue, the policy gate from configuration).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[a-z0-9]+")
_STOP = frozenset(["a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "in", "is", "it", "of", "on", "or", "that", "the", "this", "to", "was", "were", "will", "with", "when", "what", "which", "who", "why", "how", "not", "no", "do", "does", "if", "then", "else", "can", "may"])


def tokenize(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower().replace("_", " ")) if t not in _STOP]


@dataclass(frozen=True)
class Runbook:
    name: str
    """File stem, e.g. ``cpu_saturation``; what artifacts cite."""
    title: str
    text: str
    fault_classes: tuple[str, ...] = ()
    """Classes the runbook declares it covers (front matter ``classes:`` line)."""


@dataclass(frozen=True)
class RunbookHit:
    name: str
    score: float


@dataclass
class RunbookIndex:
    """Okapi BM25 over runbooks (k1 = 1.5, b = 0.75), plus a bonus for declared classes."""

    runbooks: tuple[Runbook, ...] = ()
    k1: float = 1.5
    b: float = 0.75
    class_bonus: float = 2.0
    _tf: list[Counter[str]] = field(default_factory=list, init=False, repr=False)
    _df: Counter[str] = field(default_factory=Counter, init=False, repr=False)
    _avgdl: float = field(default=1.0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.runbooks = tuple(sorted(self.runbooks, key=lambda r: r.name))
        for rb in self.runbooks:
            tokens = tokenize(f"{rb.title} {rb.title} {rb.text}")
            tf = Counter(tokens)
            self._tf.append(tf)
            self._df.update(tf.keys())
        lengths = [sum(tf.values()) for tf in self._tf]
        self._avgdl = (sum(lengths) / len(lengths)) if lengths else 1.0

    @classmethod
    def from_texts(cls, texts: Mapping[str, str]) -> RunbookIndex:
        """Build from ``{name: markdown}``; the first ``# heading`` is the title and a
        ``classes: a, b`` line declares the fault classes the runbook covers."""
        books = []
        for name, text in texts.items():
            title = next((ln.lstrip("# ").strip() for ln in text.splitlines()
                          if ln.startswith("# ")), name)
            m = re.search(r"^classes:\s*(.+)$", text, re.MULTILINE)
            classes = tuple(c.strip() for c in m.group(1).split(",")) if m else ()
            books.append(Runbook(name, title, text, classes))
        return cls(tuple(books))

    def search(self, query: str, *, fault_class: str | None = None,
               top_k: int = 3) -> list[RunbookHit]:
        n = len(self.runbooks)
        if n == 0 or top_k == 0:
            return []
        terms = tokenize(query)
        hits = []
        for rb, tf in zip(self.runbooks, self._tf, strict=True):
            dl = sum(tf.values())
            score = 0.0
            for term in terms:
                f = tf.get(term, 0)
                if not f:
                    continue
                idf = math.log(1.0 + (n - self._df[term] + 0.5) / (self._df[term] + 0.5))
                score += idf * f * (self.k1 + 1) / (f + self.k1 * (1 - self.b + self.b * dl
                                                                    / self._avgdl))
            if fault_class and fault_class in rb.fault_classes:
                score += self.class_bonus
            if score > 0:
                hits.append(RunbookHit(rb.name, round(score, 6)))
        hits.sort(key=lambda h: (-h.score, h.name))
        return hits[:top_k]


@dataclass(frozen=True)
class PastIncident:
    incident_id: str
    fault_class: str
    signature: Mapping[str, float]
    """Signal fingerprint: family or ``metric@entity_kind`` -> weight."""


def cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    dot = sum(v * b.get(k, 0.0) for k, v in a.items())
    na = math.sqrt(sum(v * v for v in a.values()))
    nb = math.sqrt(sum(v * v for v in b.values()))
    return 0.0 if na == 0 or nb == 0 else max(0.0, min(1.0, dot / (na * nb)))


@dataclass(frozen=True)
class IncidentMemory:
    """Past incidents, searched by the cosine similarity of their signal fingerprints."""

    incidents: tuple[PastIncident, ...] = ()

    def similar(self, signature: Mapping[str, float], *, top_k: int = 3,
                exclude: Iterable[str] = ()) -> list[tuple[PastIncident, float]]:
        skip = set(exclude)
        scored = [(p, round(cosine(signature, p.signature), 6)) for p in self.incidents
                  if p.incident_id not in skip]
        scored = [x for x in scored if x[1] > 0]
        scored.sort(key=lambda x: (-x[1], x[0].incident_id))
        return scored[:top_k]

    def remember(self, incident: PastIncident) -> IncidentMemory:
        kept = tuple(p for p in self.incidents if p.incident_id != incident.incident_id)
        return IncidentMemory((*kept, incident))
