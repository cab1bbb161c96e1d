"""Incremental, crash-safe indexing: passages and vectors kept in step with the posts."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import make_services, with_embedder
from pbrbot.cli import main
from pbrbot.models import Post
from pbrbot.vectors import VectorIndex

BODY = ("The justice reinvestment pilot ran in six sites. Local partnerships were paid when demand fell. "
        "Probation trusts kept reducing reoffending despite the reforms. ") * 6


def post(n: int, extra: str = "") -> Post:
    return Post(url=f"https://example.org/post-{n}/", title=f"Post {n}",
                text=f"Post number {n} is about topic{n}.\n\n{BODY}\n\n{BODY}\n\n{extra}"
                     f"Closing words for post {n}.")


@pytest.fixture
def fake(tmp_path):
    svc = make_services(tmp_path / "data", model="fake:256")
    yield svc
    svc.close()


def passage_ids(svc) -> set[int]:
    return {r[0] for r in svc.store.db.execute("select id from passages")}


def test_incremental_add_change_delete(fake):
    for n in range(3):
        fake.store.upsert_post(post(n))
    first = fake.run_index(progress=False)
    assert first.embedded == first.total == len(passage_ids(fake)) > 3 and first.removed == 0
    assert fake.run_index(progress=False).as_dict()["embedded"] == 0

    before = passage_ids(fake)
    fake.store.upsert_post(post(1, extra="A new paragraph about Social Impact Bonds appears here. "))
    fake.store.upsert_post(post(3))
    _, gone_id = fake.store.upsert_post(post(2))
    fake.store.delete_post(gone_id)
    stats = fake.run_index(progress=False)
    after = passage_ids(fake)
    assert stats.embedded == len(after - before) > 0
    assert stats.removed == len(before - after) > 0
    assert stats.total == len(after)
    assert VectorIndex.load(fake.settings.data_dir).ids() == after
    # unchanged passages of the changed post kept their ids
    assert len(before & after) > 0
    hits = fake.searcher.keyword_search("Social Impact Bonds", 5)
    assert hits and hits[0].url == "https://example.org/post-1/"
    dense = fake.searcher.dense_search("Post number 3 is about topic3", 3)
    assert dense[0].url == "https://example.org/post-3/"


def test_an_index_run_rewrites_an_index_of_an_older_format(fake):
    import json

    from pbrbot.vectors import FORMAT_VERSION, MANIFEST, Manifest

    for n in range(2):
        fake.store.upsert_post(post(n))
    fake.run_index(progress=False)
    path = fake.settings.data_dir / MANIFEST
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION - 1}))  # as an older pbrbot left it
    assert fake.run_index(progress=False).embedded == 0  # nothing to embed, yet the index is re-saved
    assert Manifest.read(fake.settings.data_dir).format_version == FORMAT_VERSION


def test_ids_are_never_reused(fake):
    _, pid = fake.store.upsert_post(post(0))
    fake.run_index(progress=False)
    top = max(passage_ids(fake))
    fake.store.delete_post(pid)
    fake.store.upsert_post(post(9))
    fake.run_index(progress=False)
    assert min(passage_ids(fake)) > top


def test_cli_index_json_and_model_mismatch(tmp_path):
    data = tmp_path / "data"
    svc = make_services(data, model="fake:64")
    svc.store.upsert_post(post(0))
    svc.close()
    runner = CliRunner(env={"PBRBOT_MODEL": "fake:64"})
    first = runner.invoke(main, ["--data-dir", str(data), "index", "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["embedded"] > 0
    again = json.loads(runner.invoke(main, ["--data-dir", str(data), "index", "--json"]).stdout)
    assert again["embedded"] == 0 and set(again) == {"embedded", "removed", "total", "seconds"}

    other = CliRunner(env={"PBRBOT_MODEL": "fake:32"})
    for args in (["index"], ["search", "pilot"]):
        refused = other.invoke(main, ["--data-dir", str(data), *args])
        assert refused.exit_code == 1
        assert refused.stderr.strip() == ("error: the index was built with model fake:64 (dim 64) but "
                                          "PBRBOT_MODEL is fake:32; run `pbrbot index --rebuild`")
    rebuilt = json.loads(other.invoke(main, ["--data-dir", str(data), "index", "--rebuild", "--json"]).stdout)
    assert rebuilt["embedded"] == rebuilt["total"] > 0
    assert json.loads((data / "manifest.json").read_text())["model"] == "fake:32"


class Crash(Exception):
    pass


class Watched:
    """An embedder that shows each batch to `watch` (which may raise) before embedding it for real."""

    def __init__(self, inner, watch):
        self.inner, self.watch, self.name, self.dim = inner, watch, inner.name, inner.dim

    def encode(self, texts, batch_size=None):
        self.watch(texts)
        return self.inner.encode(texts, batch_size)

    def encode_tokens(self, texts, batch_size=None):
        self.watch(texts)
        return self.inner.encode_tokens(texts, batch_size)


@pytest.mark.parametrize("method", ["alone", "late"])
def test_checkpoints_keep_progress_of_an_interrupted_run(fake, method, monkeypatch):
    from pbrbot import indexer

    fake.settings.sentence_vectors = method
    monkeypatch.setattr(indexer, "LATE_WINDOW", 4)  # late: a pass over two posts' four passages at a time
    for n in range(12):
        fake.store.upsert_post(post(n))
    embedder = fake.embedder
    calls = []

    def die_at_the_fourth(texts):
        calls.append(len(texts))
        if len(calls) == 4:
            raise Crash

    fake = with_embedder(fake, Watched(embedder, die_at_the_fourth))
    fake.settings.embed_batch_size = 4
    with pytest.raises(Crash):
        fake.run_index(progress=False, checkpoint_passages=8)
    saved = VectorIndex.load(fake.settings.data_dir)
    assert len(saved) == 8  # three batches of 4 done, the checkpoint after the second kept
    fake = with_embedder(fake, embedder)
    stats = fake.run_index(progress=False)
    assert stats.embedded == len(passage_ids(fake)) - 8 and stats.total == len(passage_ids(fake))


def test_batches_ordered_by_length_keep_each_vector_with_its_passage(fake, monkeypatch):
    from pbrbot import indexer
    from pbrbot.indexer import embedding_text
    from pbrbot.ingest import ingest_sample

    ingest_sample(fake.store, fake.settings)
    synthetic_posts(fake.store, 0, 12)  # passages of varied lengths
    embedder = fake.embedder
    batches = []
    fake = with_embedder(fake, Watched(embedder, lambda texts: batches.append(list(texts))))
    fake.settings.embed_batch_size = 5
    fake.settings.sentence_vectors = "alone"  # (late chunking runs passages by post: late.py)
    monkeypatch.setattr(indexer, "EMBED_WINDOW", 20)
    monkeypatch.setattr(indexer, "embed_sentences", lambda *a, **k: 0)
    stats = fake.run_index(progress=False)
    rows = fake.store.db.execute("select passages.id, posts.title, passages.text from passages "
                                 "join posts on posts.id = passages.post_id").fetchall()
    assert stats.embedded == len(rows) > 40 and all(len(b) <= 5 for b in batches)
    pieces = [[len(indexer._PIECE.findall(t)) for t in b] for b in batches]
    for w in range(0, len(batches), 4):  # a window of 20 passages: 4 batches, longest first
        window = [n for b in pieces[w:w + 4] for n in b]
        assert window == sorted(window, reverse=True)
    saved = VectorIndex.load(fake.settings.data_dir)
    for pid, title, text in rows:
        hits = saved.search(embedder.encode([embedding_text(title, text)])[0], 3)
        assert any(h == pid and score > 0.999 for h, score in hits), (pid, hits)


def synthetic_posts(store, first: int, count: int) -> None:
    """Realistic posts recombined from the sample archive's sentences (the benchmark's generator)."""
    from pbrbot.bench.archive import Generator, sample_sentences

    gen = Generator(sample_sentences(store), seed=3)
    gen.families = 10_000
    for k in range(first, first + count):
        p = gen.post(k)
        store.upsert_post(Post(url=f"https://example.org/synthetic/{k}/", title=p["title"], text=p["text"],
                               date=p["date"]))


@pytest.mark.slow
def test_sigkill_mid_run_keeps_the_previous_index_and_the_next_run_completes(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from pbrbot.ingest import ingest_sample

    data = tmp_path / "data"
    svc = make_services(data, model="fake:384")
    ingest_sample(svc.store, svc.settings)
    synthetic_posts(svc.store, 0, 150)
    before = svc.run_index(progress=False)
    synthetic_posts(svc.store, 150, 150)  # a 305-post archive, half of it not yet indexed
    svc.close()

    env = {**os.environ, "PBRBOT_MODEL": "fake:384?delay=0.05", "PBRBOT_EMBED_BATCH_SIZE": "8"}
    proc = subprocess.Popen([sys.executable, "-m", "pbrbot", "-v", "--data-dir", str(data), "index"],
                            env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stderr:
            if "embedding" in line:
                break
        else:
            pytest.fail("the index run never started embedding")
        import time

        time.sleep(0.5)  # well inside the run: ~100 batches of 0.05 s
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    runner = CliRunner(env={"PBRBOT_MODEL": "fake:384"})
    found = runner.invoke(main, ["--data-dir", str(data), "search", "probation reoffending", "--json"])
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)["hits"]
    assert len(VectorIndex.load(data)) == before.total  # still the previous index

    done = subprocess.run([sys.executable, "-m", "pbrbot", "--data-dir", str(data), "index", "--json"],
                          env={**os.environ, "PBRBOT_MODEL": "fake:384"}, capture_output=True, text=True,
                          check=True)
    stats = json.loads(done.stdout)
    svc = make_services(data, model="fake:384")
    total = svc.store.count_passages()
    assert svc.store.count_posts() == 305
    svc.close()
    assert stats["total"] == total and stats["embedded"] == total - before.total
    again = runner.invoke(main, ["--data-dir", str(data), "index", "--json"])
    assert json.loads(again.stdout)["embedded"] == 0


def test_a_searcher_sees_an_index_saved_by_another_process(tmp_path):
    data = tmp_path / "data"
    reader, writer = make_services(data, model="fake:256"), make_services(data, model="fake:256")
    writer.store.upsert_post(post(0))
    writer.run_index(progress=False)
    assert reader.searcher.dense_search("Post number 0 is about topic0", 1)[0].url.endswith("post-0/")
    writer.store.upsert_post(post(5))
    writer.run_index(progress=False)  # the reader's Searcher is not told: it notices the new manifest
    assert reader.searcher.dense_search("Post number 5 is about topic5", 1)[0].url.endswith("post-5/")
    reader.close()
    writer.close()


def test_ensure_index_names_what_is_not_searchable_yet(fake):
    for n in range(6):
        fake.store.upsert_post(post(n))
    fake.run_index(progress=False)
    said = []
    fake.ensure_index(echo=said.append)
    assert said == []
    fake.store.upsert_post(post(6))
    fake.store.upsert_post(post(7))
    fake.ensure_index(echo=said.append)  # ingested, not indexed: say so (searches cannot find them)
    assert said == ["2 posts are not indexed yet: run `pbrbot index` (answering from the others)"]
    embedder = fake.embedder
    fake = with_embedder(fake, Watched(embedder, lambda texts: (_ for _ in ()).throw(Crash())))
    with pytest.raises(Crash):  # chunked, then stopped before any vector was made
        fake.run_index(progress=False)
    said.clear()
    fake.ensure_index(echo=said.append)
    unembedded = len(passage_ids(fake)) - len(VectorIndex.load(fake.settings.data_dir))
    assert unembedded > 0 and said == [f"{unembedded} passages have no vectors yet (an index run was stopped?): "
                                       "run `pbrbot index` (answering from the others)"]
    fake = with_embedder(fake, embedder)
    fake.run_index(progress=False)
    said.clear()
    fake.ensure_index(echo=said.append)
    assert said == []
