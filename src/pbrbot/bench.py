"""`pbrbot bench`: how fast indexing and answering are at 10^3..10^6 passages, beside naive baselines.

One run measures, on this machine:
- embedding: raw `encode` throughput and query-embedding time of each backend on the same passages, and
  each backend's agreement (cosine) with the torch vectors;
- the indexer: `run_index` (the code behind `pbrbot index`) on an archive of `real` passages against
  raw `encode` of the same texts with the same embedder (the ratio is the indexer's overhead);
- per size: a synthetic archive (posts recombined from the sample's sentences, words varied, stored,
  chunked and keyword-indexed like real ones) whose first `real` passages carry real embeddings and the
  rest perturbations of them, saved as the real vector index; then `ask` latency p50/p95 split into
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
import random
import re
import resource
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from pbrbot.chunking import chunk_post, split_sentences
from pbrbot.models import content_hash

GENERATOR_VERSION = 1
NOISE = 0.5  # synthetic vector = normalise(parent + NOISE * gaussian of norm ~1): cosine ~0.9 to parent
FAMILY_SUBST = 0.10  # share of words replaced in a base post, and again in each variant of it
VARIANT_SUBST = 0.08
TOP_K = 50  # candidates per half, as the searcher takes
_SUBST_WORD = re.compile(r"\b[a-z]{4,}\b")


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


# -- synthetic archive --------------------------------------------------------------------------
class Generator:
    """Deterministic posts: family f = k % families; each post varies its family's words a little."""

    def __init__(self, sentences: list[str], seed: int):
        if not sentences:
            raise ValueError("no sentences to recombine")
        self.sentences = sentences
        self.vocab = sorted({w for s in sentences for w in _SUBST_WORD.findall(s)})
        self.seed = seed
        self.families = 1

    def _vary(self, text: str, rng: random.Random, share: float) -> str:
        return _SUBST_WORD.sub(lambda m: rng.choice(self.vocab) if rng.random() < share else m.group(), text)

    def family(self, f: int) -> tuple[str, str]:
        rng = random.Random(f"{self.seed}:family:{f}")
        paragraphs = [" ".join(rng.choice(self.sentences) for _ in range(rng.randint(2, 5)))
                      for _ in range(rng.randint(4, 9))]
        title = " ".join(rng.choice(self.sentences).split()[:rng.randint(4, 9)]).rstrip(".,;:")
        return self._vary(title, rng, FAMILY_SUBST), self._vary("\n\n".join(paragraphs), rng, FAMILY_SUBST)

    def post(self, k: int) -> dict:
        f = k % self.families
        title, text = self.family(f)
        if k >= self.families:
            rng = random.Random(f"{self.seed}:post:{k}")
            title, text = self._vary(title, rng, VARIANT_SUBST), self._vary(text, rng, VARIANT_SUBST)
        day = date(2011, 1, 1) + timedelta(days=k % 5000)
        return {"id": k + 1, "url": f"https://bench.invalid/{k}/", "title": title, "text": text,
                "date": day.isoformat(), "family": f}


def sample_sentences(store) -> list[str]:
    out = []
    for post in store.iter_posts():
        text = post["text"]
        for s, e in split_sentences(text):
            sentence = " ".join(text[s:e].split())
            if len(sentence.split()) >= 6 and sentence[-1] in ".?!":
                out.append(sentence)
    return out


def build_archive(data_dir: Path, gen: Generator, size: int, base: dict[tuple[int, int], np.ndarray],
                  settings, echo: Callable[[str], None]) -> dict:
    """Store >= size passages of generated posts (chunked and FTS-indexed) and their vector index."""
    from pbrbot.store import utcnow
    from pbrbot.vectors import VectorIndex, choose_type

    started = time.perf_counter()
    services = _services(settings, data_dir)
    db = services.store.db
    vectors = np.empty((size + 256, next(iter(base.values())).shape[0]), dtype=np.float32)  # a post < 256
    rng = np.random.default_rng(gen.seed)
    last_position = {}
    for f, position in base:
        last_position[f] = max(position, last_position.get(f, 0))
    n = k = 0
    now = utcnow()
    last_echo = time.monotonic()
    while n < size:
        with services.store.transaction():
            n, k = _store_posts(db, gen, base, last_position, vectors, n, k, size, now)
        if time.monotonic() - last_echo > 10:
            echo(f"  {n:,} of {size:,} passages stored")
            last_echo = time.monotonic()
    vectors = vectors[:n]
    dim = vectors.shape[1]
    for i in range(len(base), n, 100_000):  # the first posts are the families themselves: real vectors
        part = vectors[i:i + 100_000]
        part += NOISE / np.sqrt(dim) * rng.standard_normal(part.shape, dtype=np.float32)
        part /= np.linalg.norm(part, axis=1, keepdims=True)
    db.execute("insert or replace into meta (key, value) values ('passages.next_id', ?)", [str(n + 1)])
    stored_s = time.perf_counter() - started
    kind = choose_type(settings.index_type, n, settings.hnsw_threshold)
    echo(f"  {n:,} passages stored in {stored_s:.0f} s; building the {kind} vector index")
    index = VectorIndex(services.embedder_name, vectors.shape[1], kind)
    for i in range(0, n, 50_000):
        index.add(range(i + 1, min(i + 50_000, n) + 1), vectors[i:i + 50_000])
    index.save(data_dir)
    services.store.set_meta("bench.key", _archive_key(gen, size, settings))
    services.close()
    return {"posts": k, "passages": n, "index_type": kind, "store_s": round(stored_s, 1),
            "build_s": round(time.perf_counter() - started, 1)}


def _store_posts(db, gen: Generator, base, last_position, vectors, n: int, k: int, size: int,
                 now: str, batch: int = 2000) -> tuple[int, int]:
    """Insert up to `batch` generated posts and their passages; fill their parents' vectors in order."""
    for _ in range(batch):
        post = gen.post(k)
        k += 1
        chash = content_hash(post["title"], post["text"], post["date"], None, "")
        db.conn.execute(
            "insert into posts (id, url, title, date, tags, text, source, content_hash, words, first_seen, "
            "updated_at, indexed_hash) values (?, ?, ?, ?, '[]', ?, 'bench', ?, ?, ?, ?, ?)",
            [post["id"], post["url"], post["title"], post["date"], post["text"], chash,
             len(post["text"].split()), now, now, chash])
        rows = []
        family = post["family"]
        for p in chunk_post(post["id"], post["text"]):
            vectors[n] = base[(family, min(p.position, last_position[family]))]
            n += 1
            rows.append((n, p.post_id, p.position, p.start, p.end, p.text, p.hash))
        db.conn.executemany('insert into passages (id, post_id, position, start, "end", text, hash) '
                            "values (?, ?, ?, ?, ?, ?, ?)", rows)
        if n >= size:
            break
    return n, k


def _archive_key(gen: Generator, size: int, settings) -> str:
    return json.dumps([GENERATOR_VERSION, gen.seed, gen.families, size, settings.index_type,
                       settings.hnsw_threshold])


# -- measuring ------------------------------------------------------------------------------------
class TimedEmbedder:
    """Delegates to an embedder, adding up the time of each call under the current phase."""

    def __init__(self, inner):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.phase = "quotes"
        self.ms: dict[str, float] = {}

    def _timed(self, fn, *args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.ms[self.phase] = self.ms.get(self.phase, 0.0) + (time.perf_counter() - t) * 1000

    def encode(self, texts, batch_size=None):
        return self._timed(self.inner.encode, texts, batch_size=batch_size)

    def encode_query(self, text):
        return self._timed(self.inner.encode_query, text)


class TimedSearcher:
    """Delegates to the real Searcher; adds up its own timings of each search an answer makes."""

    def __init__(self, inner, embedder: TimedEmbedder):
        self.inner, self.embedder = inner, embedder
        self.ms: dict[str, float] = {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def search(self, query, k=10, per_post=2, timings=None):
        timings = {} if timings is None else timings
        self.embedder.phase = "search"
        t = time.perf_counter()
        try:
            return self.inner.search(query, k=k, per_post=per_post, timings=timings)
        finally:
            total = (time.perf_counter() - t) * 1000
            self.embedder.phase = "quotes"
            for key in ("dense_ms", "keyword_ms", "fusion_ms"):
                self.ms[key] = self.ms.get(key, 0.0) + timings.get(key, 0.0)
            self.ms["total"] = self.ms.get("total", 0.0) + total


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure_ask(services, questions: list[str]) -> dict:
    """ask() end to end for each question (after one warm-up), with the time split by stage."""
    embedder = TimedEmbedder(services.embedder)
    services.__dict__["embedder"] = embedder
    searcher = TimedSearcher(services.searcher, embedder)
    services.__dict__["searcher"] = searcher
    services.answerer.ask(questions[-1])  # warm-up: loads the index, glossary, caches of the process
    totals, splits = [], []
    for q in questions:
        _cold_sentence_cache()
        embedder.ms.clear()
        searcher.ms.clear()
        t = time.perf_counter()
        services.answerer.ask(q)
        total = (time.perf_counter() - t) * 1000
        embed = embedder.ms.get("search", 0.0)
        totals.append(total)
        splits.append({"embed": embed, "vector": max(0.0, searcher.ms.get("dense_ms", 0.0) - embed),
                       "keyword": searcher.ms.get("keyword_ms", 0.0), "fusion": searcher.ms.get("fusion_ms", 0.0),
                       "quotes": total - searcher.ms.get("total", 0.0),
                       "quotes_embed": embedder.ms.get("quotes", 0.0)})
    return {"p50_ms": round(_pct(totals, 0.5), 1), "p95_ms": round(_pct(totals, 0.95), 1),
            "split_p50_ms": {k: round(statistics.median(s[k] for s in splits), 2) for k in splits[0]}}


def _cold_sentence_cache() -> None:
    """Forget the answerer's process-wide sentence vectors: each question is timed as a new one (the cache
    is keyed by model name, which two backends share, so one backend would otherwise reuse the other's)."""
    from pbrbot import answer

    cache = getattr(answer, "_VECTORS", None)
    if cache is not None:
        cache.clear()


def measure_embedding(embedder, texts: list[str], questions: list[str], batch_size: int) -> dict:
    raw_encode(embedder, texts[:8], batch_size)  # warm-up
    t = time.perf_counter()
    vectors = raw_encode(embedder, texts, batch_size)
    seconds = time.perf_counter() - t
    query_ms = []
    for q in questions:
        t = time.perf_counter()
        embedder.encode_query(q)
        query_ms.append((time.perf_counter() - t) * 1000)
    return {"passages_per_s": round(len(texts) / seconds, 1), "query_ms": round(statistics.median(query_ms), 2),
            "vectors": vectors}


def raw_encode(embedder, texts: list[str], batch_size: int):
    """The model's own encode, as a user of the library would call it (sentence-transformers for torch)."""
    model = getattr(embedder, "model", None)
    if model is not None and hasattr(model, "encode"):
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)
    return embedder.encode(texts, batch_size=batch_size)


def python_loop_search(conn, query: np.ndarray, k: int, limit: int | None = None) -> list[tuple[int, float]]:
    """How simple tools do it: every stored vector unpacked and compared in pure Python."""
    q = [float(x) for x in query]
    fmt = f"<{len(q)}f"
    qnorm = sum(x * x for x in q) ** 0.5
    scored = []
    sql = "select id, embedding from vectors" + (f" limit {int(limit)}" if limit else "")
    for pid, blob in conn.execute(sql):
        v = struct.unpack(fmt, blob)
        dot = sum(x * y for x, y in zip(q, v))
        scored.append((dot / (qnorm * (sum(x * x for x in v) ** 0.5)), pid))
    scored.sort(reverse=True)
    return [(pid, s) for s, pid in scored[:k]]


def measure_baselines(data_dir: Path, vectors: np.ndarray, queries: np.ndarray, py_loop_max: int,
                      index) -> dict:
    import sqlite3

    import torch
    from sentence_transformers import util

    faiss_ms, st_ms = [], []
    corpus = torch.from_numpy(vectors)
    for q in queries:
        t = time.perf_counter()
        index.search(q, TOP_K)
        faiss_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        util.semantic_search(torch.from_numpy(q[None, :]), corpus, top_k=TOP_K)
        st_ms.append((time.perf_counter() - t) * 1000)
    path = data_dir / "baseline-vectors.db"
    conn = sqlite3.connect(path)
    rows = min(len(vectors), py_loop_max)
    have = conn.execute("select count(*) from sqlite_master where name = 'vectors'").fetchone()[0] and \
        conn.execute("select count(*) from vectors").fetchone()[0]
    if have != rows:
        conn.execute("drop table if exists vectors")
        conn.execute("create table vectors (id integer primary key, embedding blob)")
        with conn:
            conn.executemany("insert into vectors values (?, ?)",
                             ((i + 1, vectors[i].astype("<f4").tobytes()) for i in range(rows)))
    loop_ms = []
    for q in queries[:3]:
        t = time.perf_counter()
        python_loop_search(conn, q, TOP_K)
        loop_ms.append((time.perf_counter() - t) * 1000 * len(vectors) / rows)
    conn.close()
    f, s, p = statistics.median(faiss_ms), statistics.median(st_ms), statistics.median(loop_ms)
    return {"faiss_ms": round(f, 3), "semantic_search_ms": round(s, 2), "python_loop_ms": round(p, 1),
            "python_loop_rows": rows, "python_loop_extrapolated": rows < len(vectors),
            "semantic_search_vs_faiss": round(s / f, 1), "python_loop_vs_faiss": round(p / f, 1)}


def measure_rss(data_dir: Path, backend: str, questions: list[str]) -> dict:
    """Peak RSS of a fresh process that loads the model and the index and answers a few questions."""
    cmd = [sys.executable, "-m", "pbrbot.bench", "probe", str(data_dir), backend, json.dumps(questions[:3])]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _probe(data_dir: str, backend: str, questions_json: str) -> None:
    from pbrbot.config import load_settings
    from pbrbot.services import Services

    t = time.perf_counter()
    services = Services(load_settings(data_dir=Path(data_dir), embed_backend=backend))
    services.searcher.vectors()
    for q in json.loads(questions_json):
        services.answerer.ask(q)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec.
    status = Path("/proc/self/status").read_text()
    peak_kb = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) if "VmHWM" in status else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rss_mb": round(peak_kb / 1024, 1), "torch_imported": "torch" in sys.modules,
                      "load_and_ask_s": round(time.perf_counter() - t, 1)}))


# -- the run --------------------------------------------------------------------------------------
def _services(settings, data_dir: Path, embedder=None):
    from pbrbot.config import load_settings
    from pbrbot.embedding import embedder_name
    from pbrbot.services import Services

    services = Services(load_settings(**{**settings.model_dump(), "data_dir": data_dir}))
    services.embedder_name = embedder_name(services.settings)
    if embedder is not None:
        services.__dict__["embedder"] = embedder
    return services


def _share_onnx_cache(src: Path, data_dir: Path) -> None:
    """Point a bench archive's onnx/ cache at the one already exported (no export per archive)."""
    link = data_dir / "onnx"
    if (src / "onnx").exists() and not link.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        link.symlink_to((src / "onnx").resolve(), target_is_directory=True)


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
    sample = _services(settings, work / "sample")
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
    real = _services(settings, real_dir, embedders[primary])
    for f, (title, text) in enumerate(families):
        post = gen.post(f)
        real.store.upsert_post(Post(url=post["url"], title=title, text=text, date=post["date"], source="bench"))
    texts = [embedding_text(title, p.text) for title, text in families for p in chunk_post(0, text)]
    speeds, vectors = {}, {}
    for backend, embedder in embedders.items():
        echo(f"embedding throughput of {len(texts)} passages: {backend}")
        speeds[backend] = measure_embedding(embedder, texts, questions, batch)
        vectors[backend] = speeds[backend].pop("vectors")
    reference = "torch" if "torch" in vectors else primary
    for backend, result in speeds.items():
        cos = (vectors[backend] * vectors[reference]).sum(axis=1)
        result |= {"cos_mean": round(float(cos.mean()), 4), "cos_min": round(float(cos.min()), 4),
                   "speedup": round(result["passages_per_s"] / speeds[reference]["passages_per_s"], 2)}
    report["embedding"] = {"texts": len(texts), "reference": reference, "backends": speeds}
    if partial:
        partial(report)

    echo(f"indexing the same {passages} passages with {primary} (pbrbot index's code), then raw encode again")
    stats = run_index(real, progress=False)
    t = time.perf_counter()
    raw_encode(embedders[primary], texts, batch)
    raw_rate = (len(texts) / (time.perf_counter() - t) + speeds[primary]["passages_per_s"]) / 2
    report["indexer"] = {"backend": primary, "passages": stats.embedded,
                         "indexer_per_s": round(stats.embedded / stats.seconds, 1), "raw_per_s": round(raw_rate, 1),
                         "ratio": round(stats.embedded / stats.seconds / raw_rate, 3)}
    report["sizes"] = []
    if partial:
        partial(report)
    rows = real.store.db.execute("select p.id, p.position, posts.url from passages p "
                                 "join posts on posts.id = p.post_id order by p.id").fetchall()
    ids, stored = VectorIndex.load(real_dir, real.embedder_name)._stored()
    by_id = dict(zip(ids.tolist(), stored))
    base = {(int(url.rstrip("/").rsplit("/", 1)[1]), pos): by_id[pid] for pid, pos, url in rows}
    real.close()

    # 2. each size: archive, ask latency per backend, baselines, RSS, size on disk.
    for size in options.sizes:
        data_dir = work / f"archive-{size}"
        entry = _ensure_archive(data_dir, gen, size, base, settings, echo)
        _share_onnx_cache(work, data_dir)
        disk = _disk_mb(data_dir)
        entry |= disk | {"ask": {}, "rss": {}}
        for backend, embedder in embedders.items():
            echo(f"size {size:,}: ask latency with {backend}")
            services = _services(load_settings(**{**settings.model_dump(), "embed_backend": backend}), data_dir,
                                 embedder)
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


def _ensure_archive(data_dir: Path, gen: Generator, size: int, base, settings, echo) -> dict:
    from pbrbot.store import open_store

    if (data_dir / "pbrbot.db").exists():
        try:
            store = open_store(data_dir)
            key, info = store.get_meta("bench.key"), store.get_meta("bench.info")
            store.close()
        except Exception:  # an archive of an older schema: rebuild it
            key = info = None
        if key == _archive_key(gen, size, settings) and info:
            echo(f"size {size:,}: reusing {data_dir}")
            return json.loads(info)
        import shutil

        shutil.rmtree(data_dir)
    echo(f"size {size:,}: building a synthetic archive in {data_dir}")
    info = build_archive(data_dir, gen, size, base, settings, echo)
    store = open_store(data_dir)
    store.set_meta("bench.info", json.dumps(info))
    store.close()
    return info


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
              f"run_index vs {ix['raw_per_s']} raw encode = ratio {ix['ratio']}", "",
              "| backend | passages/s | speed-up | query embed ms | cosine mean | cosine min |",
              "|---|---|---|---|---|---|"]
    for name, b in report["embedding"]["backends"].items():
        lines.append(f"| {name} | {b['passages_per_s']} | {b['speedup']}x | {b['query_ms']} | {b['cos_mean']} | "
                     f"{b['cos_min']} |")
    lines += ["", "| passages | index | faiss MB | db MB | backend | ask p50 ms | ask p95 ms | embed | vector | "
                  "keyword | fusion | quotes (of which embedding) | peak RSS MB |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in report["sizes"]:
        for backend, a in e["ask"].items():
            s = a["split_p50_ms"]
            rss = e["rss"].get(backend, {})
            rss_text = f"{rss['rss_mb']}" + (" (torch loaded)" if rss.get("torch_imported") else "") \
                if "rss_mb" in rss else rss.get("error", "-")
            lines.append(f"| {e['passages']:,} | {e['index_type']} | {e['faiss_mb']} | {e['db_mb']} | {backend} | "
                         f"{a['p50_ms']} | {a['p95_ms']} | {s['embed']} | {s['vector']} | {s['keyword']} | "
                         f"{s['fusion']} | {s['quotes']} ({s['quotes_embed']}) | {rss_text} |")
    lines += ["", "| passages | FAISS ms | semantic_search ms | Python loop over SQLite ms | ss / FAISS | "
                  "loop / FAISS |", "|---|---|---|---|---|---|"]
    for e in report["sizes"]:
        b = e["baselines"]
        star = f" (extrapolated from {b['python_loop_rows']:,} rows)" if b["python_loop_extrapolated"] else ""
        lines.append(f"| {e['passages']:,} | {b['faiss_ms']} | {b['semantic_search_ms']} | {b['python_loop_ms']}"
                     f"{star} | {b['semantic_search_vs_faiss']}x | {b['python_loop_vs_faiss']}x |")
    return "\n".join(lines)


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "probe":
    _probe(*sys.argv[2:])
