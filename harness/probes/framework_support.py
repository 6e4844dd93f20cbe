"""The former home of the D04 probes' shared pieces, kept so that existing imports work:
everything now lives in the `harness.probes.framework` package (`reference`, `variants`,
`sessions`, `commands`, `checks`, `util`); import from there."""

from __future__ import annotations

from harness.probes.framework.checks import compare_outputs
from harness.probes.framework.commands import (
    HARNESS_PYTHON_BINDING,
    INPUT_PLACEHOLDER,
    KILL_GRACE_S,
    MAX_STDOUT_BYTES,
    MODEL_PLACEHOLDER,
    TAIL_CHARS,
    BackendSpec,
    CommandSpec,
    Language,
    format_inputs,
    parse_stdout,
    run_command,
    substitute,
    tail,
    unique_backends,
)
from harness.probes.framework.reference import (
    Reference,
    ReferenceArgs,
    ReferenceFileError,
    check_reference_files,
    load_reference,
    npz_suffix,
    onnx_suffix,
)
from harness.probes.framework.sessions import (
    CPU_PROVIDER,
    batch_capacity,
    input_facts,
    predict,
    profiled_nodes,
    run_provider,
    run_session_once,
    session_options,
)
from harness.probes.framework.util import sha256_bytes, sha256_path
from harness.probes.framework.variants import (
    Variant,
    captured_logs,
    graph_facts,
    int4_rewrite,
    make_variant,
)

__all__ = [
    "CPU_PROVIDER",
    "HARNESS_PYTHON_BINDING",
    "INPUT_PLACEHOLDER",
    "KILL_GRACE_S",
    "MAX_STDOUT_BYTES",
    "MODEL_PLACEHOLDER",
    "TAIL_CHARS",
    "BackendSpec",
    "CommandSpec",
    "Language",
    "Reference",
    "ReferenceArgs",
    "ReferenceFileError",
    "Variant",
    "batch_capacity",
    "captured_logs",
    "check_reference_files",
    "compare_outputs",
    "format_inputs",
    "graph_facts",
    "input_facts",
    "int4_rewrite",
    "load_reference",
    "make_variant",
    "npz_suffix",
    "onnx_suffix",
    "parse_stdout",
    "predict",
    "profiled_nodes",
    "run_command",
    "run_provider",
    "run_session_once",
    "session_options",
    "sha256_bytes",
    "sha256_path",
    "substitute",
    "tail",
    "unique_backends",
]
