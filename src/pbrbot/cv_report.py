"""What `pbrbot eval --cv` and `pbrbot fit` print: cross-validated figures of pbrbot (fit.py) beside the
keyword and dense baselines, overall and per kind of question."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pbrbot.evaluate import OUT_OF_SCOPE, Result, Scores, score
from pbrbot.fit import FOLDS, REPEATS, cross_validate

if TYPE_CHECKING:
    from pbrbot.answer import Answerer


def scores_of(system: str, items: list[dict], answers: list) -> Scores:
    results = [Result(a.found, [q.url for q in a.quotes][:3], [q.text for q in a.quotes][:3], 0.0)
               for a in answers]
    return score(system, items, results)


def per_kind(items: list[dict], answers: list) -> dict[str, Scores]:
    kinds = sorted({i.get("kind", "") for i in items})
    return {kind: scores_of("pbrbot", [i for i in items if i.get("kind") == kind],
                            [a for i, a in zip(items, answers) if i.get("kind") == kind]) for kind in kinds}


def answered(items: list[dict], answers: list) -> float:
    got = [a.found for i, a in zip(items, answers) if i.get("kind") != OUT_OF_SCOPE]
    return round(sum(got) / max(len(got), 1), 3)


def load_items(paths: list[Path]) -> list[dict]:
    """The questions of every file, each question once (the first file that has it wins)."""
    from pbrbot.evaluate import load_questions

    out, seen = [], set()
    for path in paths:
        for item in load_questions(path):
            if item["question"] not in seen:
                seen.add(item["question"])
                out.append({**item, "file": Path(path).name})
    return out


def cv_report(answerer: Answerer, data_dir: Path, report: list[dict], train: list[dict], k: int = FOLDS,
              progress: Callable | None = None, baselines: bool = True, repeats: int = REPEATS) -> dict:
    """Cross-validated figures for the `report` questions (fitted on them and `train`, out of fold), with
    the keyword and dense baselines and per-kind figures: the mean over `repeats` splits into folds (a
    question counts as missed when it is missed in at least half of them)."""
    from pbrbot.evaluate import run_system

    wanted = {i["question"] for i in report}
    items = report + [i for i in train if i["question"] not in wanted]
    runs = []
    for repeat in range(repeats):
        step = (lambda done, _total, r=repeat: progress(r * k + done, repeats * k)) if progress else None
        result = cross_validate(answerer, data_dir, items, k, step, repeat)
        answers = result["answers"][:len(report)]
        runs.append((scores_of("pbrbot", report, answers), per_kind(report, answers),
                     answered(report, answers), result["fusion"]))
    systems = [mean_scores([r[0] for r in runs])]
    if baselines:
        for system in ("keyword", "dense"):
            results = [run_system(answerer, system, i["question"]) for i in report]
            systems.append(score(system, report, results))
    kinds = {kind: mean_scores([r[1][kind] for r in runs]) for kind in runs[0][1]}
    return {"questions": len(report), "trained_on": len(items), "folds": k, "repeats": repeats,
            "systems": {s.system: s.as_dict() for s in systems},
            "answered": round(sum(r[2] for r in runs) / repeats, 3),
            "kinds": {kind: s.as_dict() for kind, s in kinds.items()},
            "fusion_mrr": {name: round(sum(r[3][name] for r in runs) / repeats, 3) for name in runs[0][3]}}


def mean_scores(runs: list[Scores]) -> Scores:
    """The mean of each figure over several cross-validations of the same questions; `misses`: the
    questions missed in at least half of them."""
    first = runs[0]
    out = Scores(first.system, first.answerable, first.out_of_scope)
    for name in ("hit_at_1", "hit_at_3", "evidence_at_3", "evidence_if_hit", "refusal", "median_ms",
                 "p95_ms"):
        values = [getattr(r, name) for r in runs if getattr(r, name) is not None]
        setattr(out, name, round(sum(values) / len(values), 3) if values else None)
    counts = Counter(m for r in runs for m in r.misses)
    out.misses = [m for m in dict.fromkeys(m for r in runs for m in r.misses) if counts[m] * 2 >= len(runs)]
    return out


def report_table(data: dict) -> str:
    from pbrbot.evaluate import table

    systems = [Scores(**v) for v in data["systems"].values()]
    lines = [(f"cross-validated ({data['folds']} folds grouped by gold post, {data['trained_on']} questions; "
              f"mean of {data.get('repeats', 1)} splits)"),
             table(systems), f"answerable questions answered: {data['answered']:.2f}",
             (f"evidence@3 where a gold post is quoted (hit@3): "
              f"{data['systems']['pbrbot'].get('evidence_if_hit') or 0.0:.2f}"),
             (f"gold post MRR out of fold: fused {data['fusion_mrr']['fused']:.3f}, dense "
              f"{data['fusion_mrr']['dense']:.3f}, keyword {data['fusion_mrr']['keyword']:.3f}"), "per kind:"]
    for kind, s in data["kinds"].items():
        if kind == OUT_OF_SCOPE:
            lines.append(f"  {kind:<13} n={s['out_of_scope']:<3} refusal {s['refusal']:.2f}")
        else:
            ev = "-" if s["evidence_at_3"] is None else f"{s['evidence_at_3']:.2f}"
            lines.append(f"  {kind:<13} n={s['answerable']:<3} hit@1 {s['hit_at_1']:.2f} hit@3 "
                         f"{s['hit_at_3']:.2f} evid@3 {ev}")
    return "\n".join(lines)
