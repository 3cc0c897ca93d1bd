"""Pairs by evidence: fingerprints weighted by rarity across the class and the sources, an inverted index so
that work grows with the class (not with its square), shared mistakes, and clusters."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from autograder.similarity.corpus import Document
from autograder.similarity.fingerprints import kgram_hashes, winnowed


@dataclass(frozen=True)
class Settings:
    """How the comparison is made; the defaults are what `autograder similarity` uses."""

    k: int = 12
    """Tokens per fingerprinted run: a shared run of k + window - 1 tokens is always seen."""
    window: int = 5
    """Winnowing's window: one fingerprint is kept per `window` runs."""
    rarity: bool = True
    """Weight each fingerprint by its rarity across the class and the sources (False: each counts 1)."""
    boilerplate: bool = True
    """Leave out the stub, the given code and the reference's forced lines (False: compare them too)."""
    common_share: float = 0.5
    """Fingerprints in more than this share of the documents (and more than 10) carry no evidence and are not
    indexed, as MOSS does: conventions, not copying."""
    min_evidence: float = 20.0
    """Evidence a pair needs to be listed, in fingerprints only the two share (rarer code counts more): about
    six lines of code that no one else wrote."""
    min_share: float = 0.4
    """Share of the smaller side's weighted code (overall, or of one definition) a listed pair has in common."""
    mistake_evidence: float = 10.0
    """Evidence a shared mistake adds (scaled by how rare the mistake is in the class)."""
    partners: int = 20
    """At most this many partners are examined per submission: memory stays proportional to the class."""


@dataclass
class Fingerprinted:
    """A document's fingerprints: hash -> where (unit index, token position), and per definition name."""

    doc: Document
    where: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    owner: dict[int, set[str]] = field(default_factory=dict)
    """hash -> the names of the definitions that hold it."""
    kept: list[list[int]] = field(default_factory=list)
    """Per unit, the positions of the tokens fingerprinted (those boilerplate does not cover)."""


@dataclass
class Pair:
    """Two documents that share more rare code than chance explains, and why they were listed."""

    a: int
    b: int
    evidence: float
    """Shared fingerprints weighted by rarity, in fingerprints only the two share, plus any shared mistake."""
    share: float
    """The larger of: the share of the smaller side's weighted code both have, or that share for one definition."""
    definitions: list[tuple[str, float]]
    """(definition, share of its weighted code in common), most shared first."""
    mistakes: list[dict] = field(default_factory=list)
    """Shared diagnoses: {"part", "misconception", "message", "count"} (how many in the class made it)."""
    source: str | None = None
    """For two students: the --against source that also holds most of what they share."""
    shared: set[int] = field(default_factory=set)


@dataclass
class Comparison:
    """The outcome: documents, listed pairs (strongest first), clusters of three or more students."""

    docs: list[Fingerprinted]
    pairs: list[Pair]
    clusters: list[list[int]]
    ignored: int
    """Fingerprints left out as too common."""
    settings: Settings


def fingerprint(doc: Document, settings: Settings, boilerplate: set[int]) -> Fingerprinted:
    """Winnowed fingerprints of each unit, after the tokens boilerplate covers are taken out (so that no
    fingerprint bridges a stub's signature and the student's first line)."""
    found = Fingerprinted(doc)
    cache: dict[str, int] = {}
    for index, unit in enumerate(doc.units):
        kept = list(range(len(unit.tokens)))
        if boilerplate:
            covered = np.zeros(len(unit.tokens), dtype=bool)
            for start, value in enumerate(kgram_hashes(unit.tokens, settings.k, cache)):
                if int(value) in boilerplate:
                    covered[start:start + settings.k] = True
            kept = [i for i in kept if not covered[i]]
        found.kept.append(kept)
        name = doc.definitions[unit.definition].name
        for value, position in winnowed([unit.tokens[i] for i in kept], settings.k, settings.window, cache):
            found.where.setdefault(value, []).append((index, position))
            found.owner.setdefault(value, set()).add(name)
    return found


def compare(docs: list[Document], settings: Settings, boilerplate: set[int]) -> Comparison:
    """Fingerprint every document, weight, index, and examine the pairs that share enough weighted code."""
    printed = [fingerprint(d, settings, boilerplate) for d in docs]
    count = len(printed)
    frequency: dict[int, int] = defaultdict(int)
    for item in printed:
        for value in item.where:
            frequency[value] += 1
    limit = max(10, settings.common_share * count)
    unit = math.log((count + 1) / 2) if settings.rarity else 1.0

    def weight(value: int) -> float:  # 1 for a fingerprint only two documents have, less the more have it
        return (math.log((count + 1) / frequency[value]) / unit) ** 2 if settings.rarity else 1.0

    weights = {v: weight(v) for v, n in frequency.items() if n <= limit}
    ignored = len(frequency) - len(weights)
    index: dict[int, list[int]] = defaultdict(list)
    for number, item in enumerate(printed):
        for value in item.where:
            if value in weights and frequency[value] > 1:
                index[value].append(number)
    totals = [sum(weights.get(v, 0.0) for v in item.where) for item in printed]
    pairs = []
    for i, item in enumerate(printed):
        evidence: dict[int, float] = defaultdict(float)
        for value in item.where:
            for j in index.get(value, ()):
                if j > i and not (item.doc.kind == "source" and printed[j].doc.kind == "source"):
                    evidence[j] += weights[value]
        best = sorted(((e, j) for j, e in evidence.items() if e >= settings.min_evidence / 2), reverse=True)
        for _, j in best[: settings.partners]:
            pair = _examine(printed, i, j, weights, totals, settings)
            if pair is not None:
                pairs.append(pair)
    _attribute(pairs, printed, index)
    pairs.sort(key=lambda p: (-p.evidence, printed[p.a].doc.name, printed[p.b].doc.name))
    return Comparison(printed, pairs, _clusters(pairs, printed), ignored, settings)


def _examine(printed: list[Fingerprinted], i: int, j: int, weights: dict[int, float], totals: list[float],
             settings: Settings) -> Pair | None:
    """The evidence of one candidate pair: overall, per definition, and shared mistakes."""
    a, b = printed[i], printed[j]
    shared = {v for v in a.where.keys() & b.where.keys() if v in weights}
    evidence = sum(weights[v] for v in shared)
    smaller = min(totals[i], totals[j]) or 1.0
    share = evidence / smaller
    per_name: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])  # shared, a's total, b's total
    for side, item in ((1, a), (2, b)):
        for value, names in item.owner.items():
            for name in names:
                per_name[name][side] += weights.get(value, 0.0)
    for value in shared:
        for name in a.owner[value] & b.owner[value]:
            per_name[name][0] += weights[value]
    definitions = sorted(((name, s / min(ta, tb)) for name, (s, ta, tb) in per_name.items()
                          if s > 0 and min(ta, tb) > 0), key=lambda x: (-x[1], x[0]))
    strong = [(n, s) for n, s in definitions if per_name[n][0] >= settings.min_evidence / 2]
    mistakes = _shared_mistakes(printed, a.doc, b.doc, {n for n, s in definitions if s >= 0.3})
    bonus = sum(settings.mistake_evidence * (1 - m["count"] / max(1, _students(printed))) for m in mistakes)
    best = max([share] + [s for _, s in strong])
    if evidence + bonus < settings.min_evidence or (best < settings.min_share and not mistakes):
        return None
    return Pair(i, j, evidence + bonus, best, definitions, mistakes, shared=shared)


def _students(printed: list[Fingerprinted]) -> int:
    return sum(1 for p in printed if p.doc.kind == "student")


def _shared_mistakes(printed: list[Fingerprinted], a: Document, b: Document, similar: set[str]) -> list[dict]:
    """Diagnoses both records carry for a part whose code the two also share: the same unusual, wrong code."""
    mine = {(d.get("part"), d.get("misconception")): d for d in a.diagnoses if d.get("misconception")}
    found = []
    for d in b.diagnoses:
        key = (d.get("part"), d.get("misconception"))
        if key in mine and key[0] in similar:
            count = sum(1 for p in printed if any((x.get("part"), x.get("misconception")) == key
                                                  for x in p.doc.diagnoses))
            found.append({"part": key[0], "misconception": key[1], "message": mine[key].get("message", ""),
                          "count": count})
    return found


def _attribute(pairs: list[Pair], printed: list[Fingerprinted], index: dict[int, list[int]]) -> None:
    """Two students whose common code is mostly also in one source both match that source."""
    for pair in pairs:
        if printed[pair.a].doc.kind == "source" or printed[pair.b].doc.kind == "source" or not pair.shared:
            continue
        via: dict[int, int] = defaultdict(int)
        for value in pair.shared:
            for k in index.get(value, ()):
                if printed[k].doc.kind == "source":
                    via[k] += 1
        if via:
            source, hits = max(via.items(), key=lambda x: (x[1], -x[0]))
            if hits >= len(pair.shared) / 2:
                pair.source = printed[source].doc.name


def _clusters(pairs: list[Pair], printed: list[Fingerprinted]) -> list[list[int]]:
    """Groups joined by listed pairs that hold three or more students (sources count as members, not students)."""
    parent = list(range(len(printed)))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pair in pairs:
        parent[root(pair.a)] = root(pair.b)
    groups: dict[int, list[int]] = defaultdict(list)
    for number in {p.a for p in pairs} | {p.b for p in pairs}:
        groups[root(number)].append(number)
    found = [sorted(g, key=lambda n: printed[n].doc.name) for g in groups.values()
             if sum(printed[n].doc.kind == "student" for n in g) >= 3]
    return sorted(found, key=lambda g: (-len(g), printed[g[0]].doc.name))
