"""The FAISS index plumbing: add/remove/search for flat and HNSW, atomic save, checked load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pbrbot.errors import PbrbotError
from pbrbot.vectors import MANIFEST, VectorIndex, choose_type


def unit(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype("float32")
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_add_search_remove(kind):
    vecs = unit(200)
    index = VectorIndex("m", 16, kind)
    index.add(range(1000, 1200), vecs)
    assert len(index) == 200 and index.ids() == set(range(1000, 1200))
    best = index.search(vecs[7], 3)
    assert best[0][0] == 1007 and best[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in best] == sorted((s for _, s in best), reverse=True)

    assert index.remove([1007, 1008, 99999]) == 2
    assert 1007 not in index.ids() and len(index) == 198
    assert all(i not in (1007, 1008) for i, _ in index.search(vecs[7], 10))
    index.add([1007], vecs[7:8])  # a removed id may come back
    assert index.search(vecs[7], 1)[0][0] == 1007 and len(index) == 199

    index.remove(range(1000, 1150))  # most of it: HNSW compacts itself
    assert index.ids() == set(range(1150, 1200)) and len(index.search(vecs[160], 100)) == 50
    assert index.search(vecs[0], 0) == [] and VectorIndex("m", 16, kind).search(vecs[0], 5) == []


def test_save_load_roundtrip_and_old_files_cleaned(tmp_path):
    index = VectorIndex("m", 16, "hnsw")
    index.add(range(1, 51), unit(50))
    index.remove([3])
    first = index.save(tmp_path)
    second = index.save(tmp_path)
    assert first.file != second.file
    assert [p.name for p in tmp_path.glob("*.faiss")] == [second.file]
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest | {"created": None} == {
        "model": "m", "dim": 16, "count": 49, "index_type": "hnsw", "format_version": 2, "created": None,
        "file": second.file, "deleted": [3], "rows": "", "backend": "", "sentences": ""}
    loaded = VectorIndex.load(tmp_path, "m", 16)
    assert loaded.ids() == index.ids() and loaded.kind == "hnsw"
    assert loaded.search(unit(50)[9], 1)[0][0] == 10
    assert VectorIndex.load(tmp_path / "nothing-here") is None


def test_an_interrupted_save_leaves_the_previous_index(tmp_path):
    index = VectorIndex("m", 16)
    index.add([1, 2], unit(2))
    saved = index.save(tmp_path)
    # a crash after the new file was written but before the manifest was swapped
    (tmp_path / "passages-20990101000000-deadbeef.faiss").write_bytes(b"half written")
    (tmp_path / ".manifest.json.999999.tmp").write_text("{")
    loaded = VectorIndex.load(tmp_path, "m")
    assert loaded.ids() == {1, 2}
    index.add([3], unit(3)[2:])
    index.save(tmp_path)  # the next save cleans up what the crash left
    assert not (tmp_path / "passages-20990101000000-deadbeef.faiss").exists()
    assert not (tmp_path / ".manifest.json.999999.tmp").exists()
    assert not (tmp_path / saved.file).exists()


def test_load_refuses_another_model_or_dimension(tmp_path):
    index = VectorIndex("all-MiniLM-L6-v2", 16)
    index.save(tmp_path)
    with pytest.raises(PbrbotError, match=r"built with model all-MiniLM-L6-v2 \(dim 16\) but PBRBOT_MODEL is "
                                          r"other.*run `pbrbot index --rebuild`"):
        VectorIndex.load(tmp_path, "other")
    with pytest.raises(PbrbotError, match="dim 32"):
        VectorIndex.load(tmp_path, "all-MiniLM-L6-v2", 32)
    (tmp_path / MANIFEST).write_text("not json")
    with pytest.raises(PbrbotError, match="--rebuild"):
        VectorIndex.load(tmp_path)


def test_convert_and_choose_type():
    assert choose_type("auto", 10, 100) == "flat" and choose_type("auto", 100, 100) == "hnsw"
    assert choose_type("flat", 10**7, 100) == "flat" and choose_type("hnsw", 1, 100) == "hnsw"
    index = VectorIndex("m", 16)
    vecs = unit(30)
    index.add(range(30), vecs)
    index.convert("hnsw")
    assert index.kind == "hnsw" and index.ids() == set(range(30)) and index.search(vecs[4], 1)[0][0] == 4
    index.remove([5])
    index.convert("flat")  # back (index_type=flat): the HNSW's removed ids stay removed
    assert index.kind == "flat" and index.ids() == set(range(30)) - {5} and index.search(vecs[4], 1)[0][0] == 4


def clustered(n: int, dim: int = 32, centres: int = 20, seed: int = 1) -> np.ndarray:
    """Many near neighbours (like the bench's perturbed passages): where 8-bit codes alone misrank."""
    rng = np.random.default_rng(seed)
    base = unit(centres, dim, seed)
    v = base[rng.integers(0, centres, n)] + 0.5 / np.sqrt(dim) * rng.normal(size=(n, dim)).astype("float32")
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype("float32")


def exact_top(vecs: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    scores = vecs @ query
    return [int(ids[i]) for i in np.argsort(-scores, kind="stable")[:k]]


def test_flat_search_is_exact_in_memory_and_from_its_files(tmp_path):
    vecs, ids = clustered(3000), np.arange(10, 3010)
    queries = clustered(20, seed=2)
    index = VectorIndex("m", 32)
    for i in range(0, 3000, 64):  # as the indexer adds: batch by batch
        index.add(ids[i:i + 64], vecs[i:i + 64])
    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path, "m", 32)
    for q in queries:
        truth = exact_top(vecs, ids, q, 50)
        for got in (index.search(q, 50), loaded.search(q, 50)):
            assert [i for i, _ in got] == truth  # the codes' candidates re-ranked by exact inner products
            best = sorted((vecs @ q).tolist(), reverse=True)[:50]
            assert [s for _, s in got] == pytest.approx(best, abs=1e-6)
    saved_ids, saved = loaded._stored()
    assert np.array_equal(saved_ids, ids) and np.array_equal(saved, vecs)  # exact vectors, not the codes'
    rows = tmp_path / json.loads((tmp_path / MANIFEST).read_text())["rows"]
    assert sorted(p.suffix for p in tmp_path.glob("passages-*")) == [".f32", ".faiss"]
    assert rows.stat().st_size == vecs.nbytes


def test_a_loaded_flat_index_reads_its_rows_from_the_file_and_survives_a_newer_save(tmp_path):
    vecs = clustered(500)
    index = VectorIndex("m", 32)
    index.add(range(500), vecs)
    index.save(tmp_path)
    bot = VectorIndex.load(tmp_path, "m")  # a bot's copy: codes in memory, rows read with pread
    assert bot.index._rows == [] and bot.index._file is not None
    indexer = VectorIndex.load(tmp_path, "m")  # an index run: removes, adds, saves a new pair of files
    indexer.remove(range(100, 200))
    indexer.add([1000], vecs[7:8])
    indexer.save(tmp_path)
    assert indexer.index._rows == []  # the rows it saved are read from their file, not kept in memory
    assert len(list(tmp_path.glob("passages-*"))) == 2  # the bot's files are gone ...
    assert bot.search(vecs[7], 1)[0][0] == 7  # ... and it still searches them (its descriptor)
    got = VectorIndex.load(tmp_path, "m").search(vecs[7], 2)
    assert {i for i, _ in got} == {7, 1000} and got[0][1] == pytest.approx(1.0, abs=1e-6)


def test_a_format_1_flat_index_still_loads_and_is_saved_in_the_new_format(tmp_path):
    import faiss

    vecs = unit(40)
    old = faiss.IndexIDMap2(faiss.IndexFlatIP(16))
    old.add_with_ids(vecs, np.arange(1, 41))
    faiss.write_index(old, str(tmp_path / "passages-20250101000000-00000000.faiss"))
    (tmp_path / MANIFEST).write_text(json.dumps({
        "model": "m", "dim": 16, "count": 40, "index_type": "flat", "format_version": 1, "deleted": [],
        "created": "2025-01-01T00:00:00+0000", "file": "passages-20250101000000-00000000.faiss"}))
    index = VectorIndex.load(tmp_path, "m")
    assert index.ids() == set(range(1, 41)) and index.search(vecs[4], 1)[0][0] == 5
    manifest = index.save(tmp_path)
    assert manifest.format_version == 2 and manifest.rows.endswith(".f32")
    assert VectorIndex.load(tmp_path, "m").search(vecs[4], 1)[0][0] == 5


def test_a_short_rows_file_asks_for_a_rebuild(tmp_path):
    index = VectorIndex("m", 16)
    index.add(range(10), unit(10))
    manifest = index.save(tmp_path)
    rows = tmp_path / manifest.rows
    rows.write_bytes(rows.read_bytes()[:-64])
    with pytest.raises(PbrbotError, match="rows file.*run `pbrbot index --rebuild`"):
        VectorIndex.load(tmp_path, "m")
    rows.unlink()
    with pytest.raises(PbrbotError, match="missing; run `pbrbot index --rebuild`"):
        VectorIndex.load(tmp_path, "m")


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_an_empty_saved_index_loads_and_takes_vectors(tmp_path, kind):
    """`pbrbot index` on an empty archive saves an empty index; the next run (after an ingest) adds to it
    (was: TypeError 'memoryview: cannot cast view with zeros in shape or strides' on every later run)."""
    VectorIndex("m", 16, kind).save(tmp_path)
    loaded = VectorIndex.load(tmp_path, "m", 16)
    assert len(loaded) == 0 and loaded.search(unit(1)[0], 3) == []
    loaded.add(range(1, 11), unit(10))
    loaded.save(tmp_path)
    again = VectorIndex.load(tmp_path, "m", 16)
    assert again.ids() == set(range(1, 11)) and again.search(unit(10)[4], 1)[0][0] == 5
    again.remove(range(1, 11))
    again.save(tmp_path)
    assert len(VectorIndex.load(tmp_path, "m", 16)) == 0
