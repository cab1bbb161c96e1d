"""Scores the conversation engine on tests/data/time-questions.jsonl and tests/data/followup-questions.jsonl
(written for issue 15 over the sample and the dev archive; the sample's estimated dates applied).

Run as a script over an indexed data dir: `python tests/conversation_eval.py DATA_DIR`.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

DATA = Path(__file__).parent / "data"
DEFAULT_TODAY = date(2026, 11, 30)


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def score_time(services) -> dict:
    """Share of bounded-period questions answered (found) only from posts of the period; share of "latest"
    questions whose first quote is from the newest gold post; hit@3 of gold posts over all."""
    from pbrbot import timeframe
    from pbrbot.conversation import Conversation

    in_period = bounded = latest_ok = latest = hits = 0
    misses = []
    for item in load("time-questions.jsonl"):
        today = date.fromisoformat(item["today"]) if item.get("today") else DEFAULT_TODAY
        conv = Conversation(services.answers, services.store, services.glossary, services.searcher,
                            today=lambda t=today: t)
        answer = conv.ask(item["question"])
        urls = [q.url for q in answer.quotes]
        hits += any(u in item["gold_urls"] for u in urls[:3])
        if item.get("latest"):
            latest += 1
            ok = bool(urls) and urls[0] == item["newest_url"]
            latest_ok += ok
        else:
            bounded += 1
            p = item["period"]
            period = timeframe.Period(date.fromisoformat(p["start"]) if p["start"] else None,
                                      date.fromisoformat(p["end"]) if p["end"] else None)
            ok = answer.found and all(period.holds(q.date) for q in answer.quotes)
            in_period += ok
        if not ok:
            misses.append((item["id"], item["question"], answer.period, [(q.date, q.url) for q in answer.quotes]))
    return {"in_period": in_period / bounded, "bounded": bounded, "latest_first": latest_ok / latest,
            "latest": latest, "gold_hit3": hits / (bounded + latest), "misses": misses}


def score_followups(services) -> dict:
    """hit@3 (a gold post among the first three quotes) of each follow-up answered with its context, and of
    the follow-up answered alone (the baseline)."""
    from pbrbot.conversation import Conversation
    from pbrbot.turns import Turn

    conv = Conversation(services.answers, services.store, services.glossary, services.searcher,
                        today=lambda: DEFAULT_TODAY)
    with_context = alone = 0
    misses = []
    items = load("followup-questions.jsonl")
    for item in items:
        turns = []
        for earlier in item["context"]:
            turns.append(Turn.from_answer(conv.ask(earlier["question"], turns)))
        answer = conv.ask(item["question"], turns)
        base = conv.ask(item["question"])
        hit = any(q.url in item["gold_urls"] for q in answer.quotes[:3])
        with_context += hit
        alone += any(q.url in item["gold_urls"] for q in base.quotes[:3])
        if not hit:
            misses.append((item["id"], item["question"], answer.taken_as, [q.url for q in answer.quotes]))
    return {"with_context": with_context / len(items), "alone": alone / len(items), "n": len(items),
            "misses": misses}


def eval_archive(services) -> None:
    """The dev archive, then the sample over it (its full texts and estimated dates), indexed."""
    from pbrbot.ingest import ingest, ingest_sample

    ingest(services.store, services.settings, [str(DATA / "dev" / "archive.jsonl")])
    ingest_sample(services.store, services.settings)
    services.run_index(progress=False)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import make_services

    svc = make_services(Path(sys.argv[1]))
    print(json.dumps({"time": score_time(svc), "followups": score_followups(svc)}, indent=1, default=str))
