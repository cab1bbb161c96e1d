"""`pbrbot bench`: how fast indexing and answering are at 10^3..10^6 passages, beside naive baselines.

One run measures, on this machine:
- embedding: raw `encode` throughput and query-embedding time of each backend on the same passages, and
  each backend's agreement (cosine) with the torch vectors;
- the indexer: `run_index` (the code behind `pbrbot index`) on an archive of `real` passages: its passage
  phase against raw `encode` of the same texts with the same embedder (the ratio is the indexer's overhead),
  and its sentence phase (the answerer's sentence vectors) apart, in sentence texts per second;
- per size: a synthetic archive (posts recombined from the sample's sentences, words varied, stored,
  chunked and keyword-indexed like real ones) whose first `real` passages carry real embeddings and the
  rest perturbations of them, saved as the real vector index, and every post's sentence vectors stored
  the same way (real for the first posts, perturbed above) as `pbrbot index` leaves them; then `ask` latency p50/p95 split into
  embed / vector search / keyword search / fusion / quote extraction, peak RSS of a fresh process that
  loads model + index and answers, index size on disk, and the dense search beside two naive baselines:
  sentence-transformers `util.semantic_search` (brute force) and a pure-Python cosine loop over vectors
  stored in SQLite (run up to `py_loop_max` rows, extrapolated linearly above and marked so).
Archives are kept in the work directory and reused by later runs with the same parameters.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pbrbot.bench_measure import measure_ask, measure_baselines, measure_embedding, measure_rss, raw_encode
from pbrbot.bench_archive import (Generator, SentenceBase, archive_key, bench_services, build_archive,
                                  sample_sentences)
from pbrbot.chunking import chunk_post



EMBED_ROUNDS = 3


@dataclass
class BenchOptions:
    sizes: list[int] = field(default_factory=lambda: [1000, 10_000, 100_000, 1_000_000])
    backends: list[str] = field(default_factory=lambda: ["torch", "onnx-int8"])
    real: int = 1000  # passages embedded with the real model
    questions: int = 24
    py_loop_max: int = 20_000  # rows the Python cosine loop really scans; extrapolated above
    rss: bool = True
    workdir: Path | None = None
    seed: int = 7


# -- the run --------------------------------------------------------------------------------------
def machine() -> dict:
    import faiss
    import onnxruntime
    import psutil

    cpu = platform.processor() or ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {"python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                "faiss": faiss.__version__}
    try:
        from importlib.metadata import version

        versions |= {"torch": version("torch"), "sentence-transformers": version("sentence-transformers")}
    except Exception:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "os": platform.platform(), "load_avg_1m": round(os.getloadavg()[0], 2), **versions}


def run_bench(settings, options: BenchOptions, echo: Callable[[str], None] = print,
              partial: Callable[[dict], None] | None = None) -> dict:
    """The whole benchmark; `partial` gets the report so far after each stage (a long run loses nothing)."""
    from pbrbot.config import load_settings

    settings = load_settings(**{**settings.model_dump(), "embed_backend": options.backends[0]})  # it indexes
    from pbrbot.embedding import load_embedder
    from pbrbot.indexer import embedding_text, run_index
    from pbrbot.ingest import ingest_sample
    from pbrbot.models import Post
    from pbrbot.vectors import VectorIndex

    work = Path(options.workdir or Path(settings.data_dir) / "bench")
    work.mkdir(parents=True, exist_ok=True)
    batch = settings.embed_batch_size
    questions = _questions(options.questions)
    report: dict = {"machine": machine(), "options": {"sizes": options.sizes, "backends": options.backends,
                                                       "real": options.real, "questions": len(questions)}}

    # 1. base posts: the sample's sentences recombined; `real` passages of them embedded for real.
    sample = bench_services(settings, work / "sample")
    if sample.store.count_posts() == 0:
        ingest_sample(sample)
    gen = Generator(sample_sentences(sample.store), options.seed)
    sample.close()
    families, passages = [], 0
    while passages < options.real:
        title, text = gen.family(len(families))
        families.append((title, text))
        passages += len(chunk_post(0, text))
    gen.families = len(families)

    embedders = {}
    for backend in options.backends:
        echo(f"loading the {backend} embedder")
        embedders[backend] = load_embedder(load_settings(**{**settings.model_dump(), "embed_backend": backend,
                                                            "data_dir": work}))
    primary = options.backends[0]
    real_dir = work / f"real-{options.seed}-{gen.families}"
    if real_dir.exists():
        import shutil

        shutil.rmtree(real_dir)
    real = bench_services(settings, real_dir, embedders[primary])
    for f, (title, text) in enumerate(families):
        post = gen.post(f)
        real.store.upsert_post(Post(url=post["url"], title=title, text=text, date=post["date"], source="bench"))
    texts = [embedding_text(title, p.text) for title, text in families for p in chunk_post(0, text)]
    # Rounds interleave the backends, so a slower spell of the machine hits each alike; medians are reported
    # and the speed-up is the median of each round's ratio.
    runs: dict[str, list[dict]] = {backend: [] for backend in embedders}
    for round_ in range(1, EMBED_ROUNDS + 1):
        for backend, embedder in embedders.items():
            echo(f"embedding throughput of {len(texts)} passages: {backend} (round {round_} of {EMBED_ROUNDS})")
            runs[backend].append(measure_embedding(embedder, texts, questions, batch))
    vectors = {backend: results[0]["vectors"] for backend, results in runs.items()}
    reference = "torch" if "torch" in vectors else primary
    speeds = {}
    for backend, results in runs.items():
        rates = [r["passages_per_s"] for r in results]
        cos = (vectors[backend] * vectors[reference]).sum(axis=1)
        speeds[backend] = {
            "passages_per_s": statistics.median(rates), "rounds_per_s": rates,
            "query_ms": statistics.median(r["query_ms"] for r in results),
            "cos_mean": round(float(cos.mean()), 4), "cos_min": round(float(cos.min()), 4),
            "speedup": round(statistics.median(r / ref["passages_per_s"] for r, ref in zip(rates, runs[reference])),
                             2)}
    report["embedding"] = {"texts": len(texts), "reference": reference, "backends": speeds}
    if partial:
        partial(report)

    echo(f"indexing the same {passages} passages with {primary} (pbrbot index's code), raw encode before and after")
    def raw_rate_now() -> float:
        t = time.perf_counter()
        raw_encode(embedders[primary], texts, batch)
        return len(texts) / (time.perf_counter() - t)

    before = raw_rate_now()  # raw encode of the same texts right before and right after the run
    stats = run_index(real, progress=False)
    raw_rate = (before + raw_rate_now()) / 2
    passage_s = stats.seconds - stats.sentence_seconds  # the passage phase; the sentence phase is apart
    report["indexer"] = {"backend": primary, "passages": stats.embedded,
                         "indexer_per_s": round(stats.embedded / passage_s, 1), "raw_per_s": round(raw_rate, 1),
                         "ratio": round(stats.embedded / passage_s / raw_rate, 3),
                         "sentences": stats.sentences, "sentence_s": round(stats.sentence_seconds, 1),
                         "sentences_per_s": round(stats.sentences / stats.sentence_seconds, 1)
                         if stats.sentence_seconds else 0.0}
    report["sizes"] = []
    if partial:
        partial(report)
    rows = real.store.db.execute("select p.id, p.position, posts.url from passages p "
                                 "join posts on posts.id = p.post_id order by p.id").fetchall()
    ids, stored = VectorIndex.load(real_dir, real.embedder_name)._stored()
    by_id = dict(zip(ids.tolist(), stored))
    base = {(_family_of(url), pos): by_id[pid] for pid, pos, url in rows}
    sentences = SentenceBase.from_store(real.store, real.embedder.name, _family_of)
    real.close()

    # 2. each size: archive, ask latency per backend, baselines, RSS, size on disk.
    for size in options.sizes:
        data_dir = work / f"archive-{size}"
        entry = _ensure_archive(data_dir, gen, size, base, sentences, settings, echo)
        disk = _disk_mb(data_dir)
        entry |= disk | {"ask": {}, "rss": {}}
        for backend, embedder in embedders.items():
            echo(f"size {size:,}: ask latency with {backend}")
            # The settings of the backend that made the index (its vectors' name), this backend's embedder.
            services = bench_services(settings, data_dir, embedder)
            entry["ask"][backend] = measure_ask(services, questions)
            if backend == primary:
                vectors_index = services.searcher.vectors()
                echo(f"size {size:,}: baselines")
                _, all_vectors = vectors_index._stored()
                queries = np.stack([embedder.encode_query(q) for q in questions])
                entry["baselines"] = measure_baselines(data_dir, all_vectors, queries, options.py_loop_max,
                                                       vectors_index)
                del all_vectors
            services.close()
            if options.rss:
                echo(f"size {size:,}: peak RSS of a fresh {backend} process")
                entry["rss"][backend] = measure_rss(data_dir, backend, questions)
        report["sizes"].append(entry)
        if partial:
            partial(report)
    report["machine"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)  # other work on the machine skews times
    return report


def _family_of(url: str) -> int:
    """The family (= post number) of a bench post's URL https://bench.invalid/<k>/."""
    return int(url.rstrip("/").rsplit("/", 1)[1])


def _ensure_archive(data_dir: Path, gen: Generator, size: int, base, sentences, settings, echo) -> dict:
    from pbrbot.store import open_store

    if (data_dir / "pbrbot.db").exists():
        try:
            store = open_store(data_dir)
            key, info = store.get_meta("bench.key"), store.get_meta("bench.info")
            store.close()
        except Exception:  # an archive of an older schema: rebuild it
            key = info = None
        if key == archive_key(gen, size, settings) and info:
            echo(f"size {size:,}: reusing {data_dir}")
            _refresh_terms(data_dir)  # an archive built before the keyword term counts existed
            _upgrade_vectors(data_dir, echo)
            return json.loads(info)
        import shutil

        shutil.rmtree(data_dir)
    echo(f"size {size:,}: building a synthetic archive in {data_dir}")
    info = build_archive(data_dir, gen, size, base, sentences, settings, echo)
    _refresh_terms(data_dir)
    store = open_store(data_dir)
    store.set_meta("bench.info", json.dumps(info))
    store.close()
    return info


def _refresh_terms(data_dir: Path) -> None:
    """Count the keyword terms as an index run would (a no-op when they are up to date)."""
    from pbrbot.keywords import KeywordIndex
    from pbrbot.store import open_store

    store = open_store(data_dir)
    try:
        KeywordIndex(store).refresh()
    finally:
        store.close()


def _upgrade_vectors(data_dir: Path, echo) -> None:
    """Re-save a vector index of an older format in the current one (what a bot would then load)."""
    from pbrbot.vectors import FORMAT_VERSION, Manifest, VectorIndex

    manifest = Manifest.read(data_dir)
    if manifest is not None and manifest.format_version != FORMAT_VERSION:
        echo(f"  re-saving the vector index in format {FORMAT_VERSION} (was {manifest.format_version})")
        VectorIndex.load(data_dir).save(data_dir)


def _disk_mb(data_dir: Path) -> dict:
    faiss_bytes = sum(p.stat().st_size for p in data_dir.glob("passages-*.faiss"))
    db_bytes = sum(p.stat().st_size for p in data_dir.glob("pbrbot.db*"))
    return {"faiss_mb": round(faiss_bytes / 2**20, 1), "db_mb": round(db_bytes / 2**20, 1)}


def _questions(n: int) -> list[str]:
    from pbrbot.ingest import sample_dir

    lines = (Path(sample_dir()) / "seed-questions.jsonl").read_text(encoding="utf-8").splitlines()
    pool = [json.loads(line)["question"] for line in lines if line.strip()]
    return [pool[i % len(pool)] for i in range(max(1, n))]


# -- the report ---------------------------------------------------------------------------------
def format_report(report: dict) -> str:
    """The report as Markdown tables (BENCHMARKS.md is made of this)."""
    m = report["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM; Python {m['python']}, "
             f"torch {m.get('torch', '?')}, onnxruntime {m['onnxruntime']}, faiss {m['faiss']}; load average "
             f"{m['load_avg_1m']} at the start, {m.get('load_avg_1m_end', '?')} at the end", ""]
    ix = report["indexer"]
    lines += [f"Indexer ({ix['backend']}, {ix['passages']} passages): {ix['indexer_per_s']} passages/s through "
              f"run_index's passage phase vs {ix['raw_per_s']} raw encode = ratio {ix['ratio']}; then its sentence "
              f"phase: {ix.get('sentences', '?')} sentence texts in {ix.get('sentence_s', '?')} s = "
              f"{ix.get('sentences_per_s', '?')}/s", "",
              "| backend | passages/s | speed-up | query embed ms | cosine mean | cosine min |",
              "|---|---|---|---|---|---|"]
    for name, b in report["embedding"]["backends"].items():
        lines.append(f"| {name} | {b['passages_per_s']} | {b['speedup']}x | {b['query_ms']} | {b['cos_mean']} | "
                     f"{b['cos_min']} |")
    lines += ["", "| passages | index | faiss MB | db MB | backend | ask p50 ms | ask p95 ms | embed | vector | "
                  "keyword (share used) | fusion | quotes (of which embedding) | peak RSS MB |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in report["sizes"]:
        for backend, a in e["ask"].items():
            s = a["split_p50_ms"]
            rss = e["rss"].get(backend, {})
            rss_text = f"{rss['rss_mb']}" + (" (torch loaded)" if rss.get("torch_imported") else "") \
                if "rss_mb" in rss else rss.get("error", "-")
            lines.append(f"| {e['passages']:,} | {e['index_type']} | {e['faiss_mb']} | {e['db_mb']} | {backend} | "
                         f"{a['p50_ms']} | {a['p95_ms']} | {s['embed']} | {s['vector']} | {s['keyword']} "
                         f"({a.get('keyword_share', '?')}) | "
                         f"{s['fusion']} | {s['quotes']} ({s['quotes_embed']}) | {rss_text} |")
    lines += ["", "| passages | FAISS ms | semantic_search ms | Python loop over SQLite ms | ss / FAISS | "
                  "loop / FAISS |", "|---|---|---|---|---|---|"]
    for e in report["sizes"]:
        b = e["baselines"]
        star = f" (extrapolated from {b['python_loop_rows']:,} rows)" if b["python_loop_extrapolated"] else ""
        ss, ss_x = (b["semantic_search_ms"], f"{b['semantic_search_vs_faiss']}x") if b["semantic_search_ms"] \
            else ("n/a (no torch)", "n/a")
        lines.append(f"| {e['passages']:,} | {b['faiss_ms']} | {ss} | {b['python_loop_ms']}"
                     f"{star} | {ss_x} | {b['python_loop_vs_faiss']}x |")
    return "\n".join(lines)

