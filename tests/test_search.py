"""Hybrid search over the sample archive with the real model: acceptance searches and the labelled set."""

from __future__ import annotations

import json
import re
import threading

import pytest
from click.testing import CliRunner

from pbrbot.cli import main



def cli(data_dir, *args):
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), *args])
    return result


@pytest.mark.slow
def test_acceptance_searches(sample_services):
    data_dir = sample_services.settings.data_dir
    result = cli(data_dir, "search", "justice reinvestment pilot sites", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["query"] == "justice reinvestment pilot sites"
    assert out["hits"][0]["url"] == JR
    assert set(out["hits"][0]) == {"passage_id", "url", "title", "date", "text", "score", "dense_rank",
                                   "keyword_rank"}

    out = json.loads(cli(data_dir, "search", "SIB", "--json").stdout)
    assert any("Social Impact Bonds" in h["text"] for h in out["hits"])

    result = cli(data_dir, "search", '"AND OR NEAR( * -:', "--json")
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)

    result = cli(data_dir, "search", "payment by results", "-k", "3")
    assert result.exit_code == 0 and result.output.count("https://") == 3


def _uses(texts: list[str], forms: list[str]) -> bool:
    return any(re.search(rf"\b{re.escape(f.lower())}\b", t.lower()) for f in forms for t in texts)


@pytest.mark.slow
@pytest.mark.parametrize("acronym", ["PbR", "SIB", "NOMS", "TR", "JDL", "MoJ"])
def test_acronyms_find_posts_that_use_them(sample_services, acronym):
    forms = sample_services.glossary.get(acronym).forms
    texts = [r[0] for r in sample_services.store.db.execute("select text from passages")]
    assert _uses(texts, forms), f"the sample archive should use {acronym}"
    hits = sample_services.searcher.search(acronym, k=5)
    assert any(_uses([h.text], forms) for h in hits[:3])


@pytest.mark.slow
def test_an_acronym_finds_the_post_that_only_spells_it_out(tmp_path, real_embedder):
    """The sample never says CRC in its articles: an archive whose one CRC post spells it out."""
    from pbrbot.ingest import ingest

    from conftest import make_services

    posts = tmp_path / "posts.jsonl"
    rows = [
        ("crc", "Private probation companies and their targets",
         "There have been statistically significant reductions in the reoffending rate for 11 of the 21 "
         "Community Rehabilitation Companies in the latest cohort. The companies run probation services "
         "for low and medium risk offenders under payment by results contracts."),
        ("drugs", "Drug treatment outcomes", "Treatment services for opiate users report more people "
         "leaving treatment free of dependence this year, though waiting times have grown in many areas."),
        ("prisons", "Prison overcrowding", "The prison population reached a new record this month and "
         "governors warn that purposeful activity has been cut back across the estate."),
    ]
    posts.write_text("\n".join(json.dumps({"url": f"https://blog.example/{u}/", "title": t, "text": x})
                               for u, t, x in rows))
    svc = make_services(tmp_path / "data", embedder=real_embedder)
    ingest(svc.store, svc.settings, [str(posts)])
    svc.run_index(progress=False)
    hits = svc.searcher.search("CRC", k=3)
    assert hits and hits[0].url == "https://blog.example/crc/"
    svc.close()


def test_diversity_and_empty_queries(sample_services):
    searcher = sample_services.searcher
    hits = searcher.search("payment by results", k=10, per_post=2)
    per_post = {}
    for h in hits:
        per_post[h.post_id] = per_post.get(h.post_id, 0) + 1
    assert max(per_post.values()) <= 2
    assert len(hits) == min(10, 2 * sample_services.store.count_posts())
    assert len(searcher.search("payment by results", k=10, per_post=1)) == 5
    assert searcher.search("", k=5) == [] and searcher.search("   ", k=5) == []
    assert searcher.keyword_search("", 5) == []


def test_concurrent_searches(sample_services):
    searcher = sample_services.searcher
    expected = [h.passage_id for h in searcher.search("Work Programme pricing", k=5)]
    results, errors = [], []

    def run():
        try:
            results.append([h.passage_id for h in searcher.search("Work Programme pricing", k=5)])
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [expected] * 8


def test_the_keyword_half_runs_while_the_question_is_embedded(tmp_path, sample_services):
    """The two halves overlap: the dense half here only finishes once the keyword half has started on
    another thread (run one after the other, this search would time out)."""
    from pbrbot.search import Searcher

    svc = sample_services
    searcher = Searcher(svc.store, svc.embedder, svc.settings.data_dir, svc.searcher.index_name, svc.glossary)
    started, threads = threading.Event(), []
    keyword_ids, dense_ids = searcher._keyword_ids, searcher._dense_ids

    def keyword_half(*args):
        threads.append(threading.current_thread().name)
        started.set()
        return keyword_ids(*args)

    def dense_half(*args):
        assert started.wait(timeout=30), "the keyword half did not start while the dense half ran"
        return dense_ids(*args)

    searcher._keyword_ids, searcher._dense_ids = keyword_half, dense_half
    timings = {}
    hits = searcher.search("Work Programme pricing", k=5, timings=timings)
    assert [h.passage_id for h in hits] == [h.passage_id for h in sample_services.searcher.search(
        "Work Programme pricing", k=5)]
    assert threads[0].startswith("pbrbot-keywords") and timings["keyword_hits"] > 0
    assert timings["keyword_ms"] > 0 and timings["dense_ms"] > 0

    def failing_half(*args):
        raise RuntimeError("keyword index unreadable")

    searcher._keyword_ids, searcher._dense_ids = failing_half, dense_ids
    with pytest.raises(RuntimeError, match="keyword index unreadable"):
        searcher.search("Work Programme pricing", k=5)

    def failing_dense(*args):
        raise ValueError("vector index unreadable")

    searcher._dense_ids = failing_dense  # both fail: the dense half's error, which tells of the other one
    with pytest.raises(ValueError, match="vector index unreadable") as failed:
        searcher.search("Work Programme pricing", k=5)
    assert failed.value.__notes__ == ["the keyword half failed too: RuntimeError('keyword index unreadable')"]
    searcher._dense_ids = dense_ids
    searcher.close()  # the worker threads stop; a later search starts them again
    assert searcher._keyword_pool is None
    searcher._keyword_ids = keyword_ids
    assert searcher.search("Work Programme pricing", k=5)
    searcher.close()


# Questions written for the labelled set (beside the sample's seed questions): (question, gold URL).
B = "https://www.russellwebster.com/"
C1 = B + "1st-commandment-of-payment-by-results-thou-shalt-commission-for-a-single-purpose/"
JR = B + "the-latest-on-justice-reinvestment/"
OD = B + "opening-up-the-debate-on-payment-by-results/"
RS = B + "is-payment-by-results-rocket-science/"
LP = B + "category/pbr-2/page/8/"
MINE = [
    ("Which report argued a PbR scheme should have only one objective at first?", C1),
    ("What did the Audit Commission recommend about payment by results objectives?", C1),
    ("Why did charities go out of business under the Work Programme?", C1),
    ("From when will the Work Programme be entirely paid on results?", C1),
    ("What did Jane Mansour argue about the long term unemployed?", C1),
    ("Which London boroughs were in the justice reinvestment pilot?", JR),
    ("When did the MoJ publish the second year justice reinvestment results?", JR),
    ("How were savings shared between the MoJ and local partners?", JR),
    ("What is the maximum reduction in demand that earned a success payment?", JR),
    ("Who is doing the final evaluation report on reinvestment?", JR),
    ("How many people have commented on the blog?", OD),
    ("Which companies' media coverage polarised the PbR debate?", OD),
    ("How long are the video interviews with key figures in PbR?", OD),
    ("Which countries have media coverage of payment by results?", OD),
    ("Who chaired the Policy Exchange event?", RS),
    ("What share of the probation service is proposed to be outsourced?", RS),
    ("How many probation trusts will the Cabinet Office support to become mutuals?", RS),
    ("How many responses did the probation consultation receive?", RS),
    ("Which prisons run services for short term prisoners?", RS),
    ("What did the Institute for Government find about commissioning reducing reoffending services?", LP),
    ("Are Work Programme providers hitting their targets?", LP),
    ("When did the MoJ publish the initial payment mechanism for Transforming Rehabilitation?", LP),
    ("Will social impact bonds become a mainstream way of funding public services?", LP),
    ("Who is Ian Mulheirn?", LP),
]


def labelled_set() -> list[tuple[str, list[str]]]:
    from pbrbot.sources.sample import sample_dir

    seeds = [json.loads(line) for line in (sample_dir() / "seed-questions.jsonl").read_text().splitlines()
             if line.strip()]
    return [(q["question"], q["gold_urls"]) for q in seeds if q["gold_urls"]] + [(q, [u]) for q, u in MINE]


@pytest.mark.slow
def test_hybrid_is_at_least_as_good_as_each_half(sample_services):
    """hit@3 by URL on the labelled set: hybrid (weighted RRF, weights fitted by `pbrbot fit` on other
    questions) within one question of the better half."""
    searcher = sample_services.searcher
    questions = labelled_set()
    assert len(questions) >= 40

    def hit_at(hits, gold, n):
        return any(h.url in gold for h in hits[:n])

    scores = {"dense": [0, 0], "keyword": [0, 0], "hybrid": [0, 0]}
    for question, gold in questions:
        for name, hits in (("dense", searcher.dense_search(question, 3)),
                           ("keyword", searcher.keyword_search(question, 3)),
                           ("hybrid", searcher.search(question, k=3))):
            scores[name][0] += hit_at(hits, gold, 1)
            scores[name][1] += hit_at(hits, gold, 3)
    print("hit@1, hit@3 of", len(questions), scores)
    # Fitted on the dev archive's questions, not these: on this 5-post sample it trails the keyword half by one
    # question at hit@3 (43 vs 44 of 46; hit@1 39 vs 43) with the onnx weights; see issue 12's note.
    assert scores["hybrid"][1] >= max(scores["dense"][1], scores["keyword"][1]) - 1
    assert scores["hybrid"][1] >= 0.9 * len(questions)


@pytest.mark.slow
def test_search_on_an_empty_data_dir_builds_the_sample_index_first(tmp_path, real_embedder):
    data_dir = tmp_path / "fresh"
    result = cli(data_dir, "search", "justice reinvestment pilot sites", "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == (f"The archive in {data_dir} is empty: loading the sample archive (5 posts) "
                                     "and indexing it…")
    assert json.loads(result.stdout)["hits"][0]["url"] == MINE[5][1]
    again = cli(data_dir, "index", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["embedded"] == 0
