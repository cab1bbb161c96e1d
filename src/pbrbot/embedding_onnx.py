"""The onnx / onnx-int8 embedding backends: the packaged model run with onnxruntime, no torch.

The graph is built once from the model's model.safetensors (pbrbot.onnx_graph, a couple of seconds),
quantised to int8 for onnx-int8, and cached in the user's cache directory (PBRBOT_MODEL_CACHE_DIR,
default $XDG_CACHE_HOME/pbrbot or ~/.cache/pbrbot), shared by every archive; where that cannot be
written the model is built in a temporary directory on each start instead. The weights are cached as the
graph's external data (model-*.onnx.data beside model-*.onnx): onnxruntime maps that file into memory
instead of parsing 90 MB of protobuf and copying every weight, so a session starts in ~0.07 s instead of
~0.29 s, and only the word embeddings a text uses are read (peak RSS of an answer -80 MB; BENCHMARKS.md).
What sentence-transformers
does around the transformer is redone here in numpy, following the model folder's modules.json:
truncate to max_seq_length (sentence_bert_config.json), mean pooling over the attention mask,
L2 normalisation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pbrbot.embedding import Tokens, mean_pool
from pbrbot.errors import PbrbotError
from pbrbot.onnx_graph import OPSET, build_graph

log = logging.getLogger(__name__)

GRAPH_VERSION = 2  # 2: built from safetensors (1: the torch export; the same graph)
# Batches run at once at most (a thread per core up to this): each holds its activations (~70 MB at 1024
# tokens); on more cores each batch's ops are split over cores // MAX_PARALLEL_BATCHES threads.
MAX_PARALLEL_BATCHES = 4
# Padded tokens per batch: bounds peak memory (a 2048-token batch takes ~150 MB of activations; two
# batches run at once on 2 cores, so 1024 keeps an index run's peak RSS where one 2048 batch had it).
TOKENS_PER_BATCH = 1024
# onnxruntime's SkipLayerNormalization kernel (onnxruntime 1.32) took 885 us for 253 tokens x 384 on one
# core where Add + LayerNormalization take 178 us (9% of a passage's time, 8% of a query's): the graph
# keeps them apart and the session is told not to fuse them (DISABLED_OPTIMIZERS).
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]
# quantize_dynamic settings: per-channel int8 weights, every MatMul quantised. Measured on the 302 bench
# passages (cosine to torch mean/min, speed-up over torch): these 0.9928/0.9777, 1.57x; the FFN output
# MatMuls kept fp32 0.9964/0.9917 but 1.31x; also reduce_range 0.9955/0.9919, 1.28x; QUInt8 weights
# 0.9964/0.9911, 1.03x. The eval (hit@3, evidence@3) matched torch's with these and with the fp32-FFN one.
QUANTIZATION = {"per_channel": True, "reduce_range": False, "weight_type": "QInt8"}


def _tag(*settings) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


LAYOUT = "external-data"  # the weights in FILE.data beside FILE (see the module's docstring)
# File names carry the settings they were made with, so a file cached by an older version is never reused.
FP32_FILE = f"model-{_tag(GRAPH_VERSION, OPSET, LAYOUT)}.onnx"
INT8_FILE = f"model.int8-{_tag(GRAPH_VERSION, OPSET, QUANTIZATION, LAYOUT)}.onnx"
DATA = ".data"  # the weights of FILE are in FILE + DATA


def model_dir(settings) -> Path:
    """The sentence-transformers model folder: settings.model if it is a path, else the packaged model."""
    candidate = Path(settings.model).expanduser()
    if candidate.is_dir():
        return candidate
    from pbrbot.config import PACKAGED_MODEL, packaged_model_dir

    if settings.model != PACKAGED_MODEL:
        raise PbrbotError(f"the onnx backend needs a local model folder, not {settings.model!r}; "
                          "use PBRBOT_EMBED_BACKEND=torch for a model by name")
    return packaged_model_dir()


def cache_root(settings) -> Path:
    """PBRBOT_MODEL_CACHE_DIR, else $XDG_CACHE_HOME/pbrbot, else ~/.cache/pbrbot."""
    if settings.model_cache_dir:
        return Path(settings.model_cache_dir).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pbrbot"


def onnx_dir(settings) -> Path:
    """CACHE/onnx/<model name>-<source tag>: one folder per model file (its path, size and mtime), so
    models of the same name, or the same model in several virtualenvs, never share or evict files."""
    folder = model_dir(settings)
    name = folder.name if Path(settings.model).expanduser().is_dir() else settings.model
    source = (folder / "model.safetensors").resolve()
    stat = source.stat()
    return cache_root(settings) / "onnx" / f"{name}-{_tag(str(source), stat.st_size, stat.st_mtime_ns)}"


def ensure_exported(settings, quantized: bool, echo=None) -> Path:
    """Path of the cached ONNX file, building it first when it is missing (with a one-line message on
    stderr, or through `echo`). Where the cache cannot be written, the file is built in a temporary
    directory that the caller may delete once the file is loaded (see OnnxEmbedder)."""
    out = onnx_dir(settings)
    path = out / (INT8_FILE if quantized else FP32_FILE)
    if path.exists() and path.with_name(path.name + DATA).exists():
        return path
    say = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        say(f"preparing the embedding model (cannot cache it in {out}: {exc.strerror or exc}; "
            "set PBRBOT_MODEL_CACHE_DIR) ...")
        out = Path(tempfile.mkdtemp(prefix="pbrbot-onnx-"))
        path = out / path.name
        external = False  # one file, read into memory and deleted (OnnxEmbedder)
    else:
        say(f"preparing the embedding model (once, a few seconds; cached in {out}) ...")
        external = True
    started = time.perf_counter()
    build(model_dir(settings), out, quantized, external)
    log.info("built %s in %.1f s", path, time.perf_counter() - started)
    return path


def build(model_path: Path, out: Path, quantized: bool, external: bool = True) -> Path:
    """Build out/FP32_FILE (or, quantized, out/INT8_FILE from an fp32 graph in a temporary file), its weights
    in FILE.data when `external`, written atomically (the data first: FILE appears last); files an older
    version cached there are removed."""
    import onnx

    target = out / (INT8_FILE if quantized else FP32_FILE)
    with tempfile.TemporaryDirectory(dir=out, prefix=".build-") as tmp:
        graph = Path(tmp) / "fp32.onnx"
        onnx.save(build_graph(model_path), str(graph))
        if quantized:
            _quantize(graph, Path(tmp) / "int8.onnx")
            graph = Path(tmp) / "int8.onnx"
        if external:
            final = Path(tmp) / target.name
            onnx.save_model(onnx.load(str(graph)), str(final), save_as_external_data=True,
                            all_tensors_to_one_file=True, location=target.name + DATA, size_threshold=1024)
            os.replace(final.with_name(final.name + DATA), target.with_name(target.name + DATA))
            graph = final
        os.replace(graph, target)
    keep = {name + suffix for name in (FP32_FILE, INT8_FILE) for suffix in ("", DATA)}
    for stale in out.glob("model*"):
        if stale.name not in keep:
            stale.unlink(missing_ok=True)
    return target


def _quantize(fp32: Path, int8: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    q = QUANTIZATION
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic warns "consider pre-processing" on the root logger
    try:
        quantize_dynamic(str(fp32), str(int8), per_channel=q["per_channel"], reduce_range=q["reduce_range"],
                         weight_type=QuantType[q["weight_type"]],
                         extra_options={"DefaultTensorType": 1})  # 1 = FLOAT, for outputs of fused ops
    finally:
        root.setLevel(level)


class OnnxEmbedder:
    """Same interface as the torch Embedder: .name, .dim, .encode(texts), .encode_query(text)."""

    def __init__(self, settings, quantized: bool, echo=None):
        from tokenizers import Tokenizer

        folder = model_dir(settings)
        from pbrbot.config import vectors_name

        self.name = vectors_name(settings.model, "onnx-int8" if quantized else "onnx")
        self.quantized = quantized
        self.batch_size = settings.embed_batch_size
        max_len = json.loads((folder / "sentence_bert_config.json").read_text()).get("max_seq_length", 256)
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise PbrbotError(f"the onnx backend supports mean pooling only ({folder})")
        self.dim = int(pooling["word_embedding_dimension"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_len)
        self.tokenizer.no_padding()  # padded here, per batch of similar token counts
        self.path = ensure_exported(settings, quantized, echo=echo)
        self._model: str | bytes = str(self.path)
        if self.path.parent != onnx_dir(settings):  # built in a temporary directory: kept in memory instead
            self._model = self.path.read_bytes()
            shutil.rmtree(self.path.parent, ignore_errors=True)
        self._sessions: dict[int, object] = {}  # by threads per run, made on first use (a CLI answer: one)
        self._sessions_lock = threading.Lock()

    def _session(self, threads: int = 1):
        """An onnxruntime session whose runs use `threads` threads. Batches run side by side on threads of
        their own (encode), which keeps the cores busier than splitting each op across them (no wait at every
        op for the slower thread, the worst case on a shared machine), and a query runs on one thread: for a
        dozen tokens, waking a second one for each of the graph's ~100 ops costs more than it saves. Runs on
        one session may overlap (onnxruntime)."""
        with self._sessions_lock:
            if threads not in self._sessions:
                import onnxruntime as ort

                self._sessions[threads] = ort.InferenceSession(
                    self._model, self.session_options(ort, threads), providers=["CPUExecutionProvider"],
                    disabled_optimizers=DISABLED_OPTIMIZERS)
            return self._sessions[threads]

    @staticmethod
    def session_options(ort, threads: int):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.enable_cpu_mem_arena = False  # give activation memory back after each batch
        return opts

    def _forward(self, session, encodings) -> tuple[np.ndarray, np.ndarray]:
        """The last hidden state of tokenised texts padded to the longest of them, and the padding mask."""
        lengths = np.array([len(e.ids) for e in encodings])
        ids = np.zeros((len(encodings), int(lengths.max())), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, :len(e.ids)] = e.ids
        mask = (np.arange(ids.shape[1])[None, :] < lengths[:, None]).astype(np.int64)
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                    "token_type_ids": np.zeros_like(ids)})[0]
        return hidden, mask

    def _run(self, session, encodings) -> np.ndarray:
        """Mean-pooled, L2-normalised vectors of tokenised texts."""
        return mean_pool(*self._forward(session, encodings))

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """L2-normalised float32 vectors, shape (len(texts), dim) (batched as in `_each_batch`)."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)

        def run(session, rows: np.ndarray, encodings: list) -> None:
            out[rows] = self._run(session, encodings)

        self._each_batch(texts, batch_size, run)
        return out

    def encode_tokens(self, texts: list[str], batch_size: int | None = None) -> list[Tokens]:
        """Each text's token states and character offsets (embedding.Tokens), batched as `encode` is."""
        out: list[Tokens] = [(np.zeros((0, self.dim), np.float32), np.zeros((0, 2), np.int64))] * len(texts)

        def run(session, rows: np.ndarray, encodings: list) -> None:
            hidden, _ = self._forward(session, encodings)
            for row, e, states in zip(rows, encodings, hidden):
                out[row] = (states[:len(e.ids)].copy(), np.asarray(e.offsets, dtype=np.int64))

        self._each_batch(texts, batch_size, run)
        return out

    def _each_batch(self, texts: list[str], batch_size: int | None, run) -> None:
        """run(session, rows, encodings) over `texts` in batches.

        Texts are tokenised once, ordered by token count (longest first) and cut into batches of at most
        batch_size texts and TOKENS_PER_BATCH padded tokens (little padding, and attention's batch x seq^2
        memory stays small), at least one batch per worker; the batches run side by side, each on a thread of
        its own, as many at once as there are cores, up to MAX_PARALLEL_BATCHES."""
        if not texts:
            return
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = min(cores, MAX_PARALLEL_BATCHES)
        size = min(batch_size or self.batch_size, -(-len(texts) // workers))
        encodings = self.tokenizer.encode_batch(texts)
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        batches, start = [], 0
        while start < len(texts):
            longest = len(encodings[order[start]].ids)
            batches.append(order[start:start + max(1, min(size, TOKENS_PER_BATCH // max(longest, 1)))])
            start += len(batches[-1])
        session = self._session(max(1, cores // workers))

        def one(rows: np.ndarray) -> None:
            run(session, rows, [encodings[i] for i in rows])

        if len(batches) == 1 or workers == 1:
            for rows in batches:
                one(rows)
        else:
            with ThreadPoolExecutor(min(workers, len(batches)), thread_name_prefix="pbrbot-embed") as pool:
                for _ in pool.map(one, batches):  # raises the first batch's error
                    pass

    def warm(self) -> None:
        """Start the session now rather than at the first text."""
        self._session()

    def encode_query(self, text: str) -> np.ndarray:
        return self._run(self._session(), [self.tokenizer.encode(text)])[0].astype(np.float32)
