"""`pbrbot fit` and `pbrbot eval --cv`: fit the sentence ranker, the refusal threshold and the hybrid's
fusion weighting on labelled questions, with cross-validation.

Labels (fit_runs.py): a candidate sentence is positive when it overlaps the question's evidence phrase in
the post. Folds are grouped by gold post (questions that share a gold post are in one fold), so no question is
scored by a model fitted on it or on another question about the same post. Within a fold: the fusion
weighting is chosen on the training questions (first gold post's rank in the fused list), the ranker is a
logistic regression (Newton steps in numpy) on the training questions' candidates, with two listwise models
for the quotes' order (which of the pool's posts is a gold post, from each post's largest feature values
and its ranks in the two halves of the hybrid;
which sentence of a post holds the evidence), and a gate (a logistic regression on each question's best
candidates, their probabilities taken out of fold) whose `found` threshold best separates the training
questions' answerable from their out-of-scope ones. Each question's search and features are cached
(fit_runs.Runs: the data dir's fit-cache.pkl), so a refit takes seconds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pbrbot.evaluate import OUT_OF_SCOPE
from pbrbot.fit_runs import Runs, labels
from pbrbot.ranker import (
    FEATURES,
    GATE_FEATURES,
    Model,
    logistic,
    post_features,
    post_retrieval,
    question_features,
)
from pbrbot.search import fuse

if TYPE_CHECKING:
    from pbrbot.answer import Answerer

FOLDS = 5
# Figures are the mean over REPEATS cross-validations, each with its own split into folds: one split alone
# moved dev hit@3 by up to 0.04 and refusal by 0.12 (ten splits, one model), a spread larger than most of
# what a change buys
REPEATS = 5
L2 = 1.0
GOLD_WEIGHT = 0.1  # listwise target weight of a gold post's sentences that do not hold the evidence
WITHIN = True  # fit the within-post sentence model (dev CV evid@3 0.57 -> 0.62)
POSTS = True  # fit the post model (with WITHIN: hit@3 0.80 -> 0.85, evid@3 0.60 -> 0.66)
POST_L2 = 3.0  # of the post model (out of fold on all labelled: 1 -> 3 hit@3 0.892 -> 0.904; 10 alike)
# Features that only the within-post model uses: they rank a post's sentences among themselves (within-post
# CV MRR of the evidence sentence 0.659 -> 0.698, top-1 0.51 -> 0.56 over 176 posts); given to the other
# models too they moved the refusal gate (dev CV answered 0.959 -> 0.945) and bought nothing
WITHIN_ONLY = ("dense_in_post", "distinct", "prev_dense", "next_dense", "introduced")
# The gate learns from the ranker's probabilities out of fold (gate_inputs): mean of 20 splits, refusal dev
# 0.930 -> 0.938, outside dev 0.875 -> 0.888, answered 0.932 -> 0.932 and 0.968 -> 0.971 (3 inner folds alike;
# the threshold chosen on the gate's own out-of-fold probabilities too: dev worse, outside better)
GATE_FOLDS = 5
LIST_L2 = 1.0  # of the listwise order (0.1 and 10 measured no better: within 2 questions on dev)
# A wrong refusal weighs ANSWER_WEIGHT against a wrong answer's 1 - ANSWER_WEIGHT: twice, as the acceptance
# allows 5% of answerable questions refused and 10% of out-of-scope ones answered (0.5 measured: dev CV
# refusal 0.96, answered 0.94; 2/3: 0.92, 0.96; all labelled 0.93/0.96 -> 0.91/0.97)
ANSWER_WEIGHT = 2 / 3
FUSION_GRID = {"keyword": (0.5, 0.75, 1.0, 1.5, 2.0, 3.0), "common": (0.25, 0.5, 1.0),
               "rare": (0.35, 0.45, 0.55)}
REPO = Path(__file__).resolve().parents[2]


def default_question_files() -> list[Path]:
    """The labelled questions of a checkout: seed, calibration, written for training, and the dev set."""
    from pbrbot.sources.sample import seed_questions_path

    data = REPO / "tests" / "data"
    return [Path(seed_questions_path()), data / "calibration-questions.jsonl", data / "train-questions.jsonl",
            data / "dev" / "questions.jsonl"]


# -- labels and folds ---------------------------------------------------------------------------
def folds(items: list[dict], k: int = FOLDS, repeat: int = 0) -> list[int]:
    """A fold number for each question; questions sharing a gold post share a fold. Each `repeat` is
    another split (deterministic: groups are dealt in an order hashed from the repeat and a question)."""
    parent = list(range(len(items)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, item in enumerate(items):
        for url in item.get("gold_urls") or []:
            url = url.split("#")[0].rstrip("/").lower()
            if url in owner:
                parent[find(i)] = find(owner[url])
            else:
                owner[url] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(find(i), []).append(i)
    salt = f"{repeat}:" if repeat else ""
    order = sorted(groups.values(), key=lambda g: (-len(g), hashlib.sha1((salt + items[g[0]]["question"])
                                                                        .encode()).hexdigest()))
    sizes, out = [0] * k, [0] * len(items)
    for group in order:  # largest groups first, each to the smallest fold
        f = sizes.index(min(sizes))
        sizes[f] += len(group)
        for i in group:
            out[i] = f
    return out


# -- fitting ------------------------------------------------------------------------------------
def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = 30):
    """Weights, bias, mean and scale of an L2-regularised logistic regression (Newton's method)."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(steps):
        p = logistic(z @ w)
        grad = z.T @ (p - y) + reg * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(reg + 1e-9)
        delta = np.linalg.solve(hess, grad)
        w -= delta
        if np.abs(delta).max() < 1e-6:
            break
    return w[:-1], float(w[-1]), mean, scale


def fit_listwise(xs: list[np.ndarray], ys: list[np.ndarray], mean: np.ndarray, scale: np.ndarray,
                 l2: float = L2, steps: int = 60) -> np.ndarray:
    """Weights of a linear scorer maximising, over questions with a positive candidate, the softmax
    probability of the positives among the question's candidates (L2-regularised; Newton's method)."""
    groups = [((x - mean) / scale, y) for x, y in zip(xs, ys) if y.any()]
    w = np.zeros(len(mean))

    def moments(z, weights):
        p = weights / weights.sum()
        mu = z.T @ p
        return mu, (z * p[:, None]).T @ z - np.outer(mu, mu)

    for _ in range(steps):
        grad, hess = 2 * l2 * w, np.eye(len(w)) * 2 * l2
        for z, y in groups:
            s = z @ w
            e = np.exp(s - s.max())
            mu_all, cov_all = moments(z, e)
            mu_pos, cov_pos = moments(z, np.exp(s - s[y > 0].max()) * y)
            grad += mu_all - mu_pos
            hess += cov_all - cov_pos
        # the positives' own spread makes the loss non-convex: keep the step's curvature positive
        vals, vecs = np.linalg.eigh(hess)
        delta = vecs @ ((vecs.T @ grad) / np.maximum(vals, 2 * l2))
        delta *= min(1.0, 1.0 / max(float(np.linalg.norm(delta)), 1e-12))  # a trust region of 1
        w -= delta
        if np.abs(delta).max() < 1e-6:
            break
    return w


def threshold(best: np.ndarray, answerable: np.ndarray, weight: float | None = None) -> float:
    """The cut on the gate's probability that maximises ANSWER_WEIGHT * answered + (1 - ANSWER_WEIGHT) *
    refused (shares of the answerable and out-of-scope questions)."""
    weight = ANSWER_WEIGHT if weight is None else weight
    values = np.unique(best)
    cuts = np.concatenate([[0.0], (values[1:] + values[:-1]) / 2, [1.0]])
    n_ans, n_out = max(answerable.sum(), 1), max((~answerable).sum(), 1)

    def merit(c):
        return (weight * (best[answerable] >= c).sum() / n_ans
                + (1 - weight) * (best[~answerable] < c).sum() / n_out)

    scores = np.array([merit(c) for c in cuts])
    good = cuts[scores >= scores.max() - 1e-9]
    return float(np.median(good))


def _shared(x: np.ndarray) -> np.ndarray:
    """x with the WITHIN_ONLY features zeroed: the models other than `within` get no weight on them."""
    out = x.copy()
    out[:, [FEATURES.index(f) for f in WITHIN_ONLY]] = 0.0
    return out


def fit_model(preps: list, ys: list[np.ndarray], items: list[dict], fusion: dict) -> Model:
    """The ranker (pointwise for the gate, listwise with the gold posts' other sentences as weak positives
    for the order), the gate and its thresholds, from prepared questions and their evidence labels."""
    weak = [np.maximum(y, labels(p, i, GOLD_WEIGHT)) for p, y, i in zip(preps, ys, items)]
    used = [n for n, p in enumerate(preps) if len(p.pool)]
    shared = {n: _shared(preps[n].x) for n in used}
    x = np.vstack([shared[n] for n in used])
    y = np.concatenate([ys[n] for n in used])
    w, b, mean, scale = fit_logistic(x, y)
    order = fit_listwise([shared[n] for n in used], [weak[n] for n in used], mean, scale, LIST_L2)
    model = Model(w, b, mean, scale, order, {}, 0.5, 0.0, dict(fusion))
    if WITHIN:
        xs, ys_ = [], []
        for n in used:  # each post holding the evidence: which of its sentences
            posts = np.array([c.post.id for c in preps[n].pool])
            for post in np.unique(posts[ys[n] > 0]):
                xs.append(preps[n].x[posts == post])
                ys_.append(ys[n][posts == post])
        model.within = fit_listwise(xs, ys_, mean, scale, LIST_L2)
    if POSTS:
        pxs, pys = [], []
        for n in used:  # which of the pool's posts is a gold post
            unique, ids = np.unique([c.post.id for c in preps[n].pool], return_inverse=True)
            gold = np.zeros(ids.max() + 1)
            np.maximum.at(gold, ids, (weak[n] > 0).astype(float))
            pxs.append(post_features(shared[n], ids, post_retrieval(preps[n].hits, unique)))
            pys.append(gold)
        stacked = np.vstack(pxs)
        pmean, pscale = stacked.mean(axis=0), stacked.std(axis=0)
        pscale[pscale < 1e-9] = 1.0
        model.post = {"weights": fit_listwise(pxs, pys, pmean, pscale, POST_L2), "mean": pmean,
                      "scale": pscale}
    answerable = np.array([i.get("kind") != OUT_OF_SCOPE for i in items])
    # Training questions whose evidence is in no candidate say nothing about how an answer looks.
    keep = [n for n in used if not answerable[n] or ys[n].any()]
    q = gate_inputs(preps, ys, items, shared, used, keep)
    gw, gb, gmean, gscale = fit_logistic(q, answerable[keep].astype(float))
    model.gate = {"features": list(GATE_FEATURES), "weights": gw, "bias": gb, "mean": gmean, "scale": gscale}
    best = model.gate_probability(q)
    model.found = threshold(best, answerable[keep])
    ok = best[answerable[keep]]
    model.related = float(min(ok.min() * 0.5, model.found)) if len(ok) else model.found / 2
    model.info = {"questions": len(items), "candidates": len(y), "positives": int(y.sum())}
    return model


# -- fusion -------------------------------------------------------------------------------------
def gate_inputs(preps: list, ys: list[np.ndarray], items: list[dict], shared: dict[int, np.ndarray],
                used: list[int], keep: list[int]) -> np.ndarray:
    """The gate's features (question_features) of the questions `keep`, each from the probabilities of a
    pointwise model fitted without it (GATE_FOLDS inner folds grouped by gold post): in-sample probabilities
    are surer than a new question's, so a gate fitted on them refuses answerable questions it should answer.
    `shared`: each question's features as the pointwise model sees them (_shared)."""
    inner = dict(zip(used, folds([items[n] for n in used], GATE_FOLDS)))
    q = np.zeros((len(keep), len(GATE_FEATURES)))
    for f in range(GATE_FOLDS):
        rest = [n for n in used if inner[n] != f]
        w, b, mean, scale = fit_logistic(np.vstack([shared[n] for n in rest]),
                                         np.concatenate([ys[n] for n in rest]))
        for j, n in enumerate(keep):
            if inner[n] == f:
                q[j] = question_features(preps[n].x, logistic((shared[n] - mean) / scale @ w + b))
    return q


def gold_rank(order: list, post_of: dict[int, int], gold: set[int]) -> int | None:
    """Rank (1-based, by distinct post) of the first gold post in a fused passage order."""
    seen: list[int] = []
    for pid, _ in order:
        post = post_of.get(pid)
        if post is None or post in seen:
            continue
        seen.append(post)
        if post in gold:
            return len(seen)
    return None


def fusion_merit(runs: list, fusion: dict) -> float:
    """Mean reciprocal rank of the first gold post (answerable questions only)."""
    total = 0.0
    for dense, keyword, rarity, post_of, gold in runs:
        rank = gold_rank(fuse(dense, keyword, rarity, fusion), post_of, gold)
        total += 1.0 / rank if rank else 0.0
    return total / max(len(runs), 1)


def fit_fusion(runs: list) -> dict:
    grid = [dict(zip(FUSION_GRID, v)) for v in product(*FUSION_GRID.values())]
    return max(grid, key=lambda f: (round(fusion_merit(runs, f), 6), -abs(f["keyword"] - 1.0)))


def fit_all(runs: Runs, idx: list[int], progress: Callable | None = None) -> Model:
    """Fusion, then ranker and thresholds, on the questions `idx`."""
    fusion = fit_fusion(runs.fusion_runs(idx))
    pairs = [runs.prepared(n, fusion) for n in idx]
    return fit_model([p for p, _ in pairs], [y for _, y in pairs], [runs.items[n] for n in idx], fusion)


def cross_validate(answerer: Answerer, data_dir: Path, items: list[dict], k: int = FOLDS,
                   progress: Callable | None = None, repeat: int = 0) -> dict:
    """Out-of-fold answers to every question: {"answers": [Answer], "fold": [...], "models": [Model],
    "fusion": {"fused"/"dense"/"keyword": out-of-fold gold-post MRR}}, with the `repeat`th split into folds.
    The runs are cached in `data_dir`."""
    runs = Runs(answerer, data_dir, items)
    fold = folds(items, k, repeat)
    answers: list = [None] * len(items)
    models = []
    mrr = {"fused": 0.0, "dense": 0.0, "keyword": 0.0}
    for f in range(k):
        train = [n for n in range(len(items)) if fold[n] != f]
        test = [n for n in range(len(items)) if fold[n] == f]
        model = fit_all(runs, train)
        models.append(model)
        held = runs.fusion_runs(test)
        mrr["fused"] += fusion_merit(held, model.fusion) * len(held)
        mrr["dense"] += fusion_merit(held, {"keyword": 0.0, "common": 1.0, "rare": 0.0}) * len(held)
        mrr["keyword"] += fusion_merit(held, {"keyword": 1e6, "common": 1.0, "rare": 0.0}) * len(held)
        for n in test:
            prep, _ = runs.prepared(n, model.fusion)
            answers[n] = answerer.answer(prep, 3, model)
        runs.save()
        if progress:
            progress(f + 1, k)
    answerable = sum(i.get("kind") != OUT_OF_SCOPE for i in items) or 1
    return {"answers": answers, "fold": fold, "models": models,
            "fusion": {name: round(v / answerable, 3) for name, v in mrr.items()}}


def write(model: Model, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    ranker, fusion = out_dir / "ranker.json", out_dir / "fusion.json"
    ranker.write_text(json.dumps(model.as_dict(), indent=1) + "\n", encoding="utf-8")
    fusion.write_text(json.dumps(model.fusion) + "\n", encoding="utf-8")
    return [ranker, fusion]
