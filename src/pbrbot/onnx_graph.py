"""A BERT sentence-transformers model as an onnxruntime graph, built straight from its model.safetensors.

No torch: the weights are read with safetensors' numpy loader and laid out in the graph onnxruntime's
own BERT optimizer makes of a torch export (EmbedLayerNormalization, Attention with packed Q/K/V,
BiasGelu; Add + LayerNormalization left unfused, see embedding_onnx.DISABLED_OPTIMIZERS). For
all-MiniLM-L6-v2 its output is bit-identical to that export's (fp32 and after quantize_dynamic), which
it replaces: building takes a couple of seconds where the export took ~14 s and needed torch.

Inputs input_ids, attention_mask, token_type_ids (int64, batch x seq, padding on the right: the
Attention kernel reads the mask as a per-row length); output last_hidden_state (float32).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pbrbot.errors import PbrbotError

OPSET = 17
CONTRIB = "com.microsoft"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def bert_config(folder: Path) -> dict:
    """The model's config.json, refused unless it is a BERT encoder this graph reproduces."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    supported = (config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
                 and config.get("position_embedding_type", "absolute") == "absolute")
    if not supported or not (folder / "model.safetensors").exists():
        raise PbrbotError(f"the onnx backends run BERT models with model.safetensors only ({folder}); "
                          "use PBRBOT_EMBED_BACKEND=torch for this model")
    return config


def build_graph(folder: Path):
    """The onnx.ModelProto of the model in `folder` (a sentence-transformers folder: config.json,
    model.safetensors)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    config = bert_config(folder)
    weights = {name.removeprefix("bert."): array for name, array in
               load_file(str(folder / "model.safetensors")).items()}
    eps = float(config.get("layer_norm_eps", 1e-12))
    initializers, nodes = [], []

    def weight(name: str, transpose: bool = False) -> str:
        try:
            array = weights[name]
        except KeyError:
            raise PbrbotError(f"{folder / 'model.safetensors'} has no tensor {name!r}; "
                              "use PBRBOT_EMBED_BACKEND=torch for this model") from None
        initializers.append(numpy_helper.from_array(
            np.ascontiguousarray(array.T if transpose else array, dtype=np.float32), name))
        return name

    def node(op: str, inputs: list[str], output: str, contrib: bool = False, **attributes) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output,
                                      domain=CONTRIB if contrib else None, **attributes))
        return output

    def linear(x: str, prefix: str, output: str) -> str:  # torch's Linear keeps its weight as [out, in]
        return node("Add", [node("MatMul", [x, weight(f"{prefix}.weight", True)], f"{output}.matmul"),
                            weight(f"{prefix}.bias")], output)

    def add_norm(x: str, residual: str, prefix: str, output: str) -> str:
        return node("LayerNormalization", [node("Add", [x, residual], f"{output}.residual"),
                                           weight(f"{prefix}.weight"), weight(f"{prefix}.bias")],
                    output, axis=-1, epsilon=eps)

    for name in INPUTS:
        node("Cast", [name], f"{name}.int32", to=TensorProto.INT32)
    e = "embeddings"
    nodes.append(helper.make_node(
        "EmbedLayerNormalization",
        ["input_ids.int32", "token_type_ids.int32", weight(f"{e}.word_embeddings.weight"),
         weight(f"{e}.position_embeddings.weight"), weight(f"{e}.token_type_embeddings.weight"),
         weight(f"{e}.LayerNorm.weight"), weight(f"{e}.LayerNorm.bias"), "attention_mask.int32"],
        ["embeddings", "mask_index"], name="embeddings", domain=CONTRIB, epsilon=eps))
    x = "embeddings"
    layers = int(config["num_hidden_layers"])
    for i in range(layers):
        p = f"encoder.layer.{i}"
        for part in ("weight", "bias"):  # Q, K and V side by side: one Attention node
            stacked = [weights[f"{p}.attention.self.{k}.{part}"] for k in ("query", "key", "value")]
            weights[f"{p}.attention.qkv.{part}"] = np.concatenate(stacked, axis=0)
        attention = node("Attention", [x, weight(f"{p}.attention.qkv.weight", True),
                                       weight(f"{p}.attention.qkv.bias"), "mask_index"],
                         f"{p}.attention", contrib=True, num_heads=int(config["num_attention_heads"]))
        attention = linear(attention, f"{p}.attention.output.dense", f"{p}.attention.output")
        x = add_norm(attention, x, f"{p}.attention.output.LayerNorm", f"{p}.attention.norm")
        hidden = node("MatMul", [x, weight(f"{p}.intermediate.dense.weight", True)], f"{p}.intermediate")
        hidden = node("BiasGelu", [hidden, weight(f"{p}.intermediate.dense.bias")], f"{p}.gelu", contrib=True)
        hidden = linear(hidden, f"{p}.output.dense", f"{p}.output")
        last = i == layers - 1
        x = add_norm(hidden, x, f"{p}.output.LayerNorm", "last_hidden_state" if last else f"{p}.norm")

    graph = helper.make_graph(
        nodes, "bert",
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"]) for name in INPUTS],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                       ["batch", "seq", int(config["hidden_size"])])],
        initializers)
    model = helper.make_model(graph, producer_name="pbrbot",
                              opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(CONTRIB, 1)])
    onnx.checker.check_model(model)
    return model
