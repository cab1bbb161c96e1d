"""Vectors made by one embedding backend are not searched with another's queries where that moves the eval:
the manifest records the backend, and a switch says what to run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from pbrbot.cli import main
from pbrbot.config import load_settings
from pbrbot.embedding import embedder_name
from pbrbot.vectors import MANIFEST, IndexMismatch, Manifest, VectorIndex


def _saved(data_dir, backend: str) -> None:
    index = VectorIndex(embedder_name(load_settings(embed_backend=backend)), 4, backend=backend)
    index.add([1, 2], np.eye(4, dtype=np.float32)[:2])
    index.save(data_dir)


@pytest.mark.parametrize(("made", "used", "ok"), [
    ("torch", "onnx-int8", False), ("onnx-int8", "torch", False), ("onnx-int8", "onnx", False),
    ("torch", "onnx", True), ("onnx", "torch", True), ("onnx-int8", "onnx-int8", True),
])
def test_an_index_is_searched_only_by_a_backend_of_its_vector_space(tmp_path, made, used, ok):
    _saved(tmp_path, made)
    assert Manifest.read(tmp_path).backend == made
    name = embedder_name(load_settings(embed_backend=used))
    if ok:
        assert VectorIndex.load(tmp_path, name).ids() == {1, 2}
        return
    with pytest.raises(IndexMismatch) as caught:
        VectorIndex.load(tmp_path, name)
    message = str(caught.value)
    assert f"made with the {made} embedding backend" in message
    assert "pbrbot index --rebuild" in message and f"PBRBOT_EMBED_BACKEND={made}" in message
    assert "\n" not in message


def test_an_index_from_when_torch_was_the_default_serves_the_default_backend(tmp_path):
    _saved(tmp_path, "torch")
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    del manifest["backend"]  # as pbrbot wrote it before the backend was recorded
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    assert VectorIndex.load(tmp_path, embedder_name(load_settings())).ids() == {1, 2}  # no rebuild needed
    with pytest.raises(IndexMismatch, match="made with the torch embedding backend"):
        VectorIndex.load(tmp_path, embedder_name(load_settings(embed_backend="onnx-int8")))


@pytest.mark.slow
def test_ask_after_a_backend_switch_is_a_one_line_error(tmp_path, sample_services):
    from conftest import copy_archive

    data = copy_archive(sample_services, tmp_path / "data")
    assert Manifest.read(data).backend == "onnx"  # the default backend made the sample's index
    done = CliRunner().invoke(main, ["--data-dir", str(data), "ask", "What is cherry picking?"],
                              env={"PBRBOT_EMBED_BACKEND": "onnx-int8"})
    assert done.exit_code != 0 and done.exception is None or isinstance(done.exception, SystemExit)
    lines = [line for line in done.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "pbrbot index --rebuild" in lines[0], done.output
    assert "PBRBOT_EMBED_BACKEND=onnx" in lines[0]
