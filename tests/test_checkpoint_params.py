"""D16 parameter count from checkpoint headers (checkpoint.params): files written here with
the real writer libraries (safetensors.torch / safetensors.numpy, torch.save, onnx.helper
with external data, gguf.GGUFWriter with quantised types), every expected count worked by
hand from the shapes the test wrote; packed 4-bit (GPTQ-like and MLX-like), tied
embeddings (shared storage, aliased offsets, a declared tie), experts (indexed, fused,
GGUF), a wrong index total_size; truncated and malformed headers refused in one line
naming the file and the byte offset; score recomputing from the evidence alone."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from probehelpers import by_id, collect_and_score, score_context
from safetensors import safe_open
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch

from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.jsonio import read as read_json
from harness.jsonio import write as write_json
from harness.probes.base import ScoreContext
from harness.probes.checkpoints import ParamsArgs, ParamsProbe
from harness.schema import SutSpec

ARGS = ParamsArgs()


def count_dataset(path: Path, tmp: Path) -> tuple[dict[str, Any], Any, Path]:
    """collect + score with `path` given as --dataset checkpoint=PATH."""
    root = tmp / "evidence"
    _failures, result = collect_and_score(ParamsProbe(), ARGS, root, {"checkpoint": path})
    return by_id(result), result, root


def write_config(folder: Path, config: dict[str, Any]) -> None:
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")


def one_line(error: BadInput) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


# ------------------------------------------------------------------ safetensors


def test_single_safetensors_counts_every_element_and_hashes_only_the_header(tmp_path: Path):
    tensors = {
        "embed.weight": torch.zeros(100, 8),
        "layer.weight": torch.zeros(8, 8, dtype=torch.bfloat16),
        "layer.bias": torch.zeros(8, dtype=torch.float16),
        "scalar": torch.zeros(()),
    }
    path = tmp_path / "model.safetensors"
    save_torch(tensors, str(path))
    expected = 100 * 8 + 8 * 8 + 8 + 1  # = 873
    with safe_open(str(path), framework="numpy") as f:  # the library's own reading
        library = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())  # noqa: SIM118
    assert library == expected
    got, _result, root = count_dataset(path, tmp_path)
    total = got["parameters_total"]
    assert total.value == expected and total.unit == "count" and total.exact
    assert total.invalid_reason == ""
    assert got["parameters_active"].value == expected  # no experts
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = read_json(root / "checkpoint.json")["files"][0]
    assert header["header_bytes"] == 8 + length < len(raw)
    assert header["header_sha256"] == hashlib.sha256(raw[: 8 + length]).hexdigest()
    assert header["size"] == len(raw)
    table = {t["name"]: t for t in read_json(root / "tensors.json")["tensors"]}
    assert table["layer.weight"]["dtype"] == "BF16" and table["layer.weight"]["shape"] == [8, 8]
    assert table["scalar"]["counted"] == 1 and table["scalar"]["class"] == "weight"


def test_sharded_index_with_a_wrong_total_size_is_reported_not_trusted(tmp_path: Path):
    shard1 = {"a.weight": np.zeros((16, 4), np.float32), "b.weight": np.zeros((3,), np.float16)}
    shard2 = {"c.weight": np.zeros((5, 5), np.int8)}
    save_numpy(shard1, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_numpy(shard2, str(tmp_path / "model-00002-of-00002.safetensors"))
    stored = 16 * 4 * 4 + 3 * 2 + 25 * 1  # bytes: 287
    index = {
        "metadata": {"total_size": 999},
        "weight_map": {
            "a.weight": "model-00001-of-00002.safetensors",
            "b.weight": "model-00001-of-00002.safetensors",
            "c.weight": "model-00002-of-00002.safetensors",
        },
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    # a .bin copy beside the safetensors ones must not be counted a second time
    torch.save({"a.weight": torch.zeros(16, 4)}, tmp_path / "pytorch_model.bin")
    got, _result, _root = count_dataset(tmp_path, tmp_path / "run")
    total = got["parameters_total"]
    assert total.value == 64 + 3 + 25
    details = total.details
    assert details["ignored_files"] == ["pytorch_model.bin"]
    claim = next(c for c in details["claims"] if c["field"] == "metadata.total_size")
    assert claim["agrees"] is False and claim["stored_bytes"] == stored
    assert claim["difference_bytes"] == 999 - stored
    assert details["index"]["missing"]["count"] == 0
    assert total.invalid_reason == ""  # a claim is reported, the tensors decide


def test_index_naming_a_tensor_the_shard_lacks_is_reported(tmp_path: Path):
    save_numpy({"a": np.zeros((2, 2), np.float32)}, str(tmp_path / "s1.safetensors"))
    index = {"weight_map": {"a": "s1.safetensors", "ghost": "s1.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    got, _r, _root = count_dataset(tmp_path, tmp_path / "run")
    assert got["parameters_total"].value == 4
    assert got["parameters_total"].details["index"]["missing"]["first"] == ["ghost"]


# ------------------------------------------------------------------ packed low-bit


IN, OUT, GROUP = 64, 16, 32


def gptq_layer(prefix: str) -> dict[str, np.ndarray]:
    """A GPTQ-like 4-bit linear IN -> OUT: qweight int32 [IN*4/32, OUT] holds 8 int4 values
    per element; qzeros [IN/GROUP, OUT*4/32], scales [IN/GROUP, OUT], g_idx [IN]."""
    return {
        f"{prefix}.qweight": np.zeros((IN * 4 // 32, OUT), np.int32),
        f"{prefix}.qzeros": np.zeros((IN // GROUP, OUT * 4 // 32), np.int32),
        f"{prefix}.scales": np.zeros((IN // GROUP, OUT), np.float16),
        f"{prefix}.g_idx": np.zeros((IN,), np.int32),
        f"{prefix}.bias": np.zeros((OUT,), np.float16),
    }


def test_gptq_packed_weights_count_logical_values_and_skip_side_tensors(tmp_path: Path):
    tensors = {**gptq_layer("model.layers.0.mlp"), "model.norm.weight": np.zeros(16, np.float16)}
    save_numpy(tensors, str(tmp_path / "model.safetensors"))
    write_config(
        tmp_path, {"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": GROUP}}
    )
    got, _r, root = count_dataset(tmp_path, tmp_path / "run")
    # qweight: 8 x 16 int32 = 128 storage elements = 1024 int4 values = IN x OUT
    assert IN * OUT == 1024
    total = got["parameters_total"]
    assert total.value == IN * OUT + OUT + 16
    assert total.invalid_reason == ""
    classes = total.details["classes"]
    assert classes["packed"] == {"tensors": 1, "stored_elements": 128, "counted": 1024}
    assert classes["side"]["tensors"] == 3  # qzeros, scales, g_idx: listed, not counted
    assert classes["side"]["counted"] == 0
    table = {t["name"]: t for t in read_json(root / "tensors.json")["tensors"]}
    assert table["model.layers.0.mlp.g_idx"]["class"] == "side"
    assert table["model.layers.0.mlp.qweight"]["counted"] == 1024


def test_packed_weights_with_wrong_or_missing_bits_make_the_count_invalid(tmp_path: Path):
    save_numpy(gptq_layer("l"), str(tmp_path / "model.safetensors"))
    write_config(tmp_path, {"quantization_config": {"bits": 8, "group_size": GROUP}})
    got, _r, _root = count_dataset(tmp_path, tmp_path / "run8")
    assert got["parameters_total"].value == IN * OUT // 2 + OUT  # what 8 bits would give
    assert "bits or group size disagree" in got["parameters_total"].invalid_reason
    (tmp_path / "config.json").unlink()
    got, _r, _root = count_dataset(tmp_path, tmp_path / "run-none")
    assert "no quantisation bits" in got["parameters_total"].invalid_reason


def test_mlx_u32_packing_with_quantisation_biases(tmp_path: Path):
    # MLX: weight U32 [OUT, IN*4/32], scales and biases [OUT, IN/64]; a real bias [OUT]
    tensors = {
        "model.proj.weight": np.zeros((OUT, IN * 4 // 32), np.uint32),
        "model.proj.scales": np.zeros((OUT, IN // 64), np.float16),
        "model.proj.biases": np.zeros((OUT, IN // 64), np.float16),
        "model.proj.bias": np.zeros((OUT,), np.float16),
        "model.head.weight": np.zeros((OUT, IN * 8 // 32), np.uint32),  # 8-bit override
        "model.head.scales": np.zeros((OUT, IN // 64), np.float16),
        "model.head.biases": np.zeros((OUT, IN // 64), np.float16),
    }
    save_numpy(tensors, str(tmp_path / "model.safetensors"))
    write_config(
        tmp_path,
        {
            "quantization": {
                "group_size": 64,
                "bits": 4,
                "model.head": {"group_size": 64, "bits": 8},
            }
        },
    )
    got, _r, _root = count_dataset(tmp_path, tmp_path / "run")
    total = got["parameters_total"]
    assert total.value == IN * OUT + OUT + IN * OUT  # proj, its bias, head
    assert total.invalid_reason == ""
    assert total.details["classes"]["side"]["tensors"] == 4


# ------------------------------------------------------------------ tied tensors


def test_declared_tie_counts_the_lm_head_once(tmp_path: Path):
    tensors = {
        "model.embed_tokens.weight": torch.zeros(50, 8),
        "lm_head.weight": torch.zeros(50, 8),  # a stored copy of the tied head
        "model.norm.weight": torch.zeros(8),
    }
    save_torch(tensors, str(tmp_path / "model.safetensors"))
    write_config(tmp_path, {"tie_word_embeddings": True})
    got, _r, _root = count_dataset(tmp_path, tmp_path / "tied")
    assert got["parameters_total"].value == 50 * 8 + 8
    assert got["parameters_total"].details["classes"]["shared"]["tensors"] == 1
    write_config(tmp_path, {"tie_word_embeddings": False})
    got, _r, _root = count_dataset(tmp_path, tmp_path / "untied")
    assert got["parameters_total"].value == 2 * 50 * 8 + 8


def test_aliased_safetensors_offsets_count_once(tmp_path: Path):
    # the safetensors library never writes (nor reads) aliases; a hand-made header does
    header = {
        "embed.weight": {"dtype": "F32", "shape": [4, 2], "data_offsets": [0, 32]},
        "head.weight": {"dtype": "F32", "shape": [4, 2], "data_offsets": [0, 32]},
        "norm.weight": {"dtype": "F32", "shape": [2], "data_offsets": [32, 40]},
    }
    blob = json.dumps(header).encode()
    path = tmp_path / "alias.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(40))
    got, _r, root = count_dataset(path, tmp_path / "run")
    assert got["parameters_total"].value == 8 + 2
    table = {t["name"]: t for t in read_json(root / "tensors.json")["tensors"]}
    assert table["head.weight"]["class"] == "shared" and table["head.weight"]["counted"] == 0


def test_torch_checkpoint_lazily_with_shared_storage_and_optimizer_state(tmp_path: Path):
    torch.manual_seed(0)
    emb = torch.nn.Embedding(30, 6)
    head = torch.nn.Linear(6, 30, bias=False)
    head.weight = emb.weight  # tied: one storage
    proj = torch.nn.Linear(6, 6)
    model = torch.nn.ModuleDict({"emb": emb, "head": head, "proj": proj})
    optimizer = torch.optim.Adam(model.parameters())
    model["proj"](torch.zeros(1, 6)).sum().backward()
    optimizer.step()  # exp_avg / exp_avg_sq: tensors that are not parameters
    path = tmp_path / "train.pt"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3}, path)
    got, _r, root = count_dataset(path, tmp_path / "run")
    assert got["parameters_total"].value == 30 * 6 + 6 * 6 + 6
    head_json = read_json(root / "checkpoint.json")
    assert "the 'model' entry" in head_json["notes"][0]
    table = {t["name"]: t for t in read_json(root / "tensors.json")["tensors"]}
    assert {table["emb.weight"]["class"], table["head.weight"]["class"]} == {"weight", "shared"}
    assert not any(n.startswith("optimizer") for n in table)


# ------------------------------------------------------------------ experts


def test_moe_indexed_experts_total_and_active(tmp_path: Path):
    d, ff, experts, k, layers = 8, 16, 4, 2, 2
    tensors = {"model.embed_tokens.weight": torch.zeros(20, d)}
    for layer in range(layers):
        p = f"model.layers.{layer}"
        tensors[f"{p}.self_attn.q_proj.weight"] = torch.zeros(d, d)
        tensors[f"{p}.block_sparse_moe.gate.weight"] = torch.zeros(experts, d)
        for e in range(experts):
            for w, shape in (("w1", (ff, d)), ("w2", (d, ff)), ("w3", (ff, d))):
                tensors[f"{p}.block_sparse_moe.experts.{e}.{w}.weight"] = torch.zeros(shape)
    save_torch(tensors, str(tmp_path / "model.safetensors"))
    write_config(tmp_path, {"num_local_experts": experts, "num_experts_per_tok": k})
    got, _r, _root = count_dataset(tmp_path, tmp_path / "run")
    per_expert = 3 * ff * d  # 384
    always = 20 * d + layers * (d * d + experts * d)  # 160 + 2 * 96 = 352
    assert got["parameters_total"].value == always + layers * experts * per_expert  # 3424
    assert got["parameters_active"].value == always + layers * k * per_expert  # 1888
    assert got["parameters_active"].invalid_reason == ""
    assert got["parameters_total"].details["classes"]["expert"]["tensors"] == 24


def test_moe_fused_experts_and_missing_per_token(tmp_path: Path):
    tensors = {
        "model.layers.0.mlp.experts.gate_up_proj": np.zeros((8, 4, 6), np.float32),
        "model.layers.0.mlp.experts.down_proj": np.zeros((8, 3, 4), np.float32),
        "model.layers.0.mlp.shared_expert.up.weight": np.zeros((4, 4), np.float32),
        "model.layers.0.mlp.router.weight": np.zeros((8, 4), np.float32),
    }
    save_numpy(tensors, str(tmp_path / "model.safetensors"))
    write_config(tmp_path, {"text_config": {"num_local_experts": 8, "num_experts_per_tok": 1}})
    got, _r, _root = count_dataset(tmp_path, tmp_path / "run")
    assert got["parameters_total"].value == 192 + 96 + 16 + 32
    assert got["parameters_active"].value == (192 + 96) // 8 + 16 + 32
    write_config(tmp_path, {"num_local_experts": 8})
    got, result, _root = count_dataset(tmp_path, tmp_path / "run2")
    assert "parameters_active" not in got
    assert "experts per token" in result.unmeasured[0].reason


def test_moe_config_disagreeing_with_the_tensors_makes_active_invalid(tmp_path: Path):
    tensors = {f"l.0.experts.{e}.w.weight": np.zeros((2, 2), np.float32) for e in range(3)}
    save_numpy(tensors, str(tmp_path / "model.safetensors"))
    write_config(tmp_path, {"num_experts": 4, "num_experts_per_tok": 1})
    got, _r, _root = count_dataset(tmp_path, tmp_path / "run")
    assert got["parameters_total"].value == 12
    assert got["parameters_total"].invalid_reason == ""
    assert "declares 4 experts" in got["parameters_active"].invalid_reason


# ------------------------------------------------------------------ ONNX


def onnx_model(folder: Path) -> Path:
    """MatMul with W [32, 8] and a bias [8]; DequantizeLinear of an int8 [8, 8] weight with
    its scale and zero point; com.microsoft MatMulNBits with K = 32, N = 8, 4 bits, blocks
    of 16: B uint8 [8, 2, 8] (512 storage bytes hold 256 int4 values = K x N) and scales
    [16]. All initializers in one external data file."""
    rng = np.random.default_rng(0)
    inits = [
        onnx.numpy_helper.from_array(rng.normal(size=(32, 8)).astype(np.float32), "W"),
        onnx.numpy_helper.from_array(np.zeros(8, np.float32), "bias"),
        onnx.numpy_helper.from_array(np.ones((8, 8), np.int8), "Wq"),
        onnx.numpy_helper.from_array(np.array(0.1, np.float32), "Wq_scale"),
        onnx.numpy_helper.from_array(np.array(0, np.int8), "Wq_zp"),
        onnx.numpy_helper.from_array(np.zeros((8, 2, 8), np.uint8), "B4"),
        onnx.numpy_helper.from_array(np.ones(16, np.float32), "B4_scales"),
    ]
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["h"]),
        helper.make_node("Add", ["h", "bias"], ["h2"]),
        helper.make_node("DequantizeLinear", ["Wq", "Wq_scale", "Wq_zp"], ["Wd"]),
        helper.make_node("MatMul", ["h2", "Wd"], ["h3"]),
        helper.make_node(
            "MatMulNBits",
            ["X", "B4", "B4_scales"],
            ["Y2"],
            domain="com.microsoft",
            K=32,
            N=8,
            bits=4,
            block_size=16,
        ),
        helper.make_node("Add", ["h3", "Y2"], ["Y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 32])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 8])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    )
    path = folder / "model.onnx"
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    return path


def test_onnx_initializers_with_external_data(tmp_path: Path):
    path = onnx_model(tmp_path)
    loaded = onnx.load(str(path), load_external_data=False)
    assert all(t.data_location == TensorProto.EXTERNAL for t in loaded.graph.initializer)
    got, _r, root = count_dataset(path, tmp_path / "run")
    assert got["parameters_total"].value == 32 * 8 + 8 + 8 * 8 + 32 * 8  # 584
    assert got["parameters_total"].invalid_reason == ""
    table = {t["name"]: t for t in read_json(root / "tensors.json")["tensors"]}
    assert {n for n, t in table.items() if t["class"] == "side"} == {
        "Wq_scale",
        "Wq_zp",
        "B4_scales",
    }
    assert table["B4"]["class"] == "packed" and table["B4"]["counted"] == 256
    files = read_json(root / "checkpoint.json")["files"]
    assert files[1]["path"] == "weights.bin" and files[1]["header_bytes"] == 0


def test_onnx_truncated_external_data_names_file_and_offset(tmp_path: Path):
    path = onnx_model(tmp_path)
    data = tmp_path / "weights.bin"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(BadInput) as error:
        ParamsProbe().check_datasets(ARGS, {"checkpoint": path})
    text = one_line(error.value)
    assert "weights.bin" in text and "byte offset" in text and "truncated" in text


def test_onnx_truncated_model_file_names_the_offset(tmp_path: Path):
    path = onnx_model(tmp_path)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(BadInput) as error:
        ParamsProbe().check_datasets(ARGS, {"checkpoint": path})
    assert "model.onnx: byte offset" in one_line(error.value)


# ------------------------------------------------------------------ GGUF


def write_gguf(path: Path) -> None:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_uint32("llama.expert_count", 4)
    writer.add_uint32("llama.expert_used_count", 2)
    writer.add_string("general.size_label", "1K")
    rng = np.random.default_rng(0)
    embed = rng.normal(size=(10, 64)).astype(np.float32)  # numpy (10, 64) = GGML [64, 10]
    writer.add_tensor("token_embd.weight", embed)
    weight = rng.normal(size=(3, 64)).astype(np.float32)
    q4 = gguf.quants.quantize(weight, gguf.GGMLQuantizationType.Q4_0)  # 3 x 36 bytes
    writer.add_tensor("blk.0.attn_q.weight", q4, raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    q8 = gguf.quants.quantize(weight, gguf.GGMLQuantizationType.Q8_0)  # 3 x 68 bytes
    writer.add_tensor("blk.0.attn_k.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.ffn_gate_exps.weight", np.zeros((4, 2, 32), np.float16))
    writer.add_tensor("blk.0.ffn_gate_inp.weight", np.zeros((4, 32), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_gguf_counts_logical_elements_of_quantised_types_in_numpy_order(tmp_path: Path):
    path = tmp_path / "model.gguf"
    write_gguf(path)
    got, _r, root = count_dataset(path, tmp_path / "run")
    expected = 640 + 192 + 192 + 256 + 128  # Q4_0 and Q8_0: 192 values each, not bytes
    total = got["parameters_total"]
    assert total.value == expected == 1408
    table = {t["name"]: t for t in read_json(root / "tensors.json")["tensors"]}
    assert table["token_embd.weight"]["shape"] == [10, 64]  # reversed from GGML's [64, 10]
    assert table["blk.0.attn_q.weight"]["dtype"] == "Q4_0"
    assert table["blk.0.attn_q.weight"]["end"] - table["blk.0.attn_q.weight"]["start"] == 108
    # experts from the GGUF key-values: 4 experts, 2 used per token
    assert got["parameters_active"].value == expected - 256 + 128
    label = next(c for c in total.details["claims"] if c["field"] == "general.size_label")
    assert label["value"] == 1000 and label["agrees"] is False
    reader = gguf.GGUFReader(str(path))
    header = read_json(root / "checkpoint.json")["files"][0]
    assert header["header_bytes"] == reader.data_offset
    raw = path.read_bytes()[: reader.data_offset]
    assert header["header_sha256"] == hashlib.sha256(raw).hexdigest()


def test_gguf_wrong_magic_and_truncated_header(tmp_path: Path):
    path = tmp_path / "model.gguf"
    write_gguf(path)
    raw = path.read_bytes()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUX" + raw[4:])
    with pytest.raises(BadInput) as error:
        ParamsProbe().check_datasets(ARGS, {"checkpoint": bad})
    assert one_line(error.value).startswith(f"{bad}: byte offset 0: not a GGUF file")
    bad.write_bytes(raw[:60])  # inside the key-values
    with pytest.raises(BadInput) as error:
        ParamsProbe().check_datasets(ARGS, {"checkpoint": bad})
    text = one_line(error.value)
    assert "byte offset" in text and "truncated header" in text and "file ends at 60" in text


# ------------------------------------------------------------------ bad safetensors


def test_truncated_safetensors_header_names_the_offset(tmp_path: Path):
    path = tmp_path / "model.safetensors"
    save_torch({"w": torch.zeros(4, 4)}, str(path))
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[: 8 + length // 2])
    with pytest.raises(BadInput) as error:
        ParamsProbe().check_datasets(ARGS, {"checkpoint": cut})
    text = one_line(error.value)
    assert text.startswith(f"{cut}: byte offset {8 + length // 2}: truncated header")
    cut.write_bytes(raw[:5])
    with pytest.raises(BadInput) as error:
        ParamsProbe().check_datasets(ARGS, {"checkpoint": cut})
    assert "byte offset 5" in one_line(error.value)
    cut.write_bytes(raw[:-10])  # header whole, data cut
    with pytest.raises(BadInput) as error:
        ParamsProbe().check_datasets(ARGS, {"checkpoint": cut})
    assert f"byte offset {len(raw)}" in one_line(error.value)
    assert raw[8:9] == b"{"
    cut.write_bytes(raw[:8] + b"@" + raw[9:])  # not JSON from its first byte
    with pytest.raises(BadInput) as error:
        ParamsProbe().check_datasets(ARGS, {"checkpoint": cut})
    assert "byte offset 8: header is not JSON" in one_line(error.value)


# ------------------------------------------------------------------ sources and audit


def test_dev_checkpoint_is_counted_and_never_decides(tmp_path: Path):
    _f, result = collect_and_score(ParamsProbe(), ARGS, tmp_path / "ev")
    got = by_id(result)
    # 64 x 16 embedding (the tied head stored once); per layer 4 x 16 x 16 attention, 16
    # norm, 4 x 16 router, 4 experts x (32 x 16 + 16 x 32); a final 16 norm
    layer = 4 * 256 + 16 + 64 + 4 * (512 + 512)
    assert got["parameters_total"].value == 1024 + 2 * layer + 16
    assert got["parameters_active"].value == 1024 + 2 * (layer - 2 * 1024) + 16
    assert "dev checkpoint" in got["parameters_total"].invalid_reason
    assert "dev checkpoint" in got["parameters_active"].invalid_reason


def test_submission_checkpoint_relative_to_its_folder(tmp_path: Path):
    folder = tmp_path / "submission" / "ckpt"
    folder.mkdir(parents=True)
    save_torch({"w": torch.zeros(7, 3)}, str(folder / "model.safetensors"))
    sut = SutSpec.model_validate({"adapter": "http", "checkpoint": "ckpt"})
    root = tmp_path / "ev"
    probe = ParamsProbe()
    from harness.evidence import EvidenceWriter
    from harness.probes.base import CollectContext

    probe.collect(
        CollectContext(
            task_id="t",
            args=ARGS,
            sut=sut,
            device="cpu",
            seed=0,
            quick=False,
            evidence=EvidenceWriter(root),
            sut_base_dir=tmp_path / "submission",
        )
    )
    ctx = ScoreContext(task_id="t", args=ARGS, confidence=0.95, hardware=None, sut=sut)
    result = probe.score(EvidenceReader(root), ctx)
    total = by_id(result)["parameters_total"]
    assert total.value == 21 and total.invalid_reason == ""
    # the same evidence scored for a run with no such SUT block: not the applicant's file
    plain = probe.score(EvidenceReader(root), score_context(ARGS))
    assert "dev checkpoint" in by_id(plain)["parameters_total"].invalid_reason


def test_score_recomputes_from_the_evidence_and_catches_an_edited_table(tmp_path: Path):
    save_numpy(gptq_layer("l"), str(tmp_path / "model.safetensors"))
    write_config(tmp_path, {"quantization_config": {"bits": 4, "group_size": GROUP}})
    got, _r, root = count_dataset(tmp_path, tmp_path / "run")
    assert got["parameters_total"].value == IN * OUT + OUT
    table = read_json(root / "tensors.json")
    for t in table["tensors"]:
        if t["name"] == "l.qweight":
            t["counted"] = 10**12  # an inflated count in the evidence
    (root / "tensors.json").unlink()
    write_json(root / "tensors.json", table)
    again = by_id(ParamsProbe().score(EvidenceReader(root), score_context(ARGS, ["checkpoint"])))
    assert again["parameters_total"].value == IN * OUT + OUT  # recomputed, not read
    assert "differ from the recomputation" in again["parameters_total"].invalid_reason
    # and the config copy is checked against its digest
    (root / "config" / "config.json").write_text('{"quantization_config": {"bits": 2}}')
    with pytest.raises(ValueError, match="sha256"):
        ParamsProbe().score(EvidenceReader(root), score_context(ARGS, ["checkpoint"]))


def test_folder_of_several_gguf_files_is_refused(tmp_path: Path):
    write_gguf(tmp_path / "a-Q4.gguf")
    write_gguf(tmp_path / "a-Q8.gguf")
    with pytest.raises(BadInput) as error:
        ParamsProbe().check_datasets(ARGS, {"checkpoint": tmp_path})
    assert "2 gguf files" in one_line(error.value)


def test_mxfp4_fused_experts_are_packed_and_routed(tmp_path: Path):
    # gpt-oss layout: per block of 32 values, 16 uint8 bytes (two FP4 values each) and one
    # uint8 scale; E = 4 experts, 6 rows, 2 blocks per row
    tensors = {
        "model.layers.0.mlp.experts.gate_up_proj_blocks": np.zeros((4, 6, 2, 16), np.uint8),
        "model.layers.0.mlp.experts.gate_up_proj_scales": np.zeros((4, 6, 2), np.uint8),
        "model.layers.0.mlp.experts.gate_up_proj_bias": np.zeros((4, 6), np.float32),
        "model.layers.0.mlp.router.weight": np.zeros((4, 64), np.float32),
    }
    save_numpy(tensors, str(tmp_path / "model.safetensors"))
    write_config(
        tmp_path,
        {
            "num_local_experts": 4,
            "experts_per_token": 1,
            "quantization_config": {"quant_method": "mxfp4"},
        },
    )
    got, _r, _root = count_dataset(tmp_path, tmp_path / "run")
    blocks = 4 * 6 * 2 * 32  # 1536 logical FP4 values (768 bytes)
    assert got["parameters_total"].value == blocks + 24 + 256
    assert got["parameters_total"].invalid_reason == ""
    assert got["parameters_active"].value == (blocks + 24) // 4 + 256


def test_torch_shards_with_an_index(tmp_path: Path):
    torch.save({"a": torch.zeros(3, 3)}, tmp_path / "pytorch_model-00001-of-00002.bin")
    torch.save({"b": torch.zeros(5)}, tmp_path / "pytorch_model-00002-of-00002.bin")
    index = {
        "metadata": {"total_size": 56},
        "weight_map": {
            "a": "pytorch_model-00001-of-00002.bin",
            "b": "pytorch_model-00002-of-00002.bin",
        },
    }
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    got, _r, root = count_dataset(tmp_path, tmp_path / "run")
    assert got["parameters_total"].value == 9 + 5
    claim = got["parameters_total"].details["claims"][0]
    assert claim["agrees"] is True and claim["stored_bytes"] == 56  # 14 float32
    files = read_json(root / "checkpoint.json")["files"]
    assert [f["format"] for f in files] == ["torch-index", "torch", "torch"]
