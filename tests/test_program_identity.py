"""Counts that any command could satisfy: backends and bindings count distinct programs of
the declared language, and a toolchain component must answer with its own version string.
The C binding here is a real C program, compiled by gcc, that computes the reference MLP."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext
from harness.probes.framework import (
    HARNESS_PYTHON_BINDING,
    BackendsProbe,
    BindingsProbe,
    ReferenceArgs,
    load_reference,
)
from harness.probes.toolchain import ToolchainArgs, ToolchainProbe
from harness.schema import HardwareDescription, Measurement, SutSpec

SEED = 0
REFERENCE = {"epochs": 15, "inputs": 8}

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def _measure(probe: Any, raw: dict[str, Any], root: Path, metric: str) -> Measurement:
    args = probe.Args.model_validate(raw)
    ctx = CollectContext("t", args, SutSpec(), "cpu", SEED, True, EvidenceWriter(root))
    probe.collect(ctx)
    result = probe.score(EvidenceReader(root), ScoreContext("t", args, 0.95, None))
    return next(m for m in result.measurements if m.id == metric)


def _script(folder: Path, name: str, extra: str = "") -> Path:
    path = folder / name
    path.write_text(HARNESS_PYTHON_BINDING + extra, encoding="utf-8")
    return path


# ------------------------------------------------------------------ backends


def test_one_script_declared_as_five_chips_counts_once(tmp_path: Path) -> None:
    script = _script(tmp_path, "run.py")
    argv = [sys.executable, str(script), "{model}", "{input}"]
    backends = [
        {"name": f"chip-{c}", "chip": f"Chip {c.upper()}", "command": {"argv": argv}}
        for c in "abcde"
    ]
    m = _measure(
        BackendsProbe(), {**REFERENCE, "backends": backends}, tmp_path / "run", "working_backends"
    )
    assert m.value == 1, m.details
    assert m.details["chip-a"]["status"] == "ok"
    for name in ("chip-b", "chip-c", "chip-d", "chip-e"):
        assert m.details[name]["status"] == "the same program as backend chip-a (counted once)"
    assert "declared by the applicant" in m.method


def test_copies_of_one_script_count_once(tmp_path: Path) -> None:
    """Copies that differ in comments, with extra files on their command lines, are one
    program (the script's syntax tree); a rewritten copy that pads its output with spaces
    prints the same values and is one computation."""
    padded = HARNESS_PYTHON_BINDING.replace(
        'print(" ".join(f"{v:.9g}" for v in out.tolist()), flush=True)',
        'print("  ".join(f"{v:.9g}" for v in out.tolist()) + "   ", flush=True)',
    )
    assert padded != HARNESS_PYTHON_BINDING
    (tmp_path / "padded.py").write_text(padded, encoding="utf-8")
    commands = [
        [str(_script(tmp_path, "run0.py", "# chip 0\n")), str(tmp_path / "tag0.txt")],
        [str(_script(tmp_path, "run1.py", "\n\n# chip 1, tuned\n")), str(tmp_path / "tag1.txt")],
        [str(tmp_path / "padded.py")],
    ]
    for i in range(2):
        (tmp_path / f"tag{i}.txt").write_text(f"chip {i}\n", encoding="utf-8")
    backends = [
        {
            "name": f"chip-{i}",
            "command": {"argv": [sys.executable, *c[:1], "{model}", "{input}", *c[1:]]},
        }
        for i, c in enumerate(commands)
    ]
    m = _measure(
        BackendsProbe(), {**REFERENCE, "backends": backends}, tmp_path / "run", "working_backends"
    )
    assert m.value == 1, m.details
    assert m.details["chip-1"]["status"] == "the same program as backend chip-0 (counted once)"
    assert "output values identical to backend chip-0" in m.details["chip-2"]["status"]


def test_a_command_backend_must_print_values(tmp_path: Path) -> None:
    classes = HARNESS_PYTHON_BINDING.replace(
        'print(" ".join(f"{v:.9g}" for v in out.tolist()), flush=True)',
        "print(int(out.argmax()), flush=True)",
    )
    (tmp_path / "classes.py").write_text(classes, encoding="utf-8")
    argv = [sys.executable, str(tmp_path / "classes.py"), "{model}", "{input}"]
    backends = [{"name": "npu", "command": {"argv": argv, "output": "class"}}]
    m = _measure(
        BackendsProbe(), {**REFERENCE, "backends": backends}, tmp_path / "run", "working_backends"
    )
    assert m.value == 0
    assert "prints the model's output values" in m.details["npu"]["status"]


# ------------------------------------------------------------------ bindings


def test_a_python_script_declared_as_c_cpp_and_java_counts_for_python_only(
    tmp_path: Path,
) -> None:
    script = _script(tmp_path, "binding.py")
    argv = [sys.executable, str(script), "{model}", "{input}"]
    bindings = {lang: {"argv": argv} for lang in ("python", "c", "cpp", "java")}
    m = _measure(
        BindingsProbe(), {**REFERENCE, "bindings": bindings}, tmp_path / "run", "working_bindings"
    )
    assert m.value == 1, m.details
    assert m.details["python"]["status"] == "ok"
    assert m.details["c"]["status"].startswith("not a C program")
    assert m.details["cpp"]["status"].startswith("not a C++ program")
    assert m.details["java"]["status"].startswith("not a Java program")


MLP_C = r"""
#include <stdio.h>
#include <stdlib.h>
/* The reference MLP: x W0 + b0, ReLU, x W1 + b1, ReLU, x W2 + b2; weights from a text file
   (layers; then per layer: in out, in*out weights row-major, out biases). */
int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s WEIGHTS INPUT\n", argv[0]); return 2; }
    FILE *wf = fopen(argv[1], "r"), *xf = fopen(argv[2], "r");
    if (!wf || !xf) { fprintf(stderr, "cannot open\n"); return 2; }
    int layers; if (fscanf(wf, "%d", &layers) != 1) return 2;
    int dims[8][2]; double *w[8], *b[8];
    for (int l = 0; l < layers; l++) {
        if (fscanf(wf, "%d %d", &dims[l][0], &dims[l][1]) != 2) return 2;
        int n = dims[l][0] * dims[l][1];
        w[l] = malloc(sizeof(double) * n); b[l] = malloc(sizeof(double) * dims[l][1]);
        for (int i = 0; i < n; i++) if (fscanf(wf, "%lf", &w[l][i]) != 1) return 2;
        for (int i = 0; i < dims[l][1]; i++) if (fscanf(wf, "%lf", &b[l][i]) != 1) return 2;
    }
    double a[1024], z[1024];
    for (;;) {
        for (int i = 0; i < dims[0][0]; i++) {
            float v; if (fscanf(xf, "%f", &v) != 1) return 0; a[i] = v;
        }
        for (int l = 0; l < layers; l++) {
            for (int j = 0; j < dims[l][1]; j++) {
                double s = b[l][j];
                for (int i = 0; i < dims[l][0]; i++) s += a[i] * w[l][i * dims[l][1] + j];
                z[j] = (l + 1 < layers && s < 0) ? 0 : s;
            }
            for (int j = 0; j < dims[l][1]; j++) a[j] = z[j];
        }
        for (int j = 0; j < dims[layers - 1][1]; j++)
            printf(j ? " %.9g" : "%.9g", (float)a[j]);
        printf("\n");
    }
}
"""

WRAPPER_C = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s %s %s", PYTHON, SCRIPT, argv[1], argv[2]);
    return system(cmd) ? 1 : 0;
}
"""


def _weights(folder: Path) -> Path:
    """The reference model's weights, in the C program's text format."""
    model = onnx.load_from_string(load_reference(ReferenceArgs(epochs=15), SEED).model_bytes)
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    layers = sorted(k for k in init if k.startswith("weights."))
    lines = [str(len(layers))]
    for name in layers:
        w = np.asarray(init[name], dtype=np.float64)
        b = np.asarray(init[name.replace("weights", "biases")], dtype=np.float64)
        lines += [f"{w.shape[0]} {w.shape[1]}", " ".join(f"{v:.17g}" for v in w.reshape(-1))]
        lines.append(" ".join(f"{v:.17g}" for v in b))
    path = folder / "weights.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _gcc(source: Path, output: Path, *defines: str) -> None:
    subprocess.run(["gcc", "-O2", *defines, "-o", str(output), str(source)], check=True)


@needs_gcc
def test_a_real_c_binding_counts_and_its_copies_do_not(tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    (build / "mlp.c").write_text(MLP_C, encoding="utf-8")
    shutil.copy(build / "mlp.c", build / "mlp.cpp")  # the same bytes, renamed C++
    _gcc(build / "mlp.c", build / "mlp")
    script = _script(build, "binding.py")
    (build / "wrapper.c").write_text(WRAPPER_C, encoding="utf-8")
    _gcc(
        build / "wrapper.c",
        build / "wrapper",
        f'-DPYTHON="{sys.executable}"',
        f'-DSCRIPT="{script}"',
    )
    weights = _weights(build)
    elf = [str(build / "mlp"), str(weights), "{input}"]
    bindings = {
        "c": {"argv": elf, "cwd": str(build), "sources": ["mlp.c"]},
        "cpp": {"argv": elf, "cwd": str(build), "sources": ["mlp.cpp"]},
        "java": {"argv": [str(build / "wrapper"), "{model}", "{input}"], "cwd": str(build)},
    }
    m = _measure(
        BindingsProbe(), {**REFERENCE, "bindings": bindings}, tmp_path / "run", "working_bindings"
    )
    assert m.details["c"]["status"] == "ok", m.details["c"]
    assert m.details["c"]["comparison"]["max_rel_err"] <= 1e-6
    assert m.details["cpp"]["status"] == "the same program as the c binding (counted once)"
    assert m.details["java"]["status"].startswith("not a Java program")
    assert m.value == 1

    # the wrapper that starts python is not a C binding of its own, sources or not
    bindings = {
        "c": {
            "argv": [str(build / "wrapper"), "{model}", "{input}"],
            "cwd": str(build),
            "sources": ["wrapper.c"],
        },
        "cpp": {"argv": elf, "cwd": str(build)},  # no sources named
    }
    m = _measure(
        BindingsProbe(), {**REFERENCE, "bindings": bindings}, tmp_path / "run2", "working_bindings"
    )
    assert "can start other programs (system)" in m.details["c"]["status"]
    assert m.details["cpp"]["status"].startswith("no C++ source declared")
    assert m.value == 0


# ------------------------------------------------------------------ toolchain


def _toolchain(tmp_path: Path, toolchain: list[dict[str, Any]]) -> dict[str, Any]:
    hardware = HardwareDescription.model_validate(
        {"schema": "harness.hardware/v1", "id": "t", "name": "t", "kind": "system",
         "toolchain": toolchain}
    )  # fmt: skip
    args = ToolchainArgs(timeout_s=10)
    ctx = CollectContext(
        "system", args, SutSpec(), "cpu", 0, True, EvidenceWriter(tmp_path), hardware=hardware
    )
    ToolchainProbe().collect(ctx)
    result = ToolchainProbe().score(EvidenceReader(tmp_path), ScoreContext("s", args, 0.95, None))
    m = {x.id: x for x in result.measurements}
    return {"roles": m["toolchain"].value, **m["tools_working"].details}


def test_a_command_that_only_exits_zero_is_no_compiler(tmp_path: Path) -> None:
    got = _toolchain(
        tmp_path,
        [
            {"name": "gcc", "role": "compiler", "argv": ["true"]},
            {"name": "clang", "role": "compiler", "argv": ["echo", "clang version 17.0.1"]},
            {
                "name": "nvcc",
                "role": "compiler",
                "argv": [sys.executable, "-c", "print('nvcc release 12.4')"],
            },
            {"name": "acme driver", "role": "driver", "argv": [sys.executable, "--version"]},
        ],
    )
    assert got["roles"] == 0 and got["working"] == []
    failing = got["failing"]
    assert "prints what it is given" in failing["gcc"]
    assert "prints what it is given" in failing["clang"]
    assert "runs code through" in failing["nvcc"]
    assert "does not name it" in failing["acme driver"]


@needs_gcc
def test_a_real_compiler_answers_with_its_name_and_version(tmp_path: Path) -> None:
    got = _toolchain(
        tmp_path,
        [
            {"name": "gcc", "role": "compiler", "argv": ["gcc", "--version"]},
            {"name": "Python", "role": "dev-environment", "argv": [sys.executable, "--version"]},
        ],
    )
    assert got["roles"] == 2, got
    assert got["working"] == ["gcc", "Python"]


EXECVE_C = r"""
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    char *args[] = {PYTHON, SCRIPT, argv[1], argv[2], 0};
    return (int)syscall(SYS_execve, PYTHON, args, (char *[]){0});
}
"""


@needs_gcc
def test_an_elf_that_execs_python_or_a_script_named_java_is_no_binding(tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    script = _script(build, "binding.py")
    (build / "runner.c").write_text(EXECVE_C, encoding="utf-8")
    _gcc(
        build / "runner.c", build / "runner", f'-DPYTHON="{sys.executable}"', f'-DSCRIPT="{script}"'
    )
    (build / "runner.cpp").write_text(EXECVE_C + "// C++\n", encoding="utf-8")
    java = build / "java"
    java.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$3" "$4"\n', encoding="utf-8")
    java.chmod(0o755)
    (build / "run.jar").write_bytes(b"")
    bindings = {
        "c": {
            "argv": ["./runner", "{model}", "{input}"],
            "cwd": str(build),
            "sources": ["runner.c"],
        },
        "cpp": {
            "argv": ["./runner", "{model}", "{input}"],
            "cwd": str(build),
            "sources": ["runner.cpp"],
        },
        "java": {"argv": ["./java", "-jar", "run.jar", "{model}", "{input}"], "cwd": str(build)},
    }
    m = _measure(
        BindingsProbe(), {**REFERENCE, "bindings": bindings}, tmp_path / "run", "working_bindings"
    )
    assert m.value == 0, m.details
    assert "can start other programs (syscall)" in m.details["c"]["status"]
    assert "can start other programs (syscall)" in m.details["cpp"]["status"]
    assert "not a Java launcher" in m.details["java"]["status"]


@needs_gcc
def test_one_elf_with_two_source_lists_is_one_program(tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    (build / "mlp.c").write_text(MLP_C, encoding="utf-8")
    (build / "mlp.cpp").write_text(MLP_C + "// one more line makes other bytes\n", encoding="utf-8")
    _gcc(build / "mlp.c", build / "mlp")
    elf = [str(build / "mlp"), str(_weights(build)), "{input}"]
    bindings = {
        "c": {"argv": elf, "cwd": str(build), "sources": ["mlp.c"]},
        "cpp": {"argv": elf, "cwd": str(build), "sources": ["mlp.cpp"]},
    }
    m = _measure(
        BindingsProbe(), {**REFERENCE, "bindings": bindings}, tmp_path / "run", "working_bindings"
    )
    assert m.value == 1, m.details
    assert m.details["cpp"]["status"] == "the same program as the c binding (counted once)"


def test_an_empty_jar_is_no_java_program(tmp_path: Path) -> None:
    java = shutil.which("java")
    if java is None:
        pytest.skip("needs java")
    (tmp_path / "run.jar").write_bytes(b"")
    bindings = {"java": {"argv": ["java", "-jar", str(tmp_path / "run.jar"), "{model}", "{input}"]}}
    m = _measure(
        BindingsProbe(), {**REFERENCE, "bindings": bindings}, tmp_path / "run", "working_bindings"
    )
    assert m.value == 0
    status = m.details["java"]["status"]
    assert status.startswith("exit ") or "neither a jar nor a class file" in status, status


def test_a_copied_echo_a_printing_utility_or_a_reused_program_fills_no_role(
    tmp_path: Path,
) -> None:
    echo = shutil.which("echo")
    assert echo is not None
    shutil.copy(Path(echo).resolve(), tmp_path / "npu-smi")
    (tmp_path / "npu-smi").chmod(0o755)
    got = _toolchain(
        tmp_path / "run",
        [
            {
                "name": "npu-smi",
                "role": "driver",
                "argv": [str(tmp_path / "npu-smi"), "npu-smi 1.2.3"],
            },
            {"name": "npu date-driver", "role": "driver", "argv": ["date", "+npu-date-driver 9.9"]},
            {"name": "Python", "role": "dev-environment", "argv": [sys.executable, "--version"]},
            {"name": "Python NPU driver", "role": "driver", "argv": [sys.executable, "--version"]},
        ],
    )
    failing = got["failing"]
    assert "is a copy of echo" in failing["npu-smi"]
    assert "prints what it is given" in failing["npu date-driver"]
    assert "the same program as Python" in failing["Python NPU driver"]
    assert got["working"] == ["Python"] and got["roles"] == 1


def test_a_binding_record_added_to_the_evidence_is_refused(tmp_path: Path) -> None:
    """The python self-check's record copied as c.json and listed: scoring refuses the
    evidence rather than count it (bindings.json declares python only)."""
    import json

    root = tmp_path / "run"
    _measure(BindingsProbe(), REFERENCE, root, "working_bindings")
    index = json.loads((root / "bindings.json").read_text())
    record = json.loads((root / "bindings/python.json").read_text())
    (root / "bindings/c.json").write_text(json.dumps({**record, "language": "c"}))
    index["languages"].append("c")
    (root / "bindings.json").write_text(json.dumps(index))
    args = BindingsProbe.Args.model_validate(REFERENCE)
    with pytest.raises(ValueError, match="declares"):
        BindingsProbe().score(EvidenceReader(root), ScoreContext("t", args, 0.95, None))
    # and an edited identity does not survive re-derivation
    index["languages"].remove("c")
    (root / "bindings.json").write_text(json.dumps(index))
    record["program"]["identity"] = "0" * 64
    (root / "bindings/python.json").write_text(json.dumps(record))
    m = BindingsProbe().score(EvidenceReader(root), ScoreContext("t", args, 0.95, None))
    assert (
        "identity is not the one its digests give" in m.measurements[0].details["python"]["status"]
    )
