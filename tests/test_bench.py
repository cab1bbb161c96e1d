"""CI smoke test of `pbrbot bench`: it runs at the smallest size and reports every figure. Nothing timed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pbrbot.cli import main

pytestmark = pytest.mark.slow


def test_bench_smoke_reports_every_figure(tmp_path, onnx_cache):
    from pbrbot.bench import format_report

    work = tmp_path / "work"
    work.mkdir()
    (work / "onnx").symlink_to(onnx_cache, target_is_directory=True)
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
    finally:
        store.close()
    rss = size["rss"]["onnx-int8"]
    assert rss["rss_mb"] > 0 and rss["torch_imported"] is False
    base = size["baselines"]
    assert base["python_loop_extrapolated"] and base["python_loop_rows"] == 300
    assert base["faiss_ms"] > 0 and base["semantic_search_ms"] > 0 and base["python_loop_ms"] > 0
    assert "| onnx-int8 |" in format_report(report)


def test_bench_rejects_bad_options(tmp_path):
    runner = CliRunner()
    bad_size = runner.invoke(main, ["--data-dir", str(tmp_path), "bench", "--sizes", "ten"])
    assert bad_size.exit_code == 2 and "comma-separated" in bad_size.output
    bad_backend = runner.invoke(main, ["--data-dir", str(tmp_path), "bench", "--backends", "tensorflow"])
    assert bad_backend.exit_code == 1 and "error: unknown backend tensorflow" in bad_backend.output
