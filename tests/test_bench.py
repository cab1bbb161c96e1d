"""CI smoke test of `pbrbot bench`: it runs at the smallest size and reports every figure. Nothing timed."""

from __future__ import annotations

import importlib.util
import json

import pytest
from click.testing import CliRunner

from pbrbot.cli import main

pytestmark = pytest.mark.slow


def test_bench_smoke_reports_every_figure(tmp_path, onnx_cache):  # onnx_cache: the model built once
    from pbrbot.bench import format_report

    work = tmp_path / "work"
    work.mkdir()
    args = ["--data-dir", str(tmp_path / "data"), "bench", "--sizes", "1000", "--backends", "onnx-int8",
            "--real", "30", "--questions", "1", "--py-loop-max", "300", "--workdir", str(work), "--json"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["machine"]["cores"] >= 1
    assert report["indexer"]["passages"] >= 30 and report["indexer"]["ratio"] > 0
    assert report["indexer"]["sentences"] > 0 and report["indexer"]["sentences_per_s"] > 0
    emb = report["embedding"]["backends"]["onnx-int8"]
    assert emb["passages_per_s"] > 0 and emb["query_ms"] > 0 and emb["cos_mean"] == pytest.approx(1.0)
    (size,) = report["sizes"]
    assert size["passages"] >= 1000 and size["index_type"] == "flat" and size["faiss_mb"] > 0
    ask = size["ask"]["onnx-int8"]
    assert ask["p95_ms"] >= ask["p50_ms"] > 0
    assert set(ask["split_p50_ms"]) == {"embed", "vector", "keyword", "fusion", "quotes", "quotes_embed"}
    assert ask["texts_embedded"] == 0  # every sentence vector was stored, as after `pbrbot index`
    assert size["sentence_vectors"] > size["posts"]
    from pbrbot.store import open_store

    store = open_store(work / "archive-1000")
    try:
        assert store.db.execute("select count(*) from posts where sentences_hash is not content_hash").fetchone()[0] == 0
        assert store.db.execute("select count(*) from sentence_vectors").fetchone()[0] > 0
        # every post keeps its block and sentence layouts, as ingest stores them: answers read, never re-derive
        assert store.db.execute("select count(*) from posts where blocks is null or sentences is null").fetchone()[0] == 0
    finally:
        store.close()
    rss = size["rss"]["onnx-int8"]
    assert rss["rss_mb"] > 0 and rss["torch_imported"] is False
    base = size["baselines"]
    assert base["python_loop_extrapolated"] and base["python_loop_rows"] == 300
    assert base["faiss_ms"] > 0 and base["python_loop_ms"] > 0
    has_st = importlib.util.find_spec("sentence_transformers") is not None  # the optional torch extra
    assert (base["semantic_search_ms"] > 0) if has_st else (base["semantic_search_ms"] is None)
    conc = report["concurrency"]  # a short question alone and during a 5,000-character one (nothing timed here)
    assert conc["short_alone_ms"] > 0 and conc["short_during_long_ms"] > 0 and conc["long_chars"] > 4900
    assert "| onnx-int8 |" in format_report(report) and "Concurrency (archive-1000)" in format_report(report)


def test_bench_rejects_bad_options(tmp_path):
    runner = CliRunner()
    bad_size = runner.invoke(main, ["--data-dir", str(tmp_path), "bench", "--sizes", "ten"])
    assert bad_size.exit_code == 2 and "comma-separated" in bad_size.output
    bad_backend = runner.invoke(main, ["--data-dir", str(tmp_path), "bench", "--backends", "tensorflow"])
    assert bad_backend.exit_code == 1 and "error: unknown backend tensorflow" in bad_backend.output


def test_most_synthetic_posts_are_on_other_topics_with_rare_words(sample_services):
    """As in a real archive, a question's topic words are in a few posts whatever the size, so the keyword
    half of a search is exercised at 10^6 passages too."""
    import collections
    import re

    from pbrbot.bench.archive import ON_TOPIC_EVERY, Generator, sample_sentences

    sentences = sample_sentences(sample_services.store)
    gen, again = Generator(sentences, seed=7), Generator(sentences, seed=7)
    gen.families = again.families = 10
    posts = [gen.post(k) for k in range(10 * ON_TOPIC_EVERY * 2)]
    assert [again.post(k) for k in (0, 11, 399)] == [posts[0], posts[11], posts[399]]  # deterministic
    topic_words = set(gen.topic_vocab)
    words_of = [{w.lower() for w in re.findall(r"[A-Za-z]+", p["title"] + " " + p["text"])} for p in posts]
    on_topic = [k for k in range(len(posts)) if gen.topic_of(k) == 0]
    rounds = 10 * ON_TOPIC_EVERY
    assert on_topic == list(range(10)) + list(range(rounds, rounds + 10))  # the families, 1 round in 40
    assert all(words_of[k] & topic_words for k in on_topic)
    assert not any(words_of[k] & topic_words for k in range(len(posts)) if k not in on_topic)
    df = collections.Counter(w for words in words_of for w in words)
    assert df["binary"] <= len(on_topic) < len(posts) / 10
    made_up = [count for word, count in df.items() if word not in topic_words and word.endswith("x")]
    assert len(made_up) > 1000 and sum(c <= 2 for c in made_up) > len(made_up) / 3  # a long tail of rare words
