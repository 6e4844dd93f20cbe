"""The `framework` SUT adapter: a D04 applicant's model, labelled set, language-binding
commands and backends given in the submission, run end to end through `harness run`, scored
from the evidence alone (`harness audit`), and refused up front (exit 2) when a declared
program or file is missing."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from harness.probes.framework import ReferenceArgs, load_reference

SUITE = "d04-inference-framework"

# Runs the reference model with onnxruntime and prints, per input line, the model's
# outputs (the CommandSpec contract, output "values").
GOOD = """\
import sys

import numpy as np
import onnxruntime as ort

model, inputs = sys.argv[1], sys.argv[2]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
with open(inputs, encoding="utf-8") as handle:
    rows = [line.split() for line in handle if line.strip()]
x = np.array(rows, dtype=np.float32)
for out in np.asarray(session.run(None, {name: x})[0]).reshape(len(x), -1):
    print(" ".join(f"{v:.9g}" for v in out.tolist()))
"""

# Prints the right number of lines and values, all wrong.
WRONG = """\
import sys

with open(sys.argv[2], encoding="utf-8") as handle:
    for line in handle:
        if line.strip():
            print(" ".join("0.5" for _ in range(10)))
"""


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    from harness.cli import main

    monkeypatch.setattr("sys.argv", ["harness", *argv])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0)


def _command(script: str) -> dict[str, Any]:
    """A binding command: this Python running a script from the submission's folder."""
    return {"argv": [sys.executable, script, "{model}", "{input}"]}


def _submission(folder: Path, sut: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "good.py").write_text(GOOD, encoding="utf-8")
    (folder / "wrong.py").write_text(WRONG, encoding="utf-8")
    path = folder / "submission.yaml"
    data = {"applicant": "A", "product": "F", "suite": SUITE, "sut": sut}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _predicate(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "statement.json").read_text())["predicate"])


def _measurement(predicate: dict[str, Any], mid: str) -> dict[str, Any]:
    return next(m for m in predicate["measurements"] if m["id"] == mid)


def _evidence(out: Path, task: str, name: str) -> Any:
    return json.loads((out / "evidence" / "tasks" / task / name).read_text())


def _write_reference(folder: Path, samples: int) -> tuple[Path, Path]:
    """The harness's own digits MLP (quick size) as the applicant's model.onnx, and the
    first `samples` held-out samples as its labelled set."""
    ref = load_reference(ReferenceArgs(epochs=15), 0)
    folder.mkdir(parents=True, exist_ok=True)
    model, data = folder / "model.onnx", folder / "held_out.npz"
    model.write_bytes(ref.model_bytes)
    np.savez(data, x=ref.x_test[:samples], y=ref.y_test[:samples])
    return model, data


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.mark.usefixtures("config_home")
def test_submitted_bindings_are_run_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindings = {"python": _command("good.py"), "cpp": _command("wrong.py")}
    submission = _submission(tmp_path / "sub", {"adapter": "framework", "bindings": bindings})
    out = tmp_path / "run"
    argv = ["run", SUITE, "--quick", "--submission", str(submission), "--out", str(out)]
    assert _run(argv, monkeypatch) == 0

    predicate = _predicate(out)
    working = _measurement(predicate, "bindings.working_bindings")
    assert working["value"] == 1 and working["n"] == 2
    details = working["details"]
    assert details["python"]["status"] == "ok"
    assert details["python"]["comparison"]["max_rel_err"] <= 1e-6
    assert details["cpp"]["status"].startswith("wrong output: max error")
    assert "top-1 mismatches" in details["cpp"]["status"]
    for lang in ("python", "cpp"):
        assert details[lang]["source"] == "submission (sut.bindings)"
        assert details[lang]["argv"] == bindings[lang]["argv"]
        assert details[lang]["cwd"] == str((tmp_path / "sub").resolve())
    assert "Counted: python. Not counted: cpp (wrong output" in working["method"]
    verdict = next(v for v in predicate["verdicts"] if v["indicator"] == "language_bindings")
    assert verdict["status"] == "FAIL" and verdict["value"] == 1

    # what collect() took from the submission is in the evidence
    index = _evidence(out, "bindings", "bindings.json")
    assert index["source"] == "submission (sut.bindings)"
    assert index["declared"]["cpp"]["argv"] == bindings["cpp"]["argv"]
    reference = _evidence(out, "bindings", "reference.json")
    assert reference["origin"].startswith("harness")  # no sut.model: the suite's default
    backends = _evidence(out, "backends", "backends.json")
    assert backends["source"] == "onnxruntime.get_available_providers()"  # no sut.backends

    assert _run(["audit", str(out)], monkeypatch) == 0

    # score() reads the argv from the evidence: changing it there is an audit mismatch
    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    record_path = tampered / "evidence/tasks/bindings/bindings/cpp.json"
    record = json.loads(record_path.read_text())
    record["declared_argv"] = ["/usr/bin/true", "{input}"]
    record_path.write_text(json.dumps(record))
    assert _run(["audit", str(tampered)], monkeypatch) == 1


@pytest.mark.usefixtures("config_home")
def test_submitted_model_data_and_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "sub"
    model, _ = _write_reference(folder, samples=120)
    sim = _command("good.py")
    sut: dict[str, Any] = {
        "adapter": "framework",
        "model": "model.onnx",  # relative to the submission's folder
        "data": "held_out.npz",
        "bindings": {"python": _command("good.py")},
        "backends": [
            {"name": "cpu", "provider": "CPUExecutionProvider", "chip": "host CPU"},
            {"name": "sim", "command": sim, "chip": "simulated NPU"},
            {"name": "wrong", "command": _command("wrong.py")},
            {"name": "tpu", "provider": "NoSuchExecutionProvider"},
        ],
    }
    submission = _submission(folder, sut)
    out = tmp_path / "run"
    argv = ["run", SUITE, "--quick", "--submission", str(submission), "--out", str(out)]
    assert _run(argv, monkeypatch) == 3  # the tpu backend could not run: recorded, report kept

    predicate = _predicate(out)
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    for task in ("precisions", "bindings", "backends"):
        reference = _evidence(out, task, "reference.json")
        assert reference["origin"] == "submission (sut.model, sut.data)"
        assert reference["model_sha256"] == sha
        assert reference["model"] == str(model.resolve())
    assert _measurement(predicate, "precisions.fp32.accuracy")["n"] == 120
    verified = _measurement(predicate, "precisions.verified_precisions")
    assert verified["details"]["reference_model"]["sha256"] == sha
    assert sha in _measurement(predicate, "bindings.working_bindings")["method"]
    assert _measurement(predicate, "bindings.working_bindings")["value"] == 1

    backends = _measurement(predicate, "backends.working_backends")
    assert backends["value"] == 2 and backends["n"] == 4
    details = backends["details"]
    assert details["cpu"]["status"] == "ok" and details["cpu"]["chip"] == "host CPU"
    assert details["cpu"]["provider"] == "CPUExecutionProvider"
    assert details["sim"]["status"] == "ok" and details["sim"]["argv"] == sim["argv"]
    assert details["wrong"]["status"].startswith("wrong output")
    assert "not available in this onnxruntime" in details["tpu"]["status"]
    index = _evidence(out, "backends", "backends.json")
    assert index["source"] == "submission (sut.backends)"
    assert [b["name"] for b in index["declared"]] == ["cpu", "sim", "wrong", "tpu"]
    assert "backends (source: submission (sut.backends))" in backends["method"]

    assert _run(["audit", str(out)], monkeypatch) == 0


def _bad_model(folder: Path) -> dict[str, Any]:
    _write_reference(folder, samples=10)
    return {"model": "missing.onnx", "data": "held_out.npz"}


def _data_without_labels(folder: Path) -> dict[str, Any]:
    _write_reference(folder, samples=10)
    np.savez(folder / "unlabelled.npz", x=np.zeros((4, 64), dtype=np.float32))
    return {"model": "model.onnx", "data": "unlabelled.npz"}


def _not_onnx(folder: Path) -> dict[str, Any]:
    _write_reference(folder, samples=10)
    (folder / "garbage.onnx").write_bytes(b"not a protobuf at all")
    return {"model": "garbage.onnx", "data": "held_out.npz"}


BAD_CASES: dict[str, tuple[Any, list[str]]] = {
    "binding program not on PATH": (
        lambda _f: {"bindings": {"cpp": {"argv": ["no-such-binding-xyz", "{input}"]}}},
        ["sut.bindings.cpp.argv", "'no-such-binding-xyz' not found on PATH"],
    ),
    "binding program path missing": (
        lambda _f: {"bindings": {"java": {"argv": ["./bin/run-java", "{model}", "{input}"]}}},
        ["sut.bindings.java.argv", "program not found:", "bin/run-java"],
    ),
    "binding working directory missing": (
        lambda _f: {"bindings": {"c": {"argv": [sys.executable, "{input}"], "cwd": "nowhere"}}},
        ["sut.bindings.c.cwd", "working directory not found:", "nowhere"],
    ),
    "backend program missing": (
        lambda _f: {"backends": [{"name": "npu", "command": {"argv": ["./npu", "{input}"]}}]},
        ["sut.backends[0].command.argv", "program not found:"],
    ),
    "model file missing": (_bad_model, ["sut.model", "ONNX model not found:", "missing.onnx"]),
    "model without data": (
        lambda _f: {"model": "model.onnx"},
        ["sut.data", "a submitted `model` needs `data`"],
    ),
    "data without labels": (_data_without_labels, ["sut.data", "lacks array(s) ['y']"]),
    "model not ONNX": (_not_onnx, ["sut.model", "not an ONNX model"]),
    "unknown language": (
        lambda _f: {"bindings": {"rust": {"argv": ["cargo", "{input}"]}}},
        ["sut.bindings.rust"],
    ),
}


@pytest.mark.usefixtures("config_home")
@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_a_missing_program_or_file_is_bad_input(
    case: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    build, needles = BAD_CASES[case]
    folder = tmp_path / "sub"
    folder.mkdir()
    submission = _submission(folder, {"adapter": "framework", **build(folder)})
    out = tmp_path / "run"
    argv = ["run", SUITE, "--quick", "--submission", str(submission), "--out", str(out)]
    assert _run(argv, monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert str(submission) in err[0]
    for needle in needles:
        assert needle in err[0], err[0]
    assert not out.exists()
    assert not list(tmp_path.glob(".run*"))
