"""The onnx / onnx-int8 backends: agreement with the torch vectors, and no torch in an onnx process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pbrbot.config import load_settings
from pbrbot.embedding_onnx import FP32_FILE, INT8_FILE, OnnxEmbedder, onnx_dir
from pbrbot.errors import PbrbotError

pytestmark = pytest.mark.slow


def _linked(tmp_path, onnx_cache):
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "onnx").symlink_to(onnx_cache, target_is_directory=True)
    return data


@pytest.fixture(scope="module")
def passages(sample_services):
    from pbrbot.indexer import embedding_text

    rows = sample_services.store.db.execute(
        "select posts.title, p.text from passages p join posts on posts.id = p.post_id order by p.id").fetchall()
    return [embedding_text(title, text) for title, text in rows]


@pytest.mark.parametrize(("quantized", "mean_min", "min_min"), [(False, 0.999, 0.998), (True, 0.99, 0.98)])
def test_vectors_agree_with_torch(tmp_path, onnx_cache, real_embedder, passages, quantized, mean_min, min_min):
    onnx = OnnxEmbedder(load_settings(data_dir=_linked(tmp_path, onnx_cache)), quantized=quantized)
    assert (onnx.name, onnx.dim) == (real_embedder.name, real_embedder.dim)  # same index stays usable
    got = onnx.encode(passages, batch_size=16)
    want = real_embedder.encode(passages)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    cos = (got * want).sum(axis=1)
    print(f"{'int8' if quantized else 'fp32'}: {len(passages)} passages, cosine mean {cos.mean():.4f} "
          f"min {cos.min():.4f}")
    assert cos.mean() >= mean_min and cos.min() >= min_min
    query = onnx.encode_query(passages[0])
    # Alone or in a padded batch, a text gets the same vector (int8: activations are quantised per batch).
    assert query.shape == (onnx.dim,) and float(query @ got[0]) > (0.99 if quantized else 0.9999)
    assert onnx.encode([]).shape == (0, onnx.dim)


def test_files_cached_by_an_older_version_are_not_reused(tmp_path, onnx_cache, passages):
    data = tmp_path / "data"
    settings = load_settings(data_dir=data)
    cached = onnx_dir(settings)
    cached.mkdir(parents=True)
    (cached / FP32_FILE).symlink_to(onnx_cache / cached.name / FP32_FILE)  # the fp32 export is unchanged
    older = [cached / "model.int8.onnx", cached / "model.onnx"]  # names older versions gave their files
    for path in older:
        path.write_bytes(b"a file made with other settings")
    onnx = OnnxEmbedder(settings, quantized=True)  # quantises the fp32 file again (no torch export)
    assert onnx.path == cached / INT8_FILE and onnx.path.exists()
    assert not any(path.exists() for path in older)
    assert onnx.encode(passages[:2]).shape == (2, onnx.dim)


@pytest.mark.parametrize("quantized", [False, True])
def test_the_session_runs_layer_norms_unfused(tmp_path, onnx_cache, quantized):
    """onnxruntime's SkipLayerNormalization kernel is ~5x slower than Add + LayerNormalization; neither the
    exported file nor the graph the session optimises from it may hold one."""
    import onnx as onnx_format
    import onnxruntime as ort

    from pbrbot.embedding_onnx import DISABLED_OPTIMIZERS

    embedder = OnnxEmbedder(load_settings(data_dir=_linked(tmp_path, onnx_cache)), quantized=quantized)
    options = embedder.session_options(ort, threads=1)
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(embedder.path), options, providers=["CPUExecutionProvider"],
                         disabled_optimizers=DISABLED_OPTIMIZERS)
    for path in (embedder.path, tmp_path / "optimised.onnx"):
        ops = {node.op_type for node in onnx_format.load(str(path)).graph.node}
        assert "LayerNormalization" in ops and "SkipLayerNormalization" not in ops, (path.name, sorted(ops))
        assert ("QAttention" if quantized else "Attention") in ops  # the other fusions are kept


def test_an_onnx_process_never_imports_torch(tmp_path, onnx_cache, sample_services):
    data = tmp_path / "data"
    shutil.copytree(sample_services.settings.data_dir, data, ignore=shutil.ignore_patterns("*.lock"))
    (data / "onnx").symlink_to(onnx_cache, target_is_directory=True)
    code = (
        "import json, sys\n"
        "from pbrbot.config import load_settings\n"
        "from pbrbot.services import Services\n"
        f"s = Services(load_settings(data_dir={str(data)!r}, embed_backend='onnx-int8'))\n"
        "a = s.answerer.ask('What does cherry picking mean in payment by results?')\n"
        "print(json.dumps({'found': a.found, 'urls': [q.url for q in a.quotes],\n"
        "  'heavy': sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["heavy"] == []
    assert out["found"] and any("cherry" in url or "commandment" in url for url in out["urls"])


def test_a_remote_model_name_is_a_clear_error(tmp_path):
    with pytest.raises(PbrbotError, match="local model folder"):
        OnnxEmbedder(load_settings(data_dir=tmp_path, model="some-org/some-model"), quantized=True)
