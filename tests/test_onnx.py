"""The onnx / onnx-int8 backends: built from safetensors without torch, agreeing with the torch vectors,
cached once per model; and a default CLI process never imports torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pbrbot.config import load_settings
from pbrbot.embedding_onnx import FP32_FILE, INT8_FILE, OnnxEmbedder, onnx_dir
from pbrbot.errors import PbrbotError

pytestmark = pytest.mark.slow
HEAVY = ("torch", "sentence_transformers", "transformers")
# What a cold `pbrbot ask` on an indexed archive has no use for: building the model (onnx, safetensors), the
# other commands' modules and libraries (fetching, parsing feeds and pages, Discord), pydantic-settings.
NOT_FOR_ASK = ("onnx", "safetensors", "pydantic_settings", "httpx", "feedparser", "trafilatura", "lxml",
               "discord", "asyncio", "pbrbot.watch", "pbrbot.alerts", "pbrbot.chat", "pbrbot.bench",
               "pbrbot.fit", "pbrbot.cli.archive", "pbrbot.cli.chat")


@pytest.fixture(scope="module")
def passages(sample_services):
    from pbrbot.indexer import embedding_text

    rows = sample_services.store.db.execute("select posts.title, p.text from passages p "
                                            "join posts on posts.id = p.post_id order by p.id").fetchall()
    return [embedding_text(title, text) for title, text in rows]


@pytest.mark.parametrize(("quantized", "mean_min", "min_min"), [(False, 0.9999, 0.9999), (True, 0.99, 0.98)])
def test_vectors_agree_with_torch(onnx_cache, torch_embedder, passages, quantized, mean_min, min_min):
    onnx = OnnxEmbedder(load_settings(model_cache_dir=onnx_cache), quantized=quantized)
    # fp32 vectors share the torch ones' name (one index serves both), int8 ones have their own
    assert (onnx.name, onnx.dim) == (torch_embedder.name + ("+int8" if quantized else ""), torch_embedder.dim)
    got = onnx.encode(passages, batch_size=16)
    want = torch_embedder.encode(passages)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    cos = (got * want).sum(axis=1)
    print(f"{'int8' if quantized else 'fp32'}: {len(passages)} passages, cosine mean {cos.mean():.5f} "
          f"min {cos.min():.5f}")
    assert cos.mean() >= mean_min and cos.min() >= min_min
    query = onnx.encode_query(passages[0])
    # Alone or in a padded batch, a text gets the same vector (int8: activations are quantised per batch).
    assert query.shape == (onnx.dim,) and float(query @ got[0]) > (0.99 if quantized else 0.9999)
    assert onnx.encode([]).shape == (0, onnx.dim)


def test_the_model_is_built_once_with_a_message_and_older_files_are_removed(tmp_path, capsys):
    settings = load_settings(model_cache_dir=tmp_path / "cache", embed_backend="onnx")
    cached = onnx_dir(settings)
    cached.mkdir(parents=True)
    older = [cached / "model.int8.onnx", cached / "model-0123abcd.onnx"]  # names older versions gave
    for path in older:
        path.write_bytes(b"a file made with other settings")
    first = OnnxEmbedder(settings, quantized=False)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("preparing the embedding model (once")
    assert str(cached) in lines[0]
    assert first.path == cached / FP32_FILE and first.path.exists()
    assert not any(path.exists() for path in older)
    again = OnnxEmbedder(settings, quantized=False)  # another process, another archive: reused, silently
    assert capsys.readouterr().err == "" and again.path == first.path
    text = "Payment by results pays providers for the outcomes they achieve."
    assert float(first.encode([text])[0] @ again.encode_query(text)) == pytest.approx(1.0, abs=1e-5)


def test_an_unwritable_cache_builds_in_a_temporary_directory(tmp_path, capsys):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache directory should be")
    onnx = OnnxEmbedder(load_settings(model_cache_dir=blocked, embed_backend="onnx"), quantized=False)
    message = capsys.readouterr().err
    assert "PBRBOT_MODEL_CACHE_DIR" in message and len(message.splitlines()) == 1
    assert not onnx.path.parent.exists()  # held in memory; nothing left behind
    assert onnx.encode(["a sentence"]).shape == (1, onnx.dim)
    assert onnx.encode_query("a sentence").shape == (onnx.dim,)


@pytest.mark.parametrize("quantized", [False, True])
def test_the_session_runs_layer_norms_unfused(tmp_path, onnx_cache, quantized):
    """onnxruntime's SkipLayerNormalization kernel is ~5x slower than Add + LayerNormalization; neither the
    built file nor the graph the session optimises from it may hold one."""
    import onnx as onnx_format
    import onnxruntime as ort

    from pbrbot.embedding_onnx import DISABLED_OPTIMIZERS

    embedder = OnnxEmbedder(load_settings(model_cache_dir=onnx_cache), quantized=quantized)
    assert embedder.path.name == (INT8_FILE if quantized else FP32_FILE)
    options = embedder.session_options(ort, threads=1)
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(embedder.path), options, providers=["CPUExecutionProvider"],
                         disabled_optimizers=DISABLED_OPTIMIZERS)
    for path in (embedder.path, tmp_path / "optimised.onnx"):
        ops = {node.op_type for node in onnx_format.load(str(path), load_external_data=False).graph.node}
        assert "LayerNormalization" in ops and "SkipLayerNormalization" not in ops, (path.name, sorted(ops))
        assert ("QAttention" if quantized else "Attention") in ops


def _cli(args: list[str], env: dict, modules: tuple[str, ...] = HEAVY) -> tuple[str, list[str]]:
    """Run the pbrbot CLI in a fresh process with default settings; its stdout and which of `modules`
    it imported."""
    code = (
        "import sys\n"
        "from pbrbot.cli import main\n"
        "try:\n"
        f"    main({args!r}, prog_name='pbrbot')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        f"print('HEAVY', sorted(m for m in {modules!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    *out, last = done.stdout.strip().splitlines()
    assert last.startswith("HEAVY ")
    return "\n".join(out), json.loads(last.removeprefix("HEAVY ").replace("'", '"'))


def test_default_ask_and_index_never_import_torch(tmp_path, onnx_cache):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBRBOT_")}
    env["PBRBOT_MODEL_CACHE_DIR"] = str(onnx_cache)
    data = str(tmp_path / "data")
    question = "What does cherry picking mean in payment by results?"
    out, heavy = _cli(["--data-dir", data, "ask", question], env)
    assert heavy == []
    assert "cherry" in out.lower() and "https://www.russellwebster.com/" in out  # sample indexed, asked
    out, heavy = _cli(["--data-dir", data, "index", "--rebuild"], env)
    assert heavy == []
    out, unneeded = _cli(["--data-dir", data, "ask", question], env, modules=HEAVY + NOT_FOR_ASK)
    assert unneeded == [] and "https://www.russellwebster.com/" in out  # the cold ask of an indexed archive


def test_a_remote_model_name_is_a_clear_error(tmp_path):
    with pytest.raises(PbrbotError, match="local model folder"):
        OnnxEmbedder(load_settings(data_dir=tmp_path, model="some-org/some-model"), quantized=True)
