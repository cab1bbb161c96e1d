"""The answerer's sentence vectors, stored by `pbrbot index`: answering embeds only the question."""

from __future__ import annotations

import json

import pytest

from conftest import make_services, with_embedder
from pbrbot import indexer
from pbrbot.models import Post
from pbrbot.sentences import PostText, clear_memory, sentence_texts, text_key
from pbrbot.sources.sample import seed_questions_path


class Counting:
    """The real embedder, counting the texts it is asked to encode (query-side calls are encode_query);
    with `die_at`, that encode call is killed instead."""

    def __init__(self, embedder, die_at: int | None = None):
        self.inner, self.name, self.dim, self.die_at = embedder, embedder.name, embedder.dim, die_at
        self.texts: list[str] = []
        self.passes: list[str] = []  # passages run for their token states (late chunking)
        self.queries = self.calls = 0

    def _call(self) -> None:
        self.calls += 1
        if self.calls == self.die_at:
            raise KeyboardInterrupt

    def encode(self, texts, batch_size=None):
        self._call()
        self.texts.extend(texts)
        return self.inner.encode(texts, batch_size=batch_size)

    def encode_tokens(self, texts, batch_size=None):
        self._call()
        self.passes.extend(texts)
        return self.inner.encode_tokens(texts, batch_size=batch_size)

    def encode_query(self, text):
        self.queries += 1
        return self.inner.encode_query(text)


QUESTIONS = [json.loads(line)["question"] for line in seed_questions_path().read_text().splitlines() if line.strip()]


def answers(data_dir, embedder) -> tuple[list[dict], Counting]:
    """Every seed question answered by a fresh engine with an empty process cache."""
    clear_memory()
    svc = make_services(data_dir)
    counting = Counting(embedder)
    svc = with_embedder(svc, counting)
    try:
        return [svc.answerer.ask(q).model_dump() for q in QUESTIONS], counting
    finally:
        svc.close()


def same_answers(a, b, tol: float = 1e-3) -> bool:
    """Equal answers: the same quotes, links and texts; scores within `tol` (stored sentence vectors are
    float16, so a score made from them differs from one embedded on demand by ~1e-4)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= tol
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_answers(a[k], b[k], tol) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same_answers, a, b, [tol] * len(a)))
    return a == b


def test_same_answers_tolerates_rounding_only():
    answer = {"found": True, "quotes": [{"link": "https://x/#a", "score": 0.8605}]}
    assert same_answers(answer, {"found": True, "quotes": [{"link": "https://x/#a", "score": 0.8604}]})
    assert not same_answers(answer, {"found": True, "quotes": [{"link": "https://x/#a", "score": 0.85}]})
    assert not same_answers(answer, {"found": True, "quotes": [{"link": "https://x/#b", "score": 0.8605}]})
    assert not same_answers(answer, {"found": True, "quotes": []})


@pytest.mark.slow
def test_stored_vectors_answer_without_embedding_sentences(sample_services, real_embedder, tmp_path):
    stored, counting = answers(sample_services.settings.data_dir, real_embedder)
    assert counting.texts == counting.passes == [] and counting.queries >= len(QUESTIONS)
    assert sum(a["found"] for a in stored) >= len(QUESTIONS) - 3

    from conftest import copy_archive

    copy = copy_archive(sample_services, tmp_path / "data")
    svc = make_services(copy)
    db = svc.store.db
    total = db["sentence_vectors"].count
    # A run killed mid-way: half the vectors missing. They are embedded on demand, answers unchanged.
    with svc.store.transaction():
        db.execute("delete from sentence_vectors where substr(key, 1, 1) < x'80'")
    partial = db["sentence_vectors"].count
    assert 0 < partial < total
    again, counting = answers(copy, real_embedder)
    assert same_answers(again, stored)
    assert 0 < len(counting.texts) <= total - partial
    assert db["sentence_vectors"].count == partial + len(set(counting.texts))  # written back
    # No stored vectors at all: the same answers.
    with svc.store.transaction():
        db.execute("delete from sentence_vectors")
    bare, _ = answers(copy, real_embedder)
    assert same_answers(bare, stored)
    _, counting = answers(copy, real_embedder)  # now all stored again
    assert counting.texts == counting.passes == []
    svc.close()


BODY = ("The justice reinvestment pilot ran in six sites. Local partnerships were paid when demand fell.\n\n"
        "Results\n\nProbation trusts kept reducing reoffending despite the reforms. It worked. ")


def stored_keys(svc) -> set[bytes]:
    return {k for (k,) in svc.store.db.execute("select key from sentence_vectors")}


def live_keys(svc) -> set[bytes]:
    return {text_key(t) for row in svc.store.iter_posts() for t in sentence_texts(PostText.from_row(row))}


def six_posts(tmp_path, method: str):
    """An engine with the fake model, sentence vectors made `method`, and six posts not indexed yet."""
    svc = make_services(tmp_path / "data", model="fake:64", sentence_vectors=method)
    for n in range(6):
        svc.store.upsert_post(Post(url=f"https://example.org/{n}/", title=f"Post {n}",
                                   text=f"Post {n} is about topic{n}.\n\n{BODY * (n + 1)}"))
    return svc


def test_index_stores_sentences_resumes_and_rebuild_cleans(tmp_path, monkeypatch):
    svc = six_posts(tmp_path, "alone")
    embedder = svc.embedder
    monkeypatch.setattr(indexer, "SENTENCE_BATCH", 10)
    svc = with_embedder(svc, Counting(embedder, die_at=3))  # passages, one sentence batch, then killed
    with pytest.raises(KeyboardInterrupt):
        svc.run_index(progress=False)
    done = stored_keys(svc)
    assert 0 < len(done) < len(live_keys(svc))
    svc = with_embedder(svc, embedder)
    stats = svc.run_index(progress=False)  # the next run finishes the job, embedding only what is missing
    assert stored_keys(svc) == live_keys(svc)
    assert stats.embedded == 0 and stats.sentences == len(live_keys(svc)) - len(done)
    assert svc.run_index(progress=False).sentences == 0

    svc.store.upsert_post(Post(url="https://example.org/0/", title="Post 0", text="All new words here. Nothing else."))
    assert svc.run_index(progress=False).sentences > 0
    assert stored_keys(svc) > live_keys(svc)  # the old text's vectors stay (keyed by text, harmless)...
    stats = svc.run_index(rebuild=True, progress=False)
    assert stats.sentences == 0 and stored_keys(svc) == live_keys(svc)  # ...until --rebuild drops them
    svc.close()


def test_late_index_resumes_and_rebuild_cleans(tmp_path, monkeypatch):
    svc = six_posts(tmp_path, "late")
    embedder = svc.embedder
    monkeypatch.setattr(indexer, "LATE_WINDOW", 2)
    svc = with_embedder(svc, Counting(embedder, die_at=3))  # two windows of posts, then killed
    with pytest.raises(KeyboardInterrupt):
        svc.run_index(progress=False, checkpoint_passages=1)
    done = stored_keys(svc)
    assert 0 < len(done) < len(live_keys(svc))
    counting = Counting(embedder)
    svc = with_embedder(svc, counting)
    stats = svc.run_index(progress=False)  # the next run finishes the job
    assert stored_keys(svc) == live_keys(svc) and stats.total == svc.store.count_passages()
    assert counting.texts == [] and 0 < stats.embedded == len(counting.passes) < stats.total  # only the rest
    assert json.loads((tmp_path / "data" / "manifest.json").read_text())["sentences"] == "late"
    assert svc.run_index(progress=False).sentences == 0

    svc.store.upsert_post(Post(url="https://example.org/0/", title="Post 0", text="All new words here. Nothing else."))
    assert svc.run_index(progress=False).sentences > 0
    assert stored_keys(svc) > live_keys(svc)
    svc.run_index(rebuild=True, progress=False)
    assert stored_keys(svc) == live_keys(svc)
    svc.close()
