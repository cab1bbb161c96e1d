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
  the same way (real for the first posts, perturbed above) as `pbrbot index` leaves them; then `ask` latency
  p50/p95 split into embed / vector search / keyword search / fusion / quote extraction, peak RSS of a fresh
  process that loads model + index and answers, index size on disk, and the dense search beside two naive
  baselines: sentence-transformers `util.semantic_search` (brute force) and a pure-Python cosine loop over
  vectors stored in SQLite (run up to `py_loop_max` rows, extrapolated linearly above and marked so).
Archives are kept in the work directory and reused by later runs with the same parameters.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pbrbot import passages
from pbrbot.bench.archive import (
    Generator,
    SentenceBase,
    archive_key,
    bench_services,
    build_archive,
    sample_sentences,
)
from pbrbot.bench.measure import (
    long_question,
    measure_ask,
    measure_baselines,
    measure_concurrency,
    measure_embedding,
    measure_rss,
    raw_encode,
)
from pbrbot.chunking import chunk_post
from pbrbot.config import Settings, load_settings
from pbrbot.embedding import Embedder, embedder_name, load_embedder
from pbrbot.indexer import embedding_text
from pbrbot.store import ArchiveError
from pbrbot.vectors import VectorIndex

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
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {"python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                "faiss": faiss.__version__}
    from importlib.metadata import PackageNotFoundError, version

    with contextlib.suppress(PackageNotFoundError):  # the optional torch extra
        versions |= {"torch": version("torch"), "sentence-transformers": version("sentence-transformers")}
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "os": platform.platform(), "load_avg_1m": round(os.getloadavg()[0], 2), **versions}


def run_bench(settings: Settings, options: BenchOptions, echo: Callable[[str], None] = print,
              partial: Callable[[dict], None] | None = None) -> dict:
    """The whole benchmark, stage by stage; `partial` gets the report so far after each stage (a long run
    loses nothing)."""
    settings = load_settings(**{**settings.model_dump(), "embed_backend": options.backends[0]})  # it indexes
    work = Path(options.workdir or Path(settings.data_dir) / "bench")
    work.mkdir(parents=True, exist_ok=True)
    questions = _questions(options.questions)
    report: dict = {"machine": machine(), "options": {"sizes": options.sizes, "backends": options.backends,
                                                       "real": options.real, "questions": len(questions)}}

    def done() -> None:
        if partial:
            partial(report)

    gen, families = base_families(settings, options, work)
    embedders = load_embedders(settings, options, work, echo)
    texts = [embedding_text(title, p.text) for title, text in families for p in chunk_post(0, text)]
    report["embedding"] = stage_embedding(embedders, options.backends[0], texts, questions,
                                          settings.embed_batch_size, echo)
    done()
    report["indexer"], base, sentences = stage_indexer(settings, options, work, gen, families, texts,
                                                       embedders[options.backends[0]], echo)
    report["sizes"] = []
    done()
    for size in options.sizes:
        report["sizes"].append(stage_size(settings, options, work, size, gen, base, sentences, embedders,
                                          questions, echo))
        done()
    report["concurrency"] = stage_concurrency(settings, work / f"archive-{options.sizes[0]}",
                                              embedders[options.backends[0]], questions, echo)
    done()
    # other work on the machine skews times
    report["machine"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return report


def base_families(settings: Settings, options: BenchOptions,
                  work: Path) -> tuple[Generator, list[tuple[str, str]]]:
    """Stage 1: the base posts (the sample's sentences recombined), enough for `real` passages."""
    from pbrbot.ingest import ingest_sample

    sample = bench_services(settings, work / "sample")
    if sample.store.count_posts() == 0:
        ingest_sample(sample.store, sample.settings)
    gen = Generator(sample_sentences(sample.store), options.seed)
    sample.close()
    families: list[tuple[str, str]] = []
    passages = 0
    while passages < options.real:
        title, text = gen.family(len(families))
        families.append((title, text))
        passages += len(chunk_post(0, text))
    gen.families = len(families)
    return gen, families


def load_embedders(settings: Settings, options: BenchOptions, work: Path,
                   echo: Callable[[str], None]) -> dict[str, Embedder]:
    embedders = {}
    for backend in options.backends:
        echo(f"loading the {backend} embedder")
        embedders[backend] = load_embedder(load_settings(**{**settings.model_dump(), "embed_backend": backend,
                                                            "data_dir": work}))
    return embedders


def stage_embedding(embedders: dict[str, Embedder], primary: str, texts: list[str], questions: list[str],
                    batch: int, echo: Callable[[str], None]) -> dict:
    """Stage 2: raw encode throughput, query time and agreement (cosine with the reference) per backend.

    Rounds interleave the backends, so a slower spell of the machine hits each alike; medians are reported
    and the speed-up is the median of each round's ratio."""
    runs: dict[str, list[dict]] = {backend: [] for backend in embedders}
    for round_ in range(1, EMBED_ROUNDS + 1):
        for backend, embedder in embedders.items():
            echo(f"embedding throughput of {len(texts)} passages: {backend} "
                 f"(round {round_} of {EMBED_ROUNDS})")
            runs[backend].append(measure_embedding(embedder, texts, questions, batch))
    vectors = {backend: results[0]["vectors"] for backend, results in runs.items()}
    reference = "torch" if "torch" in vectors else primary
    speeds = {}
    for backend, results in runs.items():
        rates = [r["passages_per_s"] for r in results]
        cos = (vectors[backend] * vectors[reference]).sum(axis=1)
        ratios = [r / ref["passages_per_s"] for r, ref in zip(rates, runs[reference], strict=True)]
        speeds[backend] = {
            "passages_per_s": statistics.median(rates), "rounds_per_s": rates,
            "query_ms": statistics.median(r["query_ms"] for r in results),
            "cos_mean": round(float(cos.mean()), 4), "cos_min": round(float(cos.min()), 4),
            "speedup": round(statistics.median(ratios), 2)}
    return {"texts": len(texts), "reference": reference, "backends": speeds}


def stage_indexer(settings: Settings, options: BenchOptions, work: Path, gen: Generator,
                  families: list[tuple[str, str]], texts: list[str], embedder: Embedder,
                  echo: Callable[[str], None]) -> tuple[dict, dict, SentenceBase]:
    """Stage 3: `run_index` (pbrbot index's code) on the base posts, its passage phase against raw encode of
    the same texts (measured right before and right after the run) and its sentence phase apart. Returns the
    report entry, the real vectors by (family, position) and the real sentence vectors."""
    from pbrbot.models import Post

    real_dir = work / f"real-{options.seed}-{gen.families}"
    if real_dir.exists():
        shutil.rmtree(real_dir)
    real = bench_services(settings, real_dir, embedder)
    for f, (title, text) in enumerate(families):
        post = gen.post(f)
        real.store.upsert_post(Post(url=post["url"], title=title, text=text, date=post["date"],
                                    source="bench"))
    batch = settings.embed_batch_size
    echo(f"indexing the same {len(texts)} passages with {options.backends[0]} (pbrbot index's code), "
         "raw encode before and after")

    def raw_rate_now() -> float:
        t = time.perf_counter()
        raw_encode(embedder, texts, batch)
        return len(texts) / (time.perf_counter() - t)

    before = raw_rate_now()
    stats = real.run_index(progress=False)
    raw_rate = (before + raw_rate_now()) / 2
    passage_s = stats.seconds - stats.sentence_seconds  # the passage phase; the sentence phase is apart
    entry = {"backend": options.backends[0], "passages": stats.embedded,
             "indexer_per_s": round(stats.embedded / passage_s, 1), "raw_per_s": round(raw_rate, 1),
             "ratio": round(stats.embedded / passage_s / raw_rate, 3),
             "sentences": stats.sentences, "sentence_s": round(stats.sentence_seconds, 1),
             "sentences_per_s": round(stats.sentences / stats.sentence_seconds, 1)
             if stats.sentence_seconds else 0.0}
    positions = passages.positions(real.store)
    real_index = VectorIndex.load(real_dir, embedder_name(real.settings))
    assert real_index is not None, "run_index saved one"
    ids, stored = real_index._stored()
    by_id = dict(zip(ids.tolist(), stored, strict=True))
    base = {(_family_of(url), pos): by_id[pid] for pid, pos, url in positions}
    sentences = SentenceBase.from_store(real.store, real.embedder.name, _family_of)
    real.close()
    return entry, base, sentences


def stage_size(settings: Settings, options: BenchOptions, work: Path, size: int, gen: Generator, base: dict,
               sentences: SentenceBase, embedders: dict[str, Embedder], questions: list[str],
               echo: Callable[[str], None]) -> dict:
    """Stage 4, per size: the synthetic archive, ask latency per backend, the baselines, peak RSS of a fresh
    process and size on disk."""
    primary = options.backends[0]
    data_dir = work / f"archive-{size}"
    entry = _ensure_archive(data_dir, gen, size, base, sentences, settings, echo)
    entry |= _disk_mb(data_dir) | {"ask": {}, "rss": {}}
    for backend, embedder in embedders.items():
        echo(f"size {size:,}: ask latency with {backend}")
        # The settings of the backend that made the index (its vectors' name), this backend's embedder.
        services = bench_services(settings, data_dir, embedder)
        entry["ask"][backend] = measure_ask(services.store, embedder, services.settings, questions)
        if backend == primary:
            vectors_index = services.searcher.vectors()
            assert vectors_index is not None, "the bench archive has a vector index"
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
    return entry


def stage_concurrency(settings: Settings, data_dir: Path, embedder: Embedder, questions: list[str],
                      echo: Callable[[str], None], rounds: int = 5) -> dict:
    """Stage 5: one slow request does not hold up the others: a short question alone, and while a
    5,000-character one is answered in another thread (as the bot's engine pool runs them)."""
    echo(f"concurrency: short questions alone and during a 5,000-character one ({data_dir.name})")
    services = bench_services(settings, data_dir, embedder)
    try:
        words = " ".join(questions).replace("?", " ").split()
        return measure_concurrency(services.answerer, questions[:3], long_question(words), rounds) | \
            {"archive": data_dir.name}
    finally:
        services.close()


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
        except (ArchiveError, sqlite3.Error):  # an archive of an older schema: rebuild it
            key = info = None
        if key == archive_key(gen, size, settings) and info:
            echo(f"size {size:,}: reusing {data_dir}")
            _refresh_terms(data_dir)  # an archive built before the keyword term counts existed
            _upgrade_vectors(data_dir, echo)
            return json.loads(info)
        shutil.rmtree(data_dir)
    echo(f"size {size:,}: building a synthetic archive in {data_dir}")
    built = build_archive(data_dir, gen, size, base, sentences, settings, echo)
    _refresh_terms(data_dir)
    store = open_store(data_dir)
    store.set_meta("bench.info", json.dumps(built))
    store.close()
    return built


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
        index = VectorIndex.load(data_dir)
        assert index is not None, "there is a manifest"
        index.save(data_dir)


def _disk_mb(data_dir: Path) -> dict:
    faiss_bytes = sum(p.stat().st_size for p in data_dir.glob("passages-*.faiss"))
    db_bytes = sum(p.stat().st_size for p in data_dir.glob("pbrbot.db*"))
    return {"faiss_mb": round(faiss_bytes / 2**20, 1), "db_mb": round(db_bytes / 2**20, 1)}


def _questions(n: int) -> list[str]:
    from pbrbot.ingest import sample_dir

    lines = (Path(sample_dir()) / "seed-questions.jsonl").read_text(encoding="utf-8").splitlines()
    pool = [json.loads(line)["question"] for line in lines if line.strip()]
    return [pool[i % len(pool)] for i in range(max(1, n))]
