"""A flat vector index as 8-bit codes plus exact re-ranking (vectors.py's flat kind, see its docstring).

The codes (faiss IndexScalarQuantizer QT_8bit, a quarter of float32) find RERANK times the results wanted;
those candidates are scored by exact inner products with their float32 rows, held in memory while the
index is built or changed and read with pread from the saved rows file otherwise.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import faiss
import numpy as np

from pbrbot.errors import PbrbotError

RERANK = 4  # candidates taken from the 8-bit codes per result wanted, re-ranked with exact vectors


def _pread_into(fd: int, array: np.ndarray, offset: int) -> None:
    if array.size == 0:  # an empty index: nothing to read (and memoryview cannot cast a zero-size shape)
        return
    view = memoryview(array).cast("B")  # type: ignore[arg-type]  # numpy arrays are buffers
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise PbrbotError("the vector index's rows file is shorter than its index; "
                              "run `pbrbot index --rebuild`")
        done += got


class RowsFile:
    """A saved rows file, read with pread through a descriptor of its own (so still readable after a later
    save unlinked it)."""

    def __init__(self, path: Path, dim: int):
        self.dim, self.row_bytes = dim, 4 * dim
        self.fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self.fd)
        self.n = os.fstat(self.fd).st_size // self.row_bytes

    def take(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        for j, row in enumerate(rows.tolist()):
            _pread_into(self.fd, out[j], row * self.row_bytes)
        return out

    def all(self) -> np.ndarray:
        out = np.empty((self.n, self.dim), dtype=np.float32)
        _pread_into(self.fd, out, 0)
        return out


def _train_codes(dim: int, ids: np.ndarray, vectors: np.ndarray):
    """IndexIDMap over an 8-bit scalar quantiser trained on `vectors` (each dimension's min..max)."""
    sq = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    codes = faiss.IndexIDMap(sq)
    if len(ids):
        sq.train(vectors)
        codes.add_with_ids(vectors, ids)
    return codes


class FlatCodes:
    """Exact-scored flat search over 8-bit codes (see the module docstring). Row i holds the vector of
    passage ids[i]; the rows are in memory while the index is built or changed and in their file once it
    is saved or loaded. Changes go through VectorIndex's lock."""

    def __init__(self, dim: int, ids: np.ndarray | None = None, vectors: np.ndarray | None = None):
        self.dim = dim
        self._ids = [] if ids is None else [ids]  # parts, joined when read
        self._rows = [] if vectors is None else [vectors]  # in memory (parts), or
        self._file: RowsFile | None = None  # the saved rows
        self.codes = None  # _train_codes of the rows; None when the rows changed since

    @classmethod
    def saved(cls, codes, rows: RowsFile) -> FlatCodes:
        self = cls(rows.dim, faiss.vector_to_array(codes.id_map).astype(np.int64))
        if rows.n != len(self.ids):
            raise PbrbotError(f"the vector index holds {len(self.ids)} passages but its rows file {rows.n}; "
                              "run `pbrbot index --rebuild`")
        self._file, self.codes = rows, codes
        return self

    @property
    def ids(self) -> np.ndarray:
        if len(self._ids) != 1:
            self._ids = [np.concatenate(self._ids) if self._ids else np.zeros(0, np.int64)]
        return self._ids[0]

    @property
    def ntotal(self) -> int:
        return sum(len(part) for part in self._ids)

    def vectors(self) -> np.ndarray:
        """All rows, in order (a copy read from the file when saved: the index keeps using the file)."""
        if self._file is not None:
            return self._file.all()
        if len(self._rows) != 1:
            self._rows = [np.concatenate(self._rows) if self._rows else np.zeros((0, self.dim), np.float32)]
        return self._rows[0]

    def _change(self) -> None:
        if self._file is not None:
            self._rows, self._file = [self._file.all()], None
        self.codes = None

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._change()
        self._ids.append(ids.copy())
        self._rows.append(vectors.copy())

    def remove(self, gone: np.ndarray) -> None:
        keep = ~np.isin(self.ids, gone)
        vectors = self.vectors()
        self._change()
        self._ids, self._rows = [self.ids[keep]], [vectors[keep]]

    def use_file(self, rows: RowsFile) -> None:
        """The rows were just saved to `rows`: read them there from now on, freeing the memory."""
        self._rows, self._file = [], rows

    def searchable(self) -> tuple:
        """(ids, codes, rows) for `search`: built now if stale, unaffected by later changes."""
        ids = self.ids
        if self.codes is None:  # (changed since saved or loaded: the rows are in memory)
            self.codes = _train_codes(self.dim, ids, self.vectors())
        rows = self._file if self._file is not None else self.vectors()
        return ids, self.codes, rows

    @staticmethod
    def search(searchable: tuple, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best (scores, ids) by exact inner product among the codes' RERANK * k best rows."""
        ids, codes, rows = searchable
        want = RERANK * k
        if len(ids) <= want:
            candidates = np.arange(len(ids))
        else:
            _, found = faiss.downcast_index(codes.index).search(query.reshape(1, -1), want)
            candidates = np.sort(found[0][found[0] >= 0])  # file order: sequential reads, ties by row
        exact = rows[candidates] if isinstance(rows, np.ndarray) else rows.take(candidates)
        scores = exact @ query
        best = np.argsort(-scores, kind="stable")[:k]
        return scores[best], ids[candidates[best]]
