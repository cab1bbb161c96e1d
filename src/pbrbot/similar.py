"""Are two questions the same question in other words? The model's question vectors and one fitted threshold.

Used by the knowledge gaps (rephrasings of one question count once), by feedback (votes move a quote for the
same and similar questions only) and by pins (a pinned answer serves the question and its rephrasings).

SAME_QUESTION was chosen on tests/data/question_pairs.jsonl (pairs written for this: rephrasings, and
different questions on the same topics) with the packaged model: see test_similar.py, which re-fits it
with 5-fold cross-validation and checks the held-out accuracy.
"""

from __future__ import annotations

import hashlib

import numpy as np

from pbrbot.questions import normalise
from pbrbot.store import Store

# Cosine of the packaged model's vectors of two glossary-expanded questions at or above which they are one
# question. Fitted on the 70 pairs of tests/data/question_pairs.jsonl (35 rephrasings, 35 different questions
# on the same topic, many differing in one word: "how many prisons" / "how many people in prison"):
# 5-fold CV accuracy 0.76 (0.47 without the glossary's expansion: "PbR" and "payment by results" are far
# apart for the model). Erring high: a vote or pin wrongly shared is worse than a rephrasing missed.
SAME_QUESTION = 0.78
# Below SAME_QUESTION, a question's weight for another's votes falls linearly to 0 over this much cosine.
NEAR_BAND = 0.1


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


def question_vectors(store: Store, embedder, glossary, texts: list[str]) -> np.ndarray:
    """Unit vectors of the questions (rows): each question with the glossary's expansion (acronyms spelled
    out), lower-cased, embedded once per model and text and kept in the store (a read-only archive: not
    kept)."""
    if not texts:
        return np.zeros((0, getattr(embedder, "dim", 0)), dtype=np.float32)
    texts = [glossary.expand(normalise(t)).lower() for t in texts]
    keys = [_key(t) for t in texts]
    found: dict[bytes, np.ndarray] = {}
    unique = list(dict.fromkeys(keys))
    for key, blob in store.select_in("select key, vector from question_vectors where model = ? "
                                     "and key in ({marks})", unique, [embedder.name]):
        found[key] = np.frombuffer(blob, dtype=np.float32)
    missing = [k for k in unique if k not in found]
    if missing:
        first = {k: t for k, t in zip(reversed(keys), reversed(texts))}
        made = np.asarray(embedder.encode([first[k] for k in missing]), dtype=np.float32)
        made /= np.maximum(np.linalg.norm(made, axis=1, keepdims=True), 1e-12)
        for key, vec in zip(missing, made):
            found[key] = vec
        if not store.readonly:
            store.db.conn.executemany("insert or replace into question_vectors (model, key, vector) "
                                      "values (?, ?, ?)",
                                      [(embedder.name, k, v.tobytes()) for k, v in zip(missing, made)])
    return np.stack([found[k] for k in keys])


def weight(similarity: float) -> float:
    """How much a question at this cosine from another counts as it: 1 from SAME_QUESTION up, 0 below
    SAME_QUESTION - NEAR_BAND, linear between."""
    if similarity >= SAME_QUESTION:
        return 1.0
    return float(np.clip((similarity - (SAME_QUESTION - NEAR_BAND)) / NEAR_BAND, 0.0, 1.0))


def group(vectors: np.ndarray, threshold: float = SAME_QUESTION) -> list[list[int]]:
    """Rows grouped as one question: each row joins the first group whose first row is at least `threshold`
    alike (the most alike when several are), else starts a group. Groups in order of their first row."""
    groups: list[list[int]] = []
    leaders: list[int] = []
    for i in range(len(vectors)):
        best, best_sim = None, threshold
        if leaders:
            sims = vectors[leaders] @ vectors[i]
            j = int(np.argmax(sims))
            if sims[j] >= best_sim:
                best = j
        if best is None:
            leaders.append(i)
            groups.append([i])
        else:
            groups[best].append(i)
    return groups


def fit_threshold(similarities: np.ndarray, same: np.ndarray) -> float:
    """The cut that classifies the most pairs right (`same`: 1 for one question in two wordings): the
    midpoint between neighbouring similarities at the best split."""
    order = np.sort(np.unique(similarities))
    cuts = np.concatenate([[order[0] - 1e-3], (order[:-1] + order[1:]) / 2, [order[-1] + 1e-3]])
    accuracy = [np.mean((similarities >= c) == same.astype(bool)) for c in cuts]
    return float(cuts[int(np.argmax(accuracy))])
