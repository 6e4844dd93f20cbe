"""D04 terminal AI inference framework: precisions, language bindings and backends.

- `framework.precisions`: the reference model in FP32, FP16, INT8 and INT4 on ONNX Runtime:
  accuracy, accuracy drop vs FP32, latency, throughput, speed-ups, compression, and the
  count of verified precisions.
- `framework.bindings`: per language (c, cpp, java, python) a command that runs the
  reference model through that binding; its outputs are compared with ONNX Runtime's Python
  FP32 outputs on the same inputs.
- `framework.backends`: each declared backend (an ONNX Runtime execution provider, or a
  command like a binding) runs the reference model; it counts when its outputs match the
  reference and, for an execution provider, when that provider executed enough of the nodes.

Where these come from: a submission whose `sut:` block is the `framework` adapter
(`harness.adapters.framework_sut`) gives the reference `model`/`data` (paths from the
submission's folder), the `bindings` and the `backends`; what it leaves out comes from the
task's suite args, then from the defaults. collect() writes what it took, and from where,
into the evidence (the model's sha256 and origin in reference.json, each command's argv, the
backend list); score() reads only the evidence and the suite's args.

Modules: `args` (the probes' arguments and defaults), `reference` (the reference model and
labelled set; the seeded digits MLP), `variants` (FP16 / INT8 / INT4 variants, graph facts),
`sessions` (ONNX Runtime sessions, a run on one execution provider), `commands` (declared
commands and backends, running a command, its text contract), `submission` (where the
reference comes from), `checks` (the reference run and judgement shared by bindings and
backends), `timing` (interleaved timings and their measurements), `util` (sizes, hashes);
`identity` (what program a command really runs, and its language); one module per probe:
`precisions`, `bindings`, `backends`, `capabilities`. The contracts shared with the
`framework` adapter (CommandSpec, BackendSpec, ReferenceArgs) live in
`harness.contracts.framework`.
"""

from __future__ import annotations

from harness.contracts.framework import (
    BackendSpec,
    CommandSpec,
    Language,
    ReferenceArgs,
    ReferenceFileError,
    check_reference_files,
    npz_suffix,
    onnx_suffix,
    unique_backends,
)
from harness.probes.framework.args import (
    ALL_PRECISIONS,
    DEFAULT_TOLERANCE_PP,
    BackendsArgs,
    BindingsArgs,
    CheckArgs,
    Precision,
    PrecisionsArgs,
)
from harness.probes.framework.backends import BackendsProbe
from harness.probes.framework.bindings import HARNESS_SELF_CHECK, BindingsProbe
from harness.probes.framework.capabilities import CapabilitiesArgs, CapabilitiesProbe
from harness.probes.framework.commands import HARNESS_PYTHON_BINDING
from harness.probes.framework.precisions import PrecisionsProbe
from harness.probes.framework.reference import load_reference
from harness.probes.framework.sessions import CPU_PROVIDER, session_options
from harness.probes.framework.submission import FRAMEWORK_ADAPTER
from harness.probes.framework.util import MB, sha256_bytes
from harness.probes.framework.variants import (
    REQUIRED_OPS,
    captured_logs,
    graph_facts,
    int4_rewrite,
    make_variant,
)

__all__ = [
    "ALL_PRECISIONS",
    "CPU_PROVIDER",
    "DEFAULT_TOLERANCE_PP",
    "FRAMEWORK_ADAPTER",
    "HARNESS_PYTHON_BINDING",
    "HARNESS_SELF_CHECK",
    "MB",
    "REQUIRED_OPS",
    "BackendSpec",
    "BackendsArgs",
    "BackendsProbe",
    "BindingsArgs",
    "BindingsProbe",
    "CapabilitiesArgs",
    "CapabilitiesProbe",
    "CheckArgs",
    "CommandSpec",
    "Language",
    "Precision",
    "PrecisionsArgs",
    "PrecisionsProbe",
    "ReferenceArgs",
    "ReferenceFileError",
    "captured_logs",
    "check_reference_files",
    "graph_facts",
    "int4_rewrite",
    "load_reference",
    "make_variant",
    "npz_suffix",
    "onnx_suffix",
    "session_options",
    "sha256_bytes",
    "unique_backends",
]
