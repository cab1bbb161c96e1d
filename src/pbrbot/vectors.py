"""The FAISS vector index: passage ids -> vectors; add, remove, search, atomic save, checked load.

Files in the data directory:
    passages-<stamp>.faiss   the index, inner product: flat: IndexIDMap over an 8-bit IndexScalarQuantizer
                             (the search codes); hnsw: IndexIDMap2 over IndexHNSWFlat
    passages-<stamp>.f32     flat only: the exact float32 vectors in the codes' row order (raw, little-endian)
    manifest.json            {model, dim, count, index_type, format_version, created, file, rows, deleted,
                             backend, sentences}
The manifest names the files it belongs to and is replaced last, so it never points at a half-written
file: a crash at any moment leaves the previous (manifest, files) set loadable.

A flat index (flat_codes.py) searches 8-bit codes (a quarter of float32: 37 MB instead of 147 at 10^5
passages in a bot's memory) for RERANK times the results wanted and re-ranks those candidates with their
exact vectors, read from the rows file with pread (not mapped: the process holds only the rows it reads).
Scores are exact inner products; recall@50 against exhaustive float32 search was 1.0 on the bench archives
(the codes alone: 0.98). The codes are retrained on all rows whenever rows change (0.1-0.5 s at 10^5).

Exact search (flat) is used below settings.hnsw_threshold passages and HNSW at or above it
(index_type=auto). HNSW cannot remove vectors, so removed ids are kept in a `deleted` set that is
filtered out at query time and written to the manifest; when deletions pass a fifth of the index it
is rebuilt from its own stored vectors. That keeps an incremental run cheap (a removal costs nothing)
while a rebuild of a large HNSW graph (minutes at 10^6) happens only rarely.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from pbrbot.errors import PbrbotError
from pbrbot.flat_codes import FlatCodes, RowsFile

FORMAT_VERSION = 2  # 2: flat = 8-bit codes + exact rows file; 1: flat = IndexFlatIP (still loaded)
MANIFEST = "manifest.json"
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
COMPACT_FRACTION = 0.2


class IndexMismatch(PbrbotError):
    """The saved index was built with another model or dimension."""


@dataclass(frozen=True)
class Manifest:
    model: str
    dim: int
    count: int
    index_type: str
    format_version: int
    created: str
    file: str
    deleted: tuple[int, ...] = ()
    rows: str = ""  # flat: the exact vectors' file
    backend: str = ""  # the embedding backend of the run that saved it ("" before it was recorded)
    # how the answerer's sentence vectors were made (sentences.ALONE or LATE; "": alone, not yet recorded)
    sentences: str = ""

    @classmethod
    def read(cls, data_dir: Path) -> Manifest | None:
        path = Path(data_dir) / MANIFEST
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise PbrbotError(f"the vector index manifest {path} is unreadable ({exc}); "
                              "run `pbrbot index --rebuild`") from None
        raw["deleted"] = tuple(raw.get("deleted") or ())
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


def manifest_stamp(data_dir: Path) -> tuple | None:
    """Cheap change detector for the saved index (the manifest's inode, mtime and size)."""
    try:
        st = (Path(data_dir) / MANIFEST).stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def choose_type(index_type: str, count: int, threshold: int) -> str:
    if index_type in ("flat", "hnsw"):
        return index_type
    return "hnsw" if count >= threshold else "flat"


def _new_hnsw(dim: int):
    inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    inner.hnsw.efSearch = HNSW_EF_SEARCH
    return faiss.IndexIDMap2(inner)


class VectorIndex:
    """Vectors keyed by passage id. Searches may run in several threads; writes are serialised."""

    def __init__(self, model: str, dim: int, kind: str = "flat", backend: str = "", sentences: str = ""):
        self.model, self.dim, self.kind, self.backend = model, dim, kind, backend
        self.sentences = sentences  # how the archive's sentence vectors were made (see Manifest)
        # FlatCodes for "flat", a faiss IndexIDMap2 over HNSW for "hnsw" (faiss has no type information)
        self.index: Any = FlatCodes(dim) if kind == "flat" else _new_hnsw(dim)
        self.deleted: set[int] = set()
        self._lock = threading.RLock()

    # -- contents ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.index.ntotal - len(self.deleted)

    def _stored_ids(self) -> np.ndarray:
        if self.kind == "flat":
            return self.index.ids
        return faiss.vector_to_array(self.index.id_map) if self.index.ntotal else np.zeros(0, "int64")

    def ids(self) -> set[int]:
        """The ids of the passages whose vectors this index holds (the truth of what is embedded)."""
        with self._lock:
            return set(self._stored_ids().tolist()) - self.deleted

    def add(self, ids, vectors: np.ndarray) -> None:
        ids = np.asarray(list(ids), dtype=np.int64)
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}")
        with self._lock:
            again = self.deleted.intersection(ids.tolist())
            if again:  # an id removed earlier (HNSW) comes back: drop the stale copy first
                self._compact(drop=again)
            if self.kind == "flat":
                self.index.add(ids, vectors)
            else:
                self.index.add_with_ids(vectors, ids)

    def remove(self, ids) -> int:
        ids = {int(i) for i in ids} & self.ids()
        if not ids:
            return 0
        with self._lock:
            if self.kind == "flat":
                self.index.remove(np.asarray(sorted(ids), dtype=np.int64))
            else:
                self.deleted |= ids
                if len(self.deleted) > COMPACT_FRACTION * max(self.index.ntotal, 1):
                    self._compact()
        return len(ids)

    def _stored(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, exact vectors) of every stored row, removed-but-kept HNSW ones included."""
        with self._lock:
            if self.kind == "flat":
                return self.index.ids.copy(), self.index.vectors()
            n = self.index.ntotal
            if n == 0:
                return np.zeros(0, "int64"), np.zeros((0, self.dim), "float32")
            ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
            vectors = self.index.index.reconstruct_n(0, n)
            return ids, vectors

    def _compact(self, drop: set[int] | None = None, kind: str | None = None) -> None:
        """Rebuild the index from its own vectors, minus the deleted ids (maybe as another type)."""
        ids, vectors = self._stored()
        gone = self.deleted | (drop or set())
        keep = ~np.isin(ids, np.asarray(sorted(gone), dtype=np.int64)) if gone else np.ones(len(ids), bool)
        self.kind = kind or self.kind
        if self.kind == "flat":
            self.index = FlatCodes(self.dim, ids[keep], np.ascontiguousarray(vectors[keep]))
        else:
            self.index = _new_hnsw(self.dim)
            if keep.any():
                self.index.add_with_ids(np.ascontiguousarray(vectors[keep]), ids[keep])
        self.deleted = set()

    def convert(self, kind: str) -> None:
        """Switch between flat and HNSW (when the archive crosses the size threshold)."""
        with self._lock:
            if kind != self.kind:
                self._compact(kind=kind)

    # -- search -----------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest passage ids with their inner-product scores, best first."""
        index = self.index  # a compaction swaps self.index; a search keeps using the one it started with
        deleted = self.deleted
        if index.ntotal == 0 or k <= 0:
            return []
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        want = min(index.ntotal, k + len(deleted))
        if isinstance(index, FlatCodes):
            with self._lock:
                searchable = index.searchable()
        # One thread per query (OpenMP's setting is per OS thread): concurrent searches from the bot's
        # threads or a busy machine would otherwise oversubscribe the cores (measured on 2 cores under
        # load: 60 ms with two threads vs 1.5 ms with one for 10,000 passages).
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            if isinstance(index, FlatCodes):
                scores, ids = FlatCodes.search(searchable, query, want)
            else:
                found_scores, found_ids = index.search(query.reshape(1, -1), want)
                scores, ids = found_scores[0], found_ids[0]
        finally:
            faiss.omp_set_num_threads(threads)
        out = [(int(i), float(s)) for i, s in zip(ids, scores) if i >= 0 and int(i) not in deleted]
        return out[:k]

    # -- files ------------------------------------------------------------------------------
    def save(self, data_dir: Path) -> Manifest:
        """Write the new index files and then the manifest (each via temp file, fsync, os.replace)."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        written: list[Path] = []  # this save's files: removed again if the save fails (a full disk)
        try:
            with self._lock:
                stem = f"passages-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
                flat = self.index if self.kind == "flat" else None
                manifest = Manifest(
                    model=self.model, dim=self.dim, count=len(self), index_type=self.kind,
                    format_version=FORMAT_VERSION, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    file=f"{stem}.faiss", deleted=tuple(sorted(self.deleted)),
                    rows=f"{stem}.f32" if flat else "",
                    backend=self.backend, sentences=self.sentences,
                )
                if flat is not None:
                    _, codes, rows = flat.searchable()
                    written.append(data_dir / manifest.rows)
                    _atomic_write(written[-1], rows if isinstance(rows, np.ndarray) else rows.all())
                    written.append(data_dir / manifest.file)
                    _atomic_write(written[-1], faiss.serialize_index(codes))
                    flat.use_file(RowsFile(data_dir / manifest.rows, self.dim))  # (reads through its own fd)
                else:
                    written.append(data_dir / manifest.file)
                    _atomic_write(written[-1], faiss.serialize_index(self.index))
            body = {**manifest.__dict__, "deleted": list(manifest.deleted)}
            _atomic_write(data_dir / MANIFEST, json.dumps(body, indent=1).encode("utf-8"))
        except BaseException:  # the previous manifest and its files stay as they were
            for path in written:
                path.unlink(missing_ok=True)
            raise
        _remove_stale(data_dir, keep={manifest.file, manifest.rows})
        return manifest

    @classmethod
    def load(cls, data_dir: Path, model: str | None = None, dim: int | None = None) -> VectorIndex | None:
        """The saved index, or None when there is none. Refuses an index built with another model/dim."""
        data_dir = Path(data_dir)
        for attempt in range(3):
            manifest = Manifest.read(data_dir)
            if manifest is None:
                return None
            check_compatible(manifest, model, dim)
            if manifest.format_version not in (1, FORMAT_VERSION):
                raise IndexMismatch(f"the vector index has format {manifest.format_version}, this pbrbot "
                                    f"reads {FORMAT_VERSION}; run `pbrbot index --rebuild`")
            path = data_dir / manifest.file
            try:
                rows = RowsFile(data_dir / manifest.rows, manifest.dim) if manifest.rows else None
                if not path.exists():
                    raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
                index: Any = faiss.read_index(str(path))  # an IndexIDMap2 (its inner index varies)
                break
            except FileNotFoundError as exc:
                if attempt == 2:
                    raise PbrbotError(f"the vector index file {exc.filename} is missing; "
                                      "run `pbrbot index --rebuild`") from None
                # an index run swapped in a new manifest and removed these files: read it again
            except RuntimeError as exc:
                raise PbrbotError(f"the vector index {path} is unreadable ({str(exc).splitlines()[0]}); "
                                  "run `pbrbot index --rebuild`") from None
        assert manifest is not None  # the loop returned, raised or read one
        self = cls(manifest.model, manifest.dim, manifest.index_type, manifest.backend, manifest.sentences)
        if manifest.index_type == "hnsw":
            self.index = index
            hnsw: Any = faiss.downcast_index(index.index)
            hnsw.hnsw.efSearch = HNSW_EF_SEARCH
        elif rows is None:  # format 1: IndexIDMap2 over IndexFlatIP; its vectors become rows (in memory)
            self.index = FlatCodes(manifest.dim, faiss.vector_to_array(index.id_map).astype(np.int64),
                               index.index.reconstruct_n(0, index.ntotal))
        else:
            self.index = FlatCodes.saved(index, rows)
        self.deleted = set(manifest.deleted)
        return self


def check_compatible(manifest: Manifest, model: str | None, dim: int | None) -> None:
    from pbrbot.config import INT8_SUFFIX

    if model is not None and manifest.model != model and \
            manifest.model.removesuffix(INT8_SUFFIX) == model.removesuffix(INT8_SUFFIX):
        made = "onnx-int8" if manifest.model.endswith(INT8_SUFFIX) else (
            manifest.backend if manifest.backend in ("torch", "onnx") else "torch")
        now = "onnx-int8" if model.endswith(INT8_SUFFIX) else "torch or onnx"
        raise IndexMismatch(f"the vector index was made with the {made} embedding backend and "
                            f"PBRBOT_EMBED_BACKEND is {now}; run `pbrbot index --rebuild`, "
                            f"or set PBRBOT_EMBED_BACKEND={made}")
    if (model is not None and manifest.model != model) or (dim is not None and manifest.dim != dim):
        raise IndexMismatch(
            f"the index was built with model {manifest.model} (dim {manifest.dim}) but PBRBOT_MODEL is "
            f"{model}{f' (dim {dim})' if dim is not None else ''}; run `pbrbot index --rebuild`"
        )


def _atomic_write(path: Path, data) -> None:
    """`data`: bytes or any buffer (a numpy array is written without a copy). Created 0600; a failed write
    (a full disk) leaves no temp file behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:  # private
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _remove_stale(data_dir: Path, keep: set[str]) -> None:
    """Old index files and temp files left by interrupted runs (never the ones the manifest names)."""
    for path in [*data_dir.glob("passages-*.faiss"), *data_dir.glob("passages-*.f32")]:
        if path.name not in keep:
            path.unlink(missing_ok=True)
    for path in data_dir.glob(".*.tmp"):
        try:
            pid = int(path.name.rsplit(".", 2)[-2])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
