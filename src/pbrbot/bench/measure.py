"""What `pbrbot bench` measures: timed wrappers, ask latency split, embedding throughput, the naive
dense-search baselines and the peak RSS of a fresh process."""

from __future__ import annotations

import json
import os
import re
import resource
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pbrbot.answer import Answerer
from pbrbot.config import Settings
from pbrbot.embedding import Embedder, embedder_name
from pbrbot.glossary import Glossary, load_glossary
from pbrbot.models import Hit
from pbrbot.search import Searcher
from pbrbot.store import Store

TOP_K = 50  # candidates per half, as the searcher takes

class TimedEmbedder:
    """Delegates to an embedder, adding up the time of each call under the current phase."""

    def __init__(self, inner):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.phase = "quotes"
        self.ms: dict[str, float] = {}
        self.texts = 0  # texts given to encode (sentences the answerer did not find stored), not queries

    def _timed(self, fn, *args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.ms[self.phase] = self.ms.get(self.phase, 0.0) + (time.perf_counter() - t) * 1000

    def encode(self, texts, batch_size=None):
        self.texts += len(texts)
        return self._timed(self.inner.encode, texts, batch_size=batch_size)

    def encode_tokens(self, texts, batch_size=None):
        self.texts += len(texts)
        return self._timed(self.inner.encode_tokens, texts, batch_size=batch_size)

    def encode_query(self, text):
        return self._timed(self.inner.encode_query, text)


class TimedSearcher(Searcher):
    """The real Searcher, adding up its own timings of each search an answer makes."""

    def __init__(self, store: Store, embedder: TimedEmbedder, data_dir: Path, index_name: str,
                 glossary: Glossary | None):
        super().__init__(store, embedder, data_dir, index_name, glossary)
        self.timed = embedder
        self.ms: dict[str, float] = {}
        self.searches = self.keyword_searches = 0  # searches, and those the keyword half contributed to

    def search(self, query: str, k: int = 10, per_post: int = 2, timings: dict | None = None,
               posts: set[int] | None = None) -> list[Hit]:
        timings = {} if timings is None else timings
        self.timed.phase = "search"
        t = time.perf_counter()
        try:
            return super().search(query, k=k, per_post=per_post, timings=timings, posts=posts)
        finally:
            total = (time.perf_counter() - t) * 1000
            self.timed.phase = "quotes"
            for key in ("dense_ms", "keyword_ms", "fusion_ms"):
                self.ms[key] = self.ms.get(key, 0.0) + timings.get(key, 0.0)
            self.searches += 1
            self.keyword_searches += timings.get("keyword_hits", 0) > 0
            self.ms["total"] = self.ms.get("total", 0.0) + total


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure_ask(store: Store, embedder: Embedder, settings: Settings, questions: list[str]) -> dict:
    """ask() end to end for each question, with the time split by stage.

    Every question is asked once untimed first: that loads the index and glossary, and brings the pages
    the questions read into the OS page cache, so each backend is timed alike (without it the first
    backend measured pays for cold disk reads that the next one is spared). Then each question is timed
    with the process's own caches emptied, as in a fresh bot process on a machine that has the archive
    in its page cache."""
    timed = TimedEmbedder(embedder)
    glossary = load_glossary()
    searcher = TimedSearcher(store, timed, Path(settings.data_dir), embedder_name(settings), glossary)
    answerer = Answerer(searcher, store, timed, glossary)
    embedder = timed
    for q in questions:
        answerer.ask(q)
    embedder.texts = 0
    searcher.searches = searcher.keyword_searches = 0
    totals, splits = [], []
    for q in questions:
        _cold_process_caches(searcher, answerer)
        embedder.ms.clear()
        searcher.ms.clear()
        t = time.perf_counter()
        answerer.ask(q)
        total = (time.perf_counter() - t) * 1000
        embed = embedder.ms.get("search", 0.0)
        totals.append(total)
        splits.append({"embed": embed, "vector": max(0.0, searcher.ms.get("dense_ms", 0.0) - embed),
                       "keyword": searcher.ms.get("keyword_ms", 0.0),
                       "fusion": searcher.ms.get("fusion_ms", 0.0),
                       "quotes": total - searcher.ms.get("total", 0.0),
                       "quotes_embed": embedder.ms.get("quotes", 0.0)})
    return {"p50_ms": round(_pct(totals, 0.5), 1), "p95_ms": round(_pct(totals, 0.95), 1),
            "texts_embedded": embedder.texts,
            "keyword_share": round(searcher.keyword_searches / max(searcher.searches, 1), 2),
            "split_p50_ms": {k: round(statistics.median(s[k] for s in splits), 2) for k in splits[0]}}


def _cold_process_caches(searcher: Searcher, answerer: Answerer) -> None:
    """Forget what the process keeps in memory (sentence vectors, question vectors, posts split into
    sentences), keeping the stored tables: each question is timed as in a fresh process."""
    from pbrbot.sentences import clear_memory

    clear_memory()
    searcher.forget_queries()
    answerer.forget_posts()


def long_question(words: list[str], chars: int = 5000) -> str:
    """A question of about `chars` characters made of `words` (repeated in order)."""
    out: list[str] = []
    while len(" ".join(out)) < chars:
        out.extend(words)
    return " ".join(out)[:chars].rsplit(" ", 1)[0] + "?"


def measure_concurrency(answerer: Answerer, short: list[str], long: str, rounds: int = 5) -> dict:
    """How long a short question takes alone, and while a long one is being answered in another thread
    (as the bot's engine pool runs them): medians over `rounds` of each short question, the process's
    caches emptied before every ask (each is timed as a question never seen)."""
    def cold() -> None:
        _cold_process_caches(answerer.searcher, answerer)

    def timed(question: str) -> float:
        t = time.perf_counter()
        answerer.ask(question)
        return (time.perf_counter() - t) * 1000

    for q in [*short, long]:  # warm: the model, the index, the page cache
        answerer.ask(q)
    alone, together, long_ms = [], [], []
    for _ in range(rounds):
        for q in short:
            cold()
            alone.append(timed(q))
            cold()
            started = threading.Event()
            with ThreadPoolExecutor(max_workers=1) as pool:
                pending = pool.submit(_after, started.set, timed, long)
                started.wait()
                time.sleep(0.02)  # the long answer is under way
                together.append(timed(q))
                long_ms.append(pending.result())
    a, b = statistics.median(alone), statistics.median(together)
    return {"short_alone_ms": round(a, 1), "short_during_long_ms": round(b, 1), "ratio": round(b / a, 2),
            "long_ms": round(statistics.median(long_ms), 1), "long_chars": len(long),
            "rounds": rounds * len(short)}


def _after(first: Callable[[], object], fn: Callable[[str], float], arg: str) -> float:
    first()
    return fn(arg)


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
    return {"passages_per_s": round(len(texts) / seconds, 1),
            "query_ms": round(statistics.median(query_ms), 2), "vectors": vectors}


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
    import importlib.util
    import sqlite3

    faiss_ms, st_ms = [], []
    for q in queries:
        t = time.perf_counter()
        index.search(q, TOP_K)
        faiss_ms.append((time.perf_counter() - t) * 1000)
    if importlib.util.find_spec("sentence_transformers"):  # the optional torch extra
        import torch
        from sentence_transformers import util

        corpus = torch.from_numpy(vectors)
        for q in queries:
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
    f, p = statistics.median(faiss_ms), statistics.median(loop_ms)
    s = statistics.median(st_ms) if st_ms else None  # None: sentence-transformers is not installed
    return {"faiss_ms": round(f, 3), "semantic_search_ms": s and round(s, 2), "python_loop_ms": round(p, 1),
            "python_loop_rows": rows, "python_loop_extrapolated": rows < len(vectors),
            "semantic_search_vs_faiss": s and round(s / f, 1), "python_loop_vs_faiss": round(p / f, 1)}


def measure_rss(data_dir: Path, backend: str, questions: list[str]) -> dict:
    """Peak RSS of a fresh process that loads the model and the index and answers a few questions."""
    cmd = [sys.executable, "-m", "pbrbot.bench.measure", "probe", str(data_dir), backend,
           json.dumps(questions[:3])]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _probe(data_dir: str, backend: str, questions_json: str) -> None:
    from pbrbot.config import load_settings
    from pbrbot.embedding import load_embedder
    from pbrbot.services import Services
    from pbrbot.vectors import Manifest

    t = time.perf_counter()
    # The bench serves every backend from the index the first one made: settings of that one, this embedder.
    manifest = Manifest.read(Path(data_dir))
    made = (manifest.backend if manifest else "") or backend
    settings = load_settings(data_dir=Path(data_dir), embed_backend=made)
    embedder = load_embedder(settings.model_copy(update={"embed_backend": backend}))
    services = Services(settings, embedder=embedder)
    services.searcher.vectors()
    for q in json.loads(questions_json):
        services.answerer.ask(q)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec.
    status = Path("/proc/self/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+)", status)
    peak_kb = int(found.group(1)) if found else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rss_mb": round(peak_kb / 1024, 1), "torch_imported": "torch" in sys.modules,
                      "load_and_ask_s": round(time.perf_counter() - t, 1)}))


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "probe":
    _probe(*sys.argv[2:])
