"""Workloads end to end through `harness run`: a real ONNX model behind the onnx adapter in
every LoadGen scenario, and the same model behind a command adapter (batch mode) and an HTTP
adapter (a local server started here). Verdicts, LoadGen's logs in the evidence, audit."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

WEIGHTS = np.random.default_rng(7).standard_normal((16, 4)).astype(np.float32)


def _model(path: Path) -> Path:
    """y = relu(x @ W): a real ONNX graph with known weights."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(WEIGHTS, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    from harness.cli import main

    monkeypatch.setattr("sys.argv", ["harness", *argv])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0)


def _suite(tasks: str, indicators: str) -> str:
    return (
        "schema: harness.suite/v1\nid: workloads-test\nversion: 0.0.1\ndirection: D04\n"
        "title: workloads\nsource: test\ntasks:\n" + tasks + "indicators:\n" + indicators
    )


# latency has LoadGen's early-stopping bound from one run; throughput and QPS need >= 5 runs
# for a 95% bound on their median: Offline makes 5 short ones, Server one (so it cannot pass)
ALL_SCENARIOS = """\
  - id: single
    probe: inference.loadgen
    args: {scenario: SingleStream, dataset: {kind: random_tensor, shape: [1, 16], count: 32},
           min_duration_s: 0.3, min_query_count: 50, performance_runs: 1}
  - id: multi
    probe: inference.loadgen
    args: {scenario: MultiStream, samples_per_query: 4,
           dataset: {kind: random_tensor, shape: [1, 16], count: 32},
           min_duration_s: 0.3, min_query_count: 50, performance_runs: 1}
  - id: server
    probe: inference.loadgen
    args: {scenario: Server, target_qps: 200, latency_bound_ms: 50,
           dataset: {kind: random_tensor, shape: [1, 16], count: 32},
           min_duration_s: 0.3, min_query_count: 50, performance_runs: 1}
  - id: offline
    probe: inference.loadgen
    args: {scenario: Offline, dataset: {kind: random_tensor, shape: [1, 16], count: 32},
           min_duration_s: 0.05, min_query_count: 50, accuracy: true, performance_runs: 5}
"""
ALL_INDICATORS = """\
  - {id: p90, title: p90, metric: single.latency_p90, op: "<=", target: 1000, unit: ms, source: t}
  - {id: p99, title: p99, metric: multi.latency_p99, op: "<=", target: 1000, unit: ms, source: t}
  - {id: qps, title: qps, metric: server.server_qps, op: ">=", target: 1, unit: queries/s,
     source: t}
  - {id: thr, title: thr, metric: offline.throughput, op: ">=", target: 1, unit: samples/s,
     source: t}
"""


def test_onnx_model_through_every_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    _model(tmp_path / "tiny.onnx")
    (tmp_path / "suite.yaml").write_text(_suite(ALL_SCENARIOS, ALL_INDICATORS))
    (tmp_path / "sub.yaml").write_text(
        "applicant: A\nproduct: B\nsuite: workloads-test\n"
        "sut: {adapter: onnx, model: tiny.onnx, providers: [CPUExecutionProvider]}\n"
    )
    out = tmp_path / "run"
    argv = ["run", str(tmp_path / "suite.yaml"), "--submission", str(tmp_path / "sub.yaml")]
    assert _run([*argv, "--out", str(out)], monkeypatch) == 0
    predicate = json.loads((out / "statement.json").read_text())["predicate"]
    verdicts = {v["indicator"]: v for v in predicate["verdicts"]}
    measured = {m["id"]: m for m in predicate["measurements"]}
    for indicator, metric in [
        ("p90", "single.latency_p90"),
        ("p99", "multi.latency_p99"),
        ("qps", "server.server_qps"),
        ("thr", "offline.throughput"),
    ]:
        verdict = verdicts[indicator]
        assert metric in measured, metric
        assert measured[metric]["value"] > 0
        # short runs may be INVALID by LoadGen's rules: then the verdict says so, never PASS
        if measured[metric]["invalid_reason"]:
            assert verdict["status"] == "INCONCLUSIVE"
            assert "LoadGen" in verdict["reason"]
        elif indicator == "qps":  # one Server run: no bound on the median QPS
            assert verdict["status"] == "INCONCLUSIVE"
            assert (
                "need at least 5 LoadGen performance runs for a 95% bound (have 1)"
                in (verdict["reason"])
            )
        else:
            assert verdict["status"] == "PASS", verdict["reason"]
    throughput = measured["offline.throughput"]
    rates = sorted(r["value"] for r in throughput["details"]["per_run"])
    assert throughput["repeats"] == len(rates) == 5
    # 5 runs at 95%: the median with the min and max as its bounds (1 - 2^-5 = 0.969)
    assert throughput["value"] == rates[2]
    assert (throughput["ci"]["low"], throughput["ci"]["high"]) == (rates[0], rates[-1])
    for task in ("single", "multi", "server", "offline"):
        logs = list((out / "evidence/tasks" / task).rglob("mlperf_log_summary.txt"))
        assert logs, f"no LoadGen summary for {task}"
        assert measured[f"{task}.failed_samples"]["value"] == 0
    assert measured["offline.accuracy_outputs"]["value"] >= 32
    assert _run(["audit", str(out)], monkeypatch) == 0
    assert _run(["verify", str(out)], monkeypatch) == 0


BATCH_SCRIPT = """\
import sys
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
for line in sys.stdin:
    x = np.array([float(v) for v in line.split()], dtype=np.float32).reshape(1, 16)
    y = session.run(None, {"x": x})[0]
    print(" ".join(f"{v:.6f}" for v in y.ravel()), flush=True)
"""

TEXT_TASK = """\
  - id: offline
    probe: inference.loadgen
    args: {{scenario: Offline, dataset: {{kind: text_lines, path: {path}}},
           min_duration_s: 0.2, min_query_count: 20, accuracy: true, performance_runs: 1}}
"""
TEXT_INDICATOR = """\
  - {id: thr, title: thr, metric: offline.throughput, op: ">=", target: 1, unit: samples/s,
     source: t}
"""


def _inputs(path: Path, count: int = 24) -> np.ndarray:
    xs = np.random.default_rng(3).standard_normal((count, 16)).astype(np.float32)
    path.write_text("\n".join(" ".join(f"{v:.6f}" for v in row) for row in xs) + "\n")
    return np.array([[float(f"{v:.6f}") for v in row] for row in xs], dtype=np.float32)


def _accuracy_outputs(out: Path) -> dict[int, np.ndarray]:
    """The SUT's answers as LoadGen logged them in accuracy mode (hex bytes per sample),
    decoded here with the formats the probe recorded."""
    run = out / "evidence/tasks/offline/runs/02-accuracy"
    formats = json.loads((run / "formats.json").read_text())
    decoded: dict[int, np.ndarray] = {}
    for entry in json.loads((run / "mlperf_log_accuracy.json").read_text()):
        raw = bytes.fromhex(entry["data"])
        fmt = formats[str(entry["qsl_idx"])]
        if fmt["kind"] == "text":
            values = np.array([float(v) for v in raw.decode().split()])
        else:
            values = np.frombuffer(raw, dtype=np.dtype(fmt["dtype"])).reshape(fmt["shape"])
        decoded[entry["qsl_idx"]] = values.astype(np.float64).ravel()
    return decoded


def _assert_outputs_are_the_model(out: Path, xs: np.ndarray) -> None:
    outputs = _accuracy_outputs(out)
    assert sorted(outputs) == list(range(len(xs)))
    expected = np.maximum(xs.astype(np.float64) @ WEIGHTS.astype(np.float64), 0)
    for index, got in outputs.items():
        assert np.allclose(got, expected[index], atol=1e-4), index


def test_command_adapter_batch_mode_runs_the_real_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    model = _model(tmp_path / "tiny.onnx")
    xs = _inputs(tmp_path / "inputs.txt")
    (tmp_path / "infer.py").write_text(BATCH_SCRIPT)
    suite = _suite(TEXT_TASK.format(path=tmp_path / "inputs.txt"), TEXT_INDICATOR)
    (tmp_path / "suite.yaml").write_text(suite)
    (tmp_path / "sub.yaml").write_text(
        "applicant: A\nproduct: B\nsuite: workloads-test\n"
        f"sut: {{adapter: command, mode: batch, argv: [{sys.executable}, infer.py, {model}],"
        " timeout_s: 20}\n"
    )
    out = tmp_path / "run"
    argv = ["run", str(tmp_path / "suite.yaml"), "--submission", str(tmp_path / "sub.yaml")]
    assert _run([*argv, "--out", str(out)], monkeypatch) == 0
    predicate = json.loads((out / "statement.json").read_text())["predicate"]
    measured = {m["id"]: m for m in predicate["measurements"]}
    assert measured["offline.failed_samples"]["value"] == 0
    assert measured["offline.throughput"]["value"] > 0
    _assert_outputs_are_the_model(out, xs)  # the process really ran the model
    assert _run(["audit", str(out)], monkeypatch) == 0


class _ModelHandler(BaseHTTPRequestHandler):
    session: Any = None

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["input"]
        x = np.array([float(v) for v in text.split()], dtype=np.float32).reshape(1, 16)
        y = self.session.run(None, {"x": x})[0]
        reply = json.dumps({"output": y.ravel().tolist()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def model_server(tmp_path: Path) -> Iterator[str]:
    _ModelHandler.session = ort.InferenceSession(
        str(_model(tmp_path / "served.onnx")), providers=["CPUExecutionProvider"]
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ModelHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/infer"
    finally:
        server.shutdown()
        server.server_close()


def test_http_adapter_against_a_served_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_server: str
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    xs = _inputs(tmp_path / "inputs.txt")
    suite = _suite(TEXT_TASK.format(path=tmp_path / "inputs.txt"), TEXT_INDICATOR)
    (tmp_path / "suite.yaml").write_text(suite)
    (tmp_path / "sub.yaml").write_text(
        "applicant: A\nproduct: B\nsuite: workloads-test\n"
        f"sut: {{adapter: http, url: '{model_server}', timeout_s: 10}}\n"
    )
    out = tmp_path / "run"
    argv = ["run", str(tmp_path / "suite.yaml"), "--submission", str(tmp_path / "sub.yaml")]
    assert _run([*argv, "--out", str(out)], monkeypatch) == 0
    predicate = json.loads((out / "statement.json").read_text())["predicate"]
    measured = {m["id"]: m for m in predicate["measurements"]}
    assert measured["offline.failed_samples"]["value"] == 0
    assert measured["offline.throughput"]["value"] > 0
    _assert_outputs_are_the_model(out, xs)
    assert _run(["audit", str(out)], monkeypatch) == 0
