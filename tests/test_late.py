"""Late chunking (late.py): sentence vectors pooled from their passages' own pass through the model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_services
from pbrbot import passages
from pbrbot.embedding import embedding_text
from pbrbot.late import late_vectors, pool_span
from pbrbot.sentences import PostText, sentence_texts, text_key
from test_sentence_vectors import QUESTIONS, answers, same_answers

E = np.eye(4, dtype=np.float32)


def piece(start: int, end: int, tokens: list[tuple[int, int]], rows: list[int]):
    """A passage (start, end) whose tokens at `tokens` (character spans) have the states E[rows]."""
    return start, end, E[rows], np.array(tokens, dtype=np.int64)


TEXT = "Aa bb. Cc dd. Ee."  # tokens: Aa 0-2, bb 3-5, . 5-6, Cc 7-9, dd 10-12, . 12-13, Ee 14-16, . 16-17
ONE = piece(0, 13, [(0, 2), (3, 5), (5, 6), (7, 9), (10, 12), (12, 13)], [0, 1, 1, 2, 3, 3])
TWO = piece(7, 17, [(7, 9), (10, 12), (12, 13), (14, 16), (16, 17)], [0, 0, 0, 3, 3])


@pytest.mark.parametrize("span, pieces, expected", [
    ((0, 6), [ONE], [1, 2, 0, 0]),  # "Aa bb.": its three tokens' states, averaged
    ((7, 13), [ONE], [0, 0, 1, 2]),
    ((7, 13), [ONE, TWO], [0, 0, 1, 2]),  # in both passages: the first with the most overlap, not twice
    ((7, 13), [TWO, ONE], [3, 0, 0, 0]),  # (a tie: the first given)
    ((7, 17), [ONE, TWO], [3, 0, 0, 2]),  # across the seam: the passage holding most of it, then the rest
    ((3, 9), [ONE, TWO], [0, 2, 1, 0]),
    ((14, 17), [ONE], None),  # in no passage: embedded alone instead
    ((0, 9), [piece(0, 9, [(0, 2), (3, 5), (5, 6)], [0, 1, 1])], None),  # a word cut off (256 tokens)
])
def test_pool_span(span, pieces, expected):
    vector = pool_span(TEXT, *span, pieces)
    if expected is None:
        assert vector is None
    else:
        want = np.array(expected, dtype=np.float32)
        assert np.allclose(vector, want / np.linalg.norm(want), atol=1e-6)


def sample_posts(svc) -> tuple[list[PostText], dict]:
    posts = [PostText.from_row(row) for row in svc.store.iter_posts()]
    return posts, passages.spans_by_post(svc.store, [p.id for p in posts])


def test_passage_vectors_are_encodes_and_every_sentence_text_gets_one(sample_services, real_embedder):
    posts, spans = sample_posts(sample_services)
    made = late_vectors(real_embedder, posts, spans)
    titled = passages.titled_texts(sample_services.store, sorted(made.passages))
    ids = sorted(titled)
    encoded = real_embedder.encode([embedding_text(*titled[i]) for i in ids])
    assert np.allclose(np.stack([made.passages[i] for i in ids]), encoded, atol=1e-5)  # unchanged
    assert set(made.texts) == {t for p in posts for t in sentence_texts(p)}
    assert made.alone <= len(made.texts) // 50  # almost every text lies in a passage's tokens
    norms = np.linalg.norm(np.stack(list(made.texts.values())), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)


@pytest.mark.slow
def test_torch_and_onnx_make_the_same_late_vectors(sample_services, real_embedder, torch_embedder):
    posts, spans = sample_posts(sample_services)
    onnx, torch = late_vectors(real_embedder, posts, spans), late_vectors(torch_embedder, posts, spans)
    assert onnx.passages.keys() == torch.passages.keys() and onnx.texts.keys() == torch.texts.keys()
    for a, b in ((onnx.passages, torch.passages), (onnx.texts, torch.texts)):
        cos = np.sum(np.stack([a[k] for k in a]) * np.stack([b[k] for k in a]), axis=1)
        assert cos.min() > 0.9999  # measured on the dev archive: 1.000000 (185 passages, 1,798 texts)


@pytest.mark.slow
def test_an_archive_is_answered_as_it_was_indexed_and_an_index_run_remakes_it(tmp_path, real_embedder):
    from pbrbot.ingest import ingest_sample

    data = tmp_path / "data"
    late = make_services(data, embedder=real_embedder, sentence_vectors="late")
    ingest_sample(late.store, late.settings)
    late.run_index(progress=False)
    assert json.loads((data / "manifest.json").read_text())["sentences"] == "late"
    # Answered with the default settings (alone): from the stored late vectors, as the manifest says.
    stored, counting = answers(data, real_embedder)
    assert counting.texts == counting.passes == [] and sum(a["found"] for a in stored) >= len(QUESTIONS) - 4
    # Half the vectors missing (a run killed mid-way): remade from their posts' passes, answers unchanged.
    db = late.store.db
    total = db["sentence_vectors"].count
    with late.store.transaction():
        db.execute("delete from sentence_vectors where substr(key, 1, 1) < x'80'")
    again, counting = answers(data, real_embedder)
    assert same_answers(again, stored) and counting.passes and len(counting.texts) <= 10
    assert db["sentence_vectors"].count == total  # written back
    late.close()

    svc = make_services(data, embedder=real_embedder)  # the default: alone
    stats = svc.run_index(progress=False)
    assert stats.embedded == 0 and stats.sentences > 0  # the passage vectors are kept
    assert json.loads((data / "manifest.json").read_text())["sentences"] == "alone"
    models = {m for (m,) in svc.store.db.execute("select distinct model from sentence_vectors")}
    assert models == {real_embedder.name}  # the late vectors dropped
    _, counting = answers(data, real_embedder)
    assert counting.texts == counting.passes == []
    svc.close()


def test_pooled_sentences_are_encodes_and_contexts_pool_their_words(tmp_path, real_embedder, sample_services):
    from pbrbot.late import pooled_vectors
    from test_sentence_vectors import live_keys, six_posts, stored_keys

    posts, _ = sample_posts(sample_services)
    made = pooled_vectors(real_embedder, posts)
    assert set(made) == {t for p in posts for t in sentence_texts(p)}
    sentences = [p.sentence(i) for p in posts for i in range(len(p.spans)) if p.is_candidate(i)]
    assert np.allclose(np.stack([made[t] for t in sentences]), real_embedder.encode(sentences), atol=1e-5)

    svc = six_posts(tmp_path, "pooled")  # the fake model: a bag of words, so a pooled context is its encode
    svc.run_index(progress=False)
    assert json.loads((tmp_path / "data" / "manifest.json").read_text())["sentences"] == "pooled"
    assert stored_keys(svc) == live_keys(svc)
    rows = svc.store.db.execute("select model, key, vector from sentence_vectors").fetchall()
    assert {m for m, _, _ in rows} == {"fake:64+pooled"}
    texts = {text_key(t): t for row in svc.store.iter_posts() for t in sentence_texts(PostText.from_row(row))}
    stored = np.stack([np.frombuffer(v, "<f2") for _, _, v in rows]).astype(np.float32)
    assert np.allclose(stored, svc.embedder.encode([texts[k] for _, k, _ in rows]), atol=2e-3)  # (float16)
    svc.close()
