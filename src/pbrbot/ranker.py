"""The fitted sentence ranker: candidate features, the model that scores them, and its shipped weights.

Each candidate sentence of a question gets FEATURES (all from vectors and counts the answerer already has:
no extra model call per candidate). A logistic model, fitted by `pbrbot fit` (fit.py) on labelled questions
(a sentence is positive when it holds the question's evidence phrase), turns them into the probability
that the sentence is the answer. The same fit calibrates `found` (the best sentence's probability needed to
answer at all) and `related` (below it, "Related, not an answer" is left out: nothing is even close).
The weights ship as data/ranker.json.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from pbrbot.errors import PbrbotError
from pbrbot.models import Hit
from pbrbot.questions import answer_type, context_stems, sentence_stems, stem_families, word_stems
from pbrbot.quotes import CONTINUES, Candidate
from pbrbot.sentences import _WORD

FEATURES = ("dense", "context", "keyword", "keyword_own", "rank", "type_hit", "type_miss", "heading",
            "list_item", "first", "position", "title", "post_dense", "post_rank", "rel_dense", "rel_keyword",
            "length", "short", "continues", "question", "passage", "post_passage", "dense_in_post",
            "distinct", "prev_dense", "next_dense", "introduced")  # the last three: see neighbours()
POST_RETRIEVAL = ("dense_post", "keyword_post", "fused_post", "post_hits")
TOPIC_DISCOUNT = 0.7  # a question word found in most candidates is the topic: weighed this much less
MODEL_FILE = "ranker.json"


@dataclass
class Model:
    weights: np.ndarray  # pointwise: the probability that a sentence is the answer (for `found`)
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    order: np.ndarray  # listwise: which of a question's sentences come first
    gate: dict  # question level: the probability that the archive answers it ("weights", "bias", ...)
    found: float  # the gate's probability needed to answer
    related: float  # below this gate probability no related posts are listed
    fusion: dict = field(default_factory=dict)  # the hybrid search's fitted weighting (search.py)
    info: dict = field(default_factory=dict)
    within: np.ndarray | None = None  # listwise, inside one post: which of its sentences holds the answer
    # listwise over posts ("weights", "mean", "scale" of post_features)
    post: dict = field(default_factory=dict)

    def score(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.scale
        return logistic(z @ self.weights + self.bias)

    def answers(self, x: np.ndarray) -> float:
        """The probability that the archive answers the question whose candidates are `x`."""
        if not len(x):
            return 0.0
        return float(self.gate_probability(question_features(x, self.score(x))))

    def gate_probability(self, q: np.ndarray) -> np.ndarray:
        """The gate's probability of question features `q` (question_features: one row, or one per
        question)."""
        g = self.gate
        z = (q - np.asarray(g["mean"])) / np.asarray(g["scale"])
        return logistic(z @ np.asarray(g["weights"]) + g["bias"])

    def rank(self, x: np.ndarray, posts: list[int] | None = None,
             hits: list[Hit] | None = None) -> np.ndarray:
        """Each sentence's weight relative to the question's best (1.0 for the best, in (0, 1]). With the
        sentences' `posts` and a `within` model: P(post) x P(sentence | post), the post's weight from the
        `post` model over post_features (else its best sentence's `order` weight) and the sentence's share
        within its post from `within`. Fitted apart, the post model finds the right post and the within model
        the sentence of that post that states the answer (not its opening). `hits`: the search's hits, whose
        ranks in each half of the hybrid give the post model its retrieval features (post_retrieval)."""
        z = (x - self.mean) / self.scale
        s = z @ self.order
        if posts is not None and self.within is not None and len(self.within):
            s = s - s.max()
            t = z @ self.within
            ids = np.unique(posts, return_inverse=True)[1]
            if self.post:
                px = post_features(x, ids, post_retrieval(hits or [], np.unique(posts)))
                ps = ((px - np.asarray(self.post["mean"])) / np.asarray(self.post["scale"])) @ np.asarray(
                    self.post["weights"])
                post_mass = np.exp(ps - ps.max())
            else:
                post_mass = np.zeros(ids.max() + 1)
                np.maximum.at(post_mass, ids, np.exp(s))
            t = t - t.max()
            share = np.exp(t) / np.bincount(ids, weights=np.exp(t))[ids]
            s = np.log(post_mass[ids]) + np.log(share)
        return np.exp(s - s.max())

    def as_dict(self) -> dict:
        return {"features": list(FEATURES), "weights": [round(float(w), 6) for w in self.weights],
                "bias": round(float(self.bias), 6), "mean": [round(float(m), 6) for m in self.mean],
                "scale": [round(float(s), 6) for s in self.scale],
                "order": [round(float(w), 6) for w in self.order],
                "gate": {k: _rounded(v) for k, v in self.gate.items()}, "found": round(self.found, 4),
                "related": round(self.related, 4), "fusion": self.fusion, "info": self.info,
                "post": {k: _rounded(v) for k, v in self.post.items()},
                "within": [] if self.within is None else [round(float(w), 6) for w in self.within]}

    @classmethod
    def from_dict(cls, data: dict) -> Model:
        if list(data.get("features", [])) != list(FEATURES):
            raise PbrbotError("the ranker weights do not match this version's features: run `pbrbot fit`")
        return cls(np.array(data["weights"], float), float(data["bias"]), np.array(data["mean"], float),
                   np.array(data["scale"], float), np.array(data["order"], float), dict(data["gate"]),
                   float(data["found"]), float(data["related"]),
                   dict(data.get("fusion") or {}), dict(data.get("info") or {}),
                   np.array(data.get("within") or [], float), dict(data.get("post") or {}))


def logistic(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _rounded(value):
    if isinstance(value, np.ndarray):
        return [round(float(v), 6) for v in value]
    return round(float(value), 6) if isinstance(value, (float, np.floating)) else value


def load_model(path: Path | str | None = None) -> Model:
    """The shipped model (or the one at `path`)."""
    if path is None:
        text = resources.files("pbrbot").joinpath("data", MODEL_FILE).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return Model.from_dict(json.loads(text))


def distinct_cosines(vectors: np.ndarray, qvec: np.ndarray, posts: list[int]) -> np.ndarray:
    """Each sentence's cosine with what the question asks beyond its post's topic: the question vector less
    its component along the mean of the post's candidate sentences (`vectors`, one row per candidate;
    `posts`, each candidate's post). Within a post every sentence shares the topic, so this says which one
    speaks to the rest of the question (with dense_in_post, used by the within-post model only:
    fit.WITHIN_ONLY). All posts at once (one matrix product, no loop over posts)."""
    if not len(posts):
        return np.zeros(0)
    _, ids, counts = np.unique(np.asarray(posts), return_inverse=True, return_counts=True)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    means = np.add.reduceat(vectors[np.argsort(ids, kind="stable")], starts, axis=0) / counts[:, None]
    norms2 = (means * means).sum(axis=1)
    along = np.where(norms2 > 1e-18, (means @ qvec) / np.maximum(norms2, 1e-18), 0.0)  # per post
    length = np.maximum(np.sqrt(((qvec[None, :] - along[:, None] * means) ** 2).sum(axis=1)), 1e-9)
    # each sentence . (question less its post's topic) = its cosine with the question less along x its
    # dot product with the post's mean
    return (vectors @ qvec - along[ids] * (vectors * means[ids]).sum(axis=1)) / length[ids]


def within_post_rank(values: np.ndarray, posts: list[int]) -> np.ndarray:
    """1 / (1 + r), r the rank (0 = highest) of each value among those of its post (`posts`, each value's
    post): a post's best sentence by dense cosine whatever its cosine. Ties keep the candidates' order."""
    if not len(posts):
        return np.zeros(0)
    _, ids = np.unique(np.asarray(posts), return_inverse=True)
    order = np.lexsort((-np.asarray(values, dtype=float), ids))  # by post, then value down (stable)
    sorted_ids = ids[order]
    starts = np.searchsorted(sorted_ids, np.arange(ids.max() + 1))
    ranks = np.empty(len(ids))
    ranks[order] = np.arange(len(ids)) - starts[sorted_ids]
    return 1.0 / (1.0 + ranks)


def features(pool: list[Candidate], query: str, own: np.ndarray, around: np.ndarray,
             idf: dict[str, float], distinct: np.ndarray) -> np.ndarray:
    """(len(pool), len(FEATURES)) for the pool's candidates. `own`/`around`: cosine of each sentence / its
    context with the question; `idf`: weight of each question stem; `distinct`: distinct_cosines."""
    stems = list(idf)
    have = [sentence_stems(c.post, c.index) for c in pool]
    near = [context_stems(c.post, c.index) for c in pool]
    title_stems = {c.post.id: word_stems(c.post.title) for c in pool}
    family = stem_families(stems, frozenset().union(*near, *title_stems.values()))
    # in_own[i, j]: sentence i has question stem j; in_near: its context has it
    in_own = np.array([[not h.isdisjoint(family[s]) for s in stems] for h in have], dtype=float)
    in_near = np.array([[not n.isdisjoint(family[s]) for s in stems] for n in near], dtype=float)
    in_own, in_near = in_own.reshape(len(pool), len(stems)), in_near.reshape(len(pool), len(stems))
    # words in most candidates are the topic, not what is asked about it
    weights = np.array([idf[s] for s in stems]) * (1.0 - TOPIC_DISCOUNT * in_own.mean(axis=0))
    total = weights.sum() or 1.0
    kw_own = in_own @ weights / total
    kw = kw_own + 0.5 * (np.maximum(in_near - in_own, 0.0) @ weights) / total
    wants = answer_type(query)
    asked = set(_WORD.findall(query))
    titles: dict[int, float] = {}
    post_dense: dict[int, float] = {}
    post_rank: dict[int, int] = {}
    post_passage: dict[int, float] = {}
    for cand, d in zip(pool, own):
        post_passage[cand.post.id] = max(post_passage.get(cand.post.id, 0.0), cand.passage)
        post_dense[cand.post.id] = max(post_dense.get(cand.post.id, -1.0), float(d))
        post_rank[cand.post.id] = min(post_rank.get(cand.post.id, 10**6), cand.rank)
        if cand.post.id not in titles:
            title = title_stems[cand.post.id]
            titles[cand.post.id] = sum(idf[s] for s in stems if not title.isdisjoint(family[s])) / (
                sum(idf.values()) or 1.0)
    best_dense, best_kw = float(np.max(own)), float(np.max(kw)) if len(kw) else 0.0
    is_question = 1.0 if wants is None and re.match(r"\s*(why|how)\b", query, re.IGNORECASE) else 0.0
    dense_in_post = within_post_rank(np.asarray(own, dtype=float), [c.post.id for c in pool])
    cosine = {(cand.post.id, cand.index): float(d) for cand, d in zip(pool, own)}
    rows = []
    for cand, d, c, k, ko, dp, dc in zip(pool, own, around, kw, kw_own, dense_in_post, distinct):
        text = cand.text
        words = len(text.split())
        hit = wants is not None and any(set(_WORD.findall(m.group())) - asked for m in wants.finditer(text))
        block = cand.post.kind(cand.index)
        n = len(cand.post.spans)
        rows.append((float(d), float(c), k, ko, 1.0 / (1.0 + cand.rank / 4), float(hit),
                     float(bool(wants) and not hit), float(block == "h"), float(block == "li"),
                     float(cand.index == 0), cand.index / max(n - 1, 1), titles[cand.post.id],
                     post_dense[cand.post.id], 1.0 / (1.0 + post_rank[cand.post.id] / 4),
                     float(d) - best_dense,
                     k - best_kw, math.log1p(words), float(words < 8), float(bool(CONTINUES.match(text))),
                     is_question * float(d), cand.passage, post_passage[cand.post.id], float(dp), float(dc),
                     *neighbours(cand, float(d), cosine, post_dense[cand.post.id])))
    return np.array(rows, dtype=float).reshape(len(pool), len(FEATURES))


def neighbours(cand: Candidate, own: float, cosine: dict[tuple[int, int], float], post_best: float) -> tuple:
    """prev_dense, next_dense, introduced: the dense cosine of the sentence before and after (its own where
    that one is no candidate), less the post's best, and whether the sentence before introduces it ("...:").
    The answer often follows a sentence that matches the question better than itself: "The report found
    that:" or a heading-like opener, then the finding. Within-post model only (fit.WITHIN_ONLY): mean of 20
    splits into 5 folds, evidence@3 dev 0.737 -> 0.749, the labelled questions outside dev 0.869 -> 0.878
    (hit@3 0.837 -> 0.843 and 0.917 -> 0.920; given to every model they bought nothing)."""
    before = (cand.post.id, cand.index - 1)
    return (cosine.get(before, own) - post_best, cosine.get((cand.post.id, cand.index + 1), own) - post_best,
            float(cand.index > 0 and cand.post.sentence(cand.index - 1).rstrip().endswith(":")))


def post_features(x: np.ndarray, ids: np.ndarray, retrieval: np.ndarray) -> np.ndarray:
    """Each post's features: the largest value of each feature among its candidate sentences (`ids`: each
    sentence's post number, 0..n-1), then its `retrieval` features (post_retrieval)."""
    out = np.full((ids.max() + 1, x.shape[1]), -np.inf)
    np.maximum.at(out, ids, x)
    return np.hstack([out, retrieval])


def post_retrieval(hits: list[Hit], posts: np.ndarray) -> np.ndarray:
    """(len(posts), len(POST_RETRIEVAL)): where each post ranks among the hits' posts in the dense half, in
    the keyword half and fused, as 1 / rank (0 when none of its passages is in that half), and how many of
    its passages are hits. With them the post model can follow the dense half where it is right."""
    best: dict[int, list[float]] = {}
    for n, hit in enumerate(hits):
        row = best.setdefault(hit.post_id, [np.inf, np.inf, np.inf, 0.0])
        for col, rank in enumerate((hit.dense_rank, hit.keyword_rank, n + 1)):
            if rank is not None:
                row[col] = min(row[col], rank)
        row[3] += 1
    out = np.zeros((len(posts), len(POST_RETRIEVAL)))
    known = [p for p in posts if p in best]
    for col in range(3):  # a post's rank among the hits' posts, by its best passage's rank in that half
        ranks = sorted(best[p][col] for p in known if np.isfinite(best[p][col]))
        for i, p in enumerate(posts):
            if p in best and np.isfinite(best[p][col]):
                out[i, col] = 1.0 / (1 + ranks.index(best[p][col]))
    out[:, 3] = [math.log1p(best[p][3]) if p in best else 0.0 for p in posts]
    return out


GATE_FEATURES = ("best", "top3", "dense", "context", "passage", "keyword", "keyword_own")


def question_features(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """What says whether a question is answered at all: its best candidates' probabilities (as log-odds),
    and the best dense, passage and keyword evidence among its candidates."""
    def logit(p):
        p = min(max(float(p), 1e-6), 1 - 1e-6)
        return math.log(p / (1 - p))

    top = np.sort(probs)[::-1][:3]
    cols = [FEATURES.index(f) for f in GATE_FEATURES[2:]]
    return np.array([logit(top[0]), logit(top.mean()), *x[:, cols].max(axis=0)])

