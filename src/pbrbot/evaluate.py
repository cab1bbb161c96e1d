"""`pbrbot eval`: score pbrbot and two baselines (keyword-only, dense-only) on a question file.

Question file: JSON lines with id, question, kind, gold_urls, evidence (the shared seed-questions format).
hit@1 / hit@3: a gold URL is the first / among the first three quotes' URLs. evidence@3: the evidence
phrase occurs in one of the first three quotes (case-, space- and quote-mark-insensitive). Both are over
the answerable questions; refusal is the share of `out_of_scope` questions answered "not in the archive".
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pbrbot.errors import PbrbotError

if TYPE_CHECKING:
    from pbrbot.answer import Answerer

SYSTEMS = ("pbrbot", "keyword", "dense")
OUT_OF_SCOPE = "out_of_scope"
_QUOTE_MARKS = re.compile(r"[\"'“”‘’`´«»]")


def squash(text: str) -> str:
    """Lower case, no quote marks, single spaces: how evidence and quotes are compared."""
    return " ".join(_QUOTE_MARKS.sub("", text or "").lower().split())


def same_url(a: str, b: str) -> bool:
    def norm(u: str) -> str:
        return u.split("#", 1)[0].rstrip("/").lower()

    return norm(a) == norm(b)


def load_questions(path: Path | str) -> list[dict]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PbrbotError(f"cannot read {path}: {exc.strerror or exc}") from None
    questions = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PbrbotError(f"{path}: line {n} is not JSON ({exc.msg})") from None
        if not isinstance(item, dict) or not str(item.get("question") or "").strip():
            raise PbrbotError(f"{path}: line {n} has no question")
        item.setdefault("id", f"line{n}")
        item.setdefault("kind", "")
        item["gold_urls"] = item.get("gold_urls") or []
        questions.append(item)
    if not questions:
        raise PbrbotError(f"{path}: no questions")
    return questions


@dataclass
class Result:
    """What one system answered to one question."""

    found: bool
    urls: list[str]
    texts: list[str]
    seconds: float


@dataclass
class Scores:
    system: str
    answerable: int = 0
    out_of_scope: int = 0
    hit_at_1: float = 0.0
    hit_at_3: float = 0.0
    evidence_at_3: float | None = None
    evidence_if_hit: float | None = None  # evidence@3 over the questions with a hit@3: the quoting alone
    refusal: float | None = None
    median_ms: float = 0.0
    p95_ms: float = 0.0
    misses: list[str] = field(default_factory=list)  # ids of answerable questions without a hit@3

    def as_dict(self) -> dict:
        return asdict(self)


def run_system(answerer: Answerer, system: str, question: str) -> Result:
    searcher = answerer.searcher
    searcher.forget_queries()  # each system embeds the question itself: timed as it would be alone
    started = time.perf_counter()
    if system == "pbrbot":
        answer = answerer.ask(question)
        found, urls, texts = answer.found, [q.url for q in answer.quotes], [q.text for q in answer.quotes]
    else:
        search = searcher.keyword_search if system == "keyword" else searcher.dense_search
        hits = search(question, 3)
        found, urls, texts = bool(hits), [h.url for h in hits], [h.text for h in hits]
    return Result(found, urls[:3], texts[:3], time.perf_counter() - started)


def score(system: str, questions: list[dict], results: list[Result]) -> Scores:
    s = Scores(system)
    hit1 = hit3 = evidence = evidence_n = refused = if_hit = if_hit_n = 0
    for q, r in zip(questions, results):
        if q["kind"] == OUT_OF_SCOPE:
            s.out_of_scope += 1
            refused += not r.found
            continue
        s.answerable += 1
        gold = q["gold_urls"]
        first = r.urls[:1] if r.found else []
        top = r.urls[:3] if r.found else []
        hit1 += any(same_url(u, g) for u in first for g in gold)
        got3 = any(same_url(u, g) for u in top for g in gold)
        hit3 += got3
        if not got3:
            s.misses.append(str(q["id"]))
        if q.get("evidence"):
            quoted = r.found and any(squash(q["evidence"]) in squash(t) for t in r.texts[:3])
            evidence_n += 1
            evidence += quoted
            if got3:
                if_hit_n += 1
                if_hit += quoted
    if s.answerable:
        s.hit_at_1, s.hit_at_3 = round(hit1 / s.answerable, 3), round(hit3 / s.answerable, 3)
    if evidence_n:
        s.evidence_at_3 = round(evidence / evidence_n, 3)
    if if_hit_n:
        s.evidence_if_hit = round(if_hit / if_hit_n, 3)
    if s.out_of_scope:
        s.refusal = round(refused / s.out_of_scope, 3)
    ms = sorted(r.seconds * 1000 for r in results)
    s.median_ms = round(statistics.median(ms), 1)
    s.p95_ms = round(ms[min(len(ms) - 1, max(0, math.ceil(0.95 * len(ms)) - 1))], 1)
    return s


def evaluate(answerer: Answerer, questions: list[dict], systems=SYSTEMS,
             progress: Callable[[int, int], None] | None = None) -> list[Scores]:
    """Every system on every question (pbrbot warms the model first so latency means answering)."""
    answerer.searcher.dense_search("warm up", 1)
    results: dict[str, list[Result]] = {s: [] for s in systems}
    total = len(questions) * len(systems)
    done = 0
    for q in questions:
        for system in systems:
            results[system].append(run_system(answerer, system, q["question"]))
            done += 1
            if progress:
                progress(done, total)
    return [score(system, questions, results[system]) for system in systems]


def table(scores: list[Scores]) -> str:
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    head = f"{'system':<9} {'hit@1':>6} {'hit@3':>6} {'evid@3':>7} {'refusal':>8} {'p50 ms':>8} {'p95 ms':>8}"
    rows = [head, "-" * len(head)]
    for s in scores:
        rows.append(f"{s.system:<9} {pct(s.hit_at_1):>6} {pct(s.hit_at_3):>6} {pct(s.evidence_at_3):>7} "
                    f"{pct(s.refusal):>8} {s.median_ms:>8.0f} {s.p95_ms:>8.0f}")
    first = scores[0]
    rows.append(f"{first.answerable} answerable, {first.out_of_scope} out-of-scope questions")
    for s in scores:
        if s.misses:
            rows.append(f"{s.system} missed (hit@3): {', '.join(s.misses)}")
    return "\n".join(rows)
