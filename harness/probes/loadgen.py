"""`inference.loadgen`: MLPerf LoadGen driving a system under test over a `SutSession`.

collect: samples from a dataset spec form LoadGen's query sample library; a short warm-up
through the session (which also sizes LoadGen's expected latency / QPS where the suite gives
none); with `compliance`, two TEST04-like runs (each of a set of fresh samples once, then
one sample repeated as often) before anything else sees those samples; with
`server_search`, short Server trials bisecting over the target QPS; the performance run
(with `compliance`, LoadGen also logs a seeded random subset of its outputs, as TEST01
does); with `accuracy` or `compliance`, an AccuracyOnly run that logs every output. Every
run's LoadGen logs (summary, detail, accuracy; the trace only with `trace: true`) are copied
verbatim into the evidence with the settings and the session's per-sample failures. With
`accuracy_metric`, the labels of the samples (from a labelled dataset) go into labels.json.
score: from those logs alone: the scenario's figure (SingleStream p90 latency, MultiStream
p99 per-query latency, Server completed QPS and p99 latency, Offline samples/s) with
LoadGen's own INVALID reasons as `invalid_reason`, the highest Server QPS that met the
latency bound, the TEST01 match fraction, the TEST04 speed ratio and failed samples; with
`accuracy_metric`, the accuracy of the AccuracyOnly run's outputs against labels.json.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import queue
import random
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.errors import BadInput, SutFailure
from harness.evidence import EvidenceReader, sha256_file
from harness.models import Interval, Measurement, Unmeasured
from harness.probes.accuracy import accuracy_percent
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.registry import adapters, probes

Scenario = Literal["SingleStream", "MultiStream", "Server", "Offline"]

LOG_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json")
TRACE_FILE = "mlperf_log_trace.json"
LABELS_FILE = "labels.json"  # the labels accuracy_metric scores against (evidence root)
AccuracyMetric = Literal["top1", "exact_match"]
EARLY_STOPPING_CONFIDENCE = 0.99  # LoadGen's early-stopping estimates (results.cc)
MAX_REASONS = 5  # sample failure reasons kept per run
MAX_GENERATED_QUERIES = 2_000_000  # cap on what an expected latency makes LoadGen pre-generate
# cap on an Offline expected QPS taken from the warm-up: the warm-up times session.run
# alone, so for a near-instant SUT it is far above what LoadGen itself can complete, and
# LoadGen would build an Offline query of that many samples per second of min_duration
WARMUP_MAX_OFFLINE_QPS = 2_000_000.0


# ------------------------------------------------------------------------ datasets
#
# A dataset kind is a pydantic model (with a `kind` literal) and a builder
# `(spec, wanted, seed) -> list[Sample]`, where `wanted` is the QSL size the task asks for
# (None: the dataset's own size). Samples must come back with index == position.
# A labelled kind also registers a LabelSource: the labels of its samples, for
# `accuracy_metric`.


DatasetBuilder = Callable[[Any, int | None, int], list[Sample]]
DATASETS: dict[str, tuple[type[BaseModel], DatasetBuilder]] = {}


@dataclass(frozen=True)
class Labels:
    """The labels of a dataset's first samples, in sample order: integer class ids or text,
    and where they came from (file, sha256...) for the evidence."""

    values: list[int] | list[str]
    source: dict[str, Any]

    @property
    def kind(self) -> Literal["int", "text"]:
        return "text" if any(isinstance(v, str) for v in self.values) else "int"


def _always(_spec: Any) -> bool:
    return True


@dataclass(frozen=True)
class LabelSource:
    """How a dataset kind gives labels. `present(spec)` says, reading nothing, whether a
    spec has labels; `read(spec, count)` returns the labels of its first `count` samples
    (ValueError or OSError when they cannot be read or do not fit the samples)."""

    read: Callable[[Any, int], Labels]
    present: Callable[[Any], bool] = _always


LABELS: dict[str, LabelSource] = {}


def register_dataset(
    kind: str, model: type[BaseModel], labels: LabelSource | None = None
) -> Callable[[DatasetBuilder], DatasetBuilder]:
    def decorate(builder: DatasetBuilder) -> DatasetBuilder:
        if kind in DATASETS:
            raise ValueError(f"dataset kind {kind!r} registered twice")
        DATASETS[kind] = (model, builder)
        if labels is not None:
            LABELS[kind] = labels
        return builder

    return decorate


def validate_dataset(raw: dict[str, Any]) -> BaseModel:
    kind = raw.get("kind")
    if kind not in DATASETS:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[kind][0].model_validate(raw)


def build_dataset(raw: dict[str, Any], wanted: int | None, seed: int) -> list[Sample]:
    spec = validate_dataset(raw)
    samples = DATASETS[raw["kind"]][1](spec, wanted, seed)
    if wanted is not None:
        if len(samples) < wanted:
            raise ValueError(f"dataset {raw['kind']} has {len(samples)} samples; {wanted} wanted")
        samples = samples[:wanted]
    if not samples:
        raise ValueError(f"dataset {raw['kind']} is empty")
    return samples


def dataset_labelled(raw: dict[str, Any]) -> bool:
    """Whether a (valid) dataset spec gives labels, without reading any file."""
    source = LABELS.get(raw.get("kind", ""))
    return source is not None and source.present(validate_dataset(raw))


def read_labels(raw: dict[str, Any], count: int) -> Labels:
    """The labels of the first `count` samples of a labelled dataset spec."""
    if not dataset_labelled(raw):
        raise ValueError(f"dataset {raw.get('kind')} has no labels")
    labels = LABELS[raw["kind"]].read(validate_dataset(raw), count)
    if len(labels.values) != count:
        raise ValueError(f"{len(labels.values)} labels for {count} samples")
    return labels


class RandomTensorDataset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["random_tensor"]
    shape: list[int] = Field(min_length=1)
    dtype: str = "float32"
    count: int | None = Field(default=None, ge=1)  # None: the task's sample_count (or 64)
    seed: int | None = None  # None: derived from the run's seed

    @field_validator("shape")
    @classmethod
    def _positive(cls, shape: list[int]) -> list[int]:
        if any(d < 1 for d in shape):
            raise ValueError("every dimension must be >= 1")
        return shape

    @field_validator("dtype")
    @classmethod
    def _numeric(cls, dtype: str) -> str:
        try:
            dt = np.dtype(dtype)
        except TypeError as error:
            raise ValueError(f"not a numpy dtype: {dtype}") from error
        if dt.kind not in "biuf":
            raise ValueError(f"{dtype} is not a numeric dtype")
        return dt.name


class TextLinesDataset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["text_lines"]
    path: str  # a UTF-8 file; every non-empty line is one sample (relative: to the cwd)
    # a UTF-8 file whose non-empty lines, stripped, label the samples in the same order
    labels: str | None = None


class NpzDataset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["npz"]
    # an .npz (relative: to the cwd) with `x`, the inputs (first axis: samples; numeric, or
    # strings for text SUTs), and `y`, one label per sample (integer class ids or strings)
    path: str
    count: int | None = Field(default=None, ge=1)  # None: every sample in the file


@register_dataset("random_tensor", RandomTensorDataset)
def _random_tensor(spec: RandomTensorDataset, wanted: int | None, seed: int) -> list[Sample]:
    count = spec.count or wanted or 64
    rng = np.random.default_rng(spec.seed if spec.seed is not None else seed)
    dtype = np.dtype(spec.dtype)
    shape = (count, *spec.shape)
    if dtype.kind == "f":
        data = rng.standard_normal(shape).astype(dtype)
    elif dtype.kind == "b":
        data = rng.integers(0, 2, shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        data = rng.integers(max(info.min, -128), min(info.max, 127), shape, endpoint=True)
        data = data.astype(dtype)
    return [Sample(index=i, data=np.ascontiguousarray(data[i])) for i in range(count)]


def _text_lines_labels(spec: TextLinesDataset, count: int) -> Labels:
    assert spec.labels is not None
    path = Path(spec.labels)
    text = path.read_text(encoding="utf-8")
    values = [line.strip() for line in text.splitlines() if line.strip()]
    samples = len(_non_empty_lines(Path(spec.path)))
    if len(values) != samples:
        raise ValueError(
            f"{path} holds {len(values)} labels for the {samples} non-empty lines of {spec.path}"
        )
    source = {"kind": "text_lines", "path": str(path), "sha256": sha256_file(path)}
    return Labels(values[:count], source)


def _non_empty_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@register_dataset(
    "text_lines",
    TextLinesDataset,
    LabelSource(_text_lines_labels, lambda spec: spec.labels is not None),
)
def _text_lines(spec: TextLinesDataset, wanted: int | None, seed: int) -> list[Sample]:
    path = Path(spec.path)
    lines = _non_empty_lines(path)
    return [Sample(index=i, data=line, path=str(path)) for i, line in enumerate(lines)]


def _npz_arrays(path: Path, *keys: str) -> list[np.ndarray]:
    """The named arrays of an .npz (ValueError naming what is wrong; nothing is unpickled)."""
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except Exception as error:  # not numpy's format, pickled data, a corrupt archive...
        raise ValueError(f"cannot read {path} as .npz: {type(error).__name__}: {error}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is a single .npy array, not an .npz with x and y")
    with archive:
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise ValueError(
                f"{path} has no {', '.join(missing)} (it has: {', '.join(archive.files)})"
            )
        arrays = []
        for key in keys:
            try:
                arrays.append(archive[key])
            except Exception as error:  # object arrays (pickles), a damaged member
                raise ValueError(
                    f"cannot read {key} from {path}: {type(error).__name__}: {error}"
                ) from None
        return arrays


def _npz_label_values(y: np.ndarray, samples: int, path: Path) -> list[int] | list[str]:
    if y.ndim != 1:
        raise ValueError(f"{path}: y must be one label per sample (shape {list(y.shape)})")
    if len(y) != samples:
        raise ValueError(f"{path}: y holds {len(y)} labels for {samples} samples in x")
    if y.dtype.kind in "iu":
        return [int(v) for v in y]
    if y.dtype.kind == "U":
        return [str(v).strip() for v in y]
    if y.dtype.kind == "S":
        return [bytes(v).decode("utf-8").strip() for v in y]
    raise ValueError(f"{path}: y must hold integer class ids or strings, not {y.dtype}")


def _npz_labels(spec: NpzDataset, count: int) -> Labels:
    path = Path(spec.path)
    (y,) = _npz_arrays(path, "y")  # the builder checked y against x
    values = _npz_label_values(y, len(y), path)
    source = {"kind": "npz", "path": str(path), "key": "y", "sha256": sha256_file(path)}
    return Labels(values[:count], source)


@register_dataset("npz", NpzDataset, LabelSource(_npz_labels))
def _npz(spec: NpzDataset, wanted: int | None, seed: int) -> list[Sample]:
    path = Path(spec.path)
    x, y = _npz_arrays(path, "x", "y")
    if x.ndim < 1 or len(x) == 0:
        raise ValueError(f"{path}: x holds no samples")
    _npz_label_values(y, len(x), path)
    count = spec.count or len(x)
    if count > len(x):
        raise ValueError(f"{path} holds {len(x)} samples; count is {count}")
    if x.dtype.kind in "US":
        texts = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in x[:count]]
        return [Sample(index=i, data=t, path=str(path)) for i, t in enumerate(texts)]
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{path}: x must be numeric or strings, not {x.dtype}")
    return [Sample(index=i, data=np.ascontiguousarray(x[i]), path=str(path)) for i in range(count)]


def _default_dataset() -> dict[str, Any]:
    return {"kind": "random_tensor", "shape": [8], "dtype": "float32"}


# ------------------------------------------------------------------------ args


class LoadgenArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    scenario: Scenario
    # the test hook: a built-in session that answers instantly with the input as output
    null_sut: bool = False
    dataset: dict[str, Any] = Field(default_factory=_default_dataset)
    sample_count: int | None = Field(default=None, ge=1)  # QSL size (None: the dataset's)
    # Server: the target QPS (the start of the search with server_search); Offline: the
    # expected QPS. None: estimated from the warm-up.
    target_qps: float | None = Field(default=None, gt=0)
    latency_bound_ms: float | None = Field(default=None, gt=0)  # Server (required)
    # SingleStream / MultiStream expected latency (per query); None: from the warm-up
    expected_latency_ms: float | None = Field(default=None, gt=0)
    samples_per_query: int = Field(default=8, ge=1)  # MultiStream
    min_duration_s: float = Field(default=60.0, ge=0)
    max_duration_s: float | None = Field(default=None, gt=0)
    min_query_count: int | None = Field(default=None, ge=1)  # None: LoadGen's default
    batch_size: int = Field(default=64, ge=1)  # most samples per session.run call
    # 0: answer inside LoadGen's issue callback (least overhead); N: a queue served by N
    # threads calling session.run concurrently (the session must then be thread-safe)
    workers: int = Field(default=0, ge=0)
    warmup_samples: int = Field(default=8, ge=1)
    server_search: bool = False
    search_trial_s: float = Field(default=2.0, gt=0)
    search_steps: int = Field(default=6, ge=0)  # bisection steps after bracketing
    search_tolerance: float = Field(default=0.05, gt=0)  # stop when hi/lo - 1 is below
    accuracy: bool = False
    compliance: bool = False
    test01_samples: int = Field(default=64, ge=1)  # LoadGen's accuracy_log_sampling_target
    test01_rtol: float = Field(default=1e-3, ge=0)
    test01_atol: float = Field(default=1e-5, ge=0)
    test01_min_match: float = Field(default=1.0, ge=0, le=1)
    test04_samples: int = Field(default=64, ge=1)
    test04_max_ratio: float = Field(default=1.5, gt=1)  # distinct/repeated median latency
    # ...and only when the repeat saves at least this much per sample: at microseconds a
    # repeated sample is faster from the CPU's caches alone
    test04_min_saving_ms: float = Field(default=0.05, ge=0)
    trace: bool = False
    # score the AccuracyOnly run's outputs against the dataset's labels (needs accuracy and
    # a labelled dataset): top1 (argmax of a score vector, or a class id, vs integer labels)
    # or exact_match (the output text, stripped, equal to the label)
    accuracy_metric: AccuracyMetric | None = None

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, raw: dict[str, Any]) -> dict[str, Any]:
        return validate_dataset(raw).model_dump()

    @model_validator(mode="after")
    def _scenario_needs(self) -> LoadgenArgs:
        if self.scenario == "Server" and self.latency_bound_ms is None:
            raise ValueError("scenario Server needs latency_bound_ms")
        if self.server_search and self.scenario != "Server":
            raise ValueError("server_search applies to scenario Server only")
        if self.accuracy_metric is not None:
            if not self.accuracy:
                raise ValueError("accuracy_metric needs accuracy: true")
            if not dataset_labelled(self.dataset):
                kind = self.dataset["kind"]
                raise ValueError(
                    f"accuracy_metric needs a labelled dataset (npz, or text_lines with "
                    f"labels); this {kind} dataset has no labels"
                )
        return self


# ------------------------------------------------------------------------ sessions


class NullSession:
    """Answers every sample at once with its input as the output (the `null_sut` hook).
    One session serves one dataset: answers are kept by sample index."""

    def __init__(self) -> None:
        self._answers: dict[int, SampleOutput] = {}

    def describe(self) -> dict[str, Any]:
        return {"adapter": "null", "outputs": "the input, unchanged, at once"}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        answers = self._answers
        try:
            return [answers[s.index] for s in samples]
        except KeyError:
            for s in samples:
                if s.index not in answers:
                    answers[s.index] = SampleOutput(s.index, s.data, None, 0.0)
            return [answers[s.index] for s in samples]

    def close(self) -> None:
        self._answers.clear()


def open_session(ctx: CollectContext) -> SutSession:
    """The SUT session for this task: the null SUT when the args ask for it, else the
    adapter named by the submission's `sut:` block, validated with its `Args` and opened
    with `open(args, base_dir)` (base_dir: `ctx.sut_base_dir` where the context has one,
    else None). SutFailure when no such adapter exists or it cannot answer samples."""
    args = ctx.args
    if isinstance(args, LoadgenArgs) and args.null_sut:
        return NullSession()
    name = ctx.sut.adapter
    adapter = adapters.get(name)
    if adapter is None:
        raise SutFailure(f"no SUT adapter named {name!r} is registered")
    opener = getattr(adapter, "open", None)
    if not callable(opener):
        raise SutFailure(
            f"SUT adapter {name!r} cannot answer samples (it has no open(args, base_dir)); "
            "inference.loadgen needs a model, command, HTTP or callable adapter"
        )
    model = getattr(adapter, "Args", None)
    raw = ctx.sut.model_dump()
    adapter_args: Any = raw
    if isinstance(model, type) and issubclass(model, BaseModel):
        if "adapter" not in model.model_fields:
            raw.pop("adapter", None)
        try:
            adapter_args = model.model_validate(raw)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BadInput("sut", where or None, first["msg"]) from None
    if inspect.isclass(adapter) and not isinstance(
        inspect.getattr_static(adapter, "open"), staticmethod | classmethod
    ):
        instance: Any = adapter()
        opener = instance.open
    # relative SUT paths start at the submission's folder when the context knows it
    base_dir = getattr(ctx, "sut_base_dir", None)
    try:
        session: SutSession = opener(adapter_args, base_dir)
    except (BadInput, SutFailure):
        raise
    except Exception as error:
        raise SutFailure(
            f"SUT adapter {name!r} failed to open: {type(error).__name__}: {error}"
        ) from error
    return session


# ------------------------------------------------------------------------ LoadGen logs


@dataclass
class LoadgenLog:
    """The `:::MLLOG` records of one mlperf_log_detail.txt (last value per key)."""

    values: dict[str, Any]
    errors: list[str]
    warnings: list[str]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    @property
    def valid(self) -> bool:
        return self.values.get("result_validity") == "VALID"


def parse_detail(text: str) -> LoadgenLog:
    values: dict[str, Any] = {}
    errors: list[str] = []
    warnings: list[str] = []
    for line in text.splitlines():
        _, sep, body = line.partition(":::MLLOG")
        if not sep:
            continue
        try:
            record = json.loads(body)
        except ValueError:
            continue
        if not isinstance(record, dict) or "key" not in record:
            continue
        key, value = record["key"], record.get("value")
        values[key] = value
        meta = record.get("metadata") or {}
        if meta.get("is_error"):
            errors.append(f"{key}: {value}")
        elif meta.get("is_warning") and not str(value).startswith("Logging allocation"):
            warnings.append(f"{key}: {value}")
    return LoadgenLog(values, errors, warnings)


def _squash(text: Any) -> str:
    return " ".join(str(text).split())


def invalid_reason(log: LoadgenLog) -> str:
    """LoadGen's own words for an INVALID result ("" when VALID)."""
    if log.valid:
        return ""
    if "result_validity" not in log.values:
        return "LoadGen wrote no result (the run did not finish)"
    unmet = [
        label
        for key, label in (
            ("result_perf_constraints_met", "latency constraint"),
            ("result_min_duration_met", "minimum duration"),
            ("result_min_queries_met", "minimum query count"),
            ("early_stopping_met", "early stopping"),
        )
        if log.values.get(key) is False
    ]
    parts = [f"LoadGen result INVALID ({', '.join(unmet) or 'see the log'} not met)"]
    said = _squash(log.get("result_invalid_reason", ""))
    if said:
        parts.append(f"LoadGen: {said}")
    if log.values.get("early_stopping_met") is False:
        parts.append(f"early stopping: {_squash(log.get('early_stopping_result', ''))}")
    parts += [_squash(e) for e in log.errors]
    return "; ".join(parts)


# ------------------------------------------------------------------------ outputs
#
# LoadGen takes a response as (pointer, size) and copies the bytes inside
# QuerySamplesComplete when it logs them; the objects behind the pointers are kept alive
# until that call returns. Arrays go as their raw C-order bytes, text as UTF-8, a dict of
# arrays as the concatenation in key order; the descriptor that decodes them is recorded
# per sample in the accuracy run.


def _address(array: np.ndarray) -> int:
    return int(array.ctypes.data)


def encode_output(out: Any) -> tuple[int, int, Any, dict[str, Any]]:
    """(pointer, size, object to keep alive, descriptor) for one output."""
    if isinstance(out, str):
        raw = np.frombuffer(out.encode("utf-8"), dtype=np.uint8)
        return _address(raw), raw.nbytes, raw, {"kind": "text"}
    if isinstance(out, bytes | bytearray | memoryview):
        raw = np.frombuffer(bytes(out), dtype=np.uint8)
        return _address(raw), raw.nbytes, raw, {"kind": "bytes"}
    if isinstance(out, dict):
        names = sorted(out)
        arrays = [np.ascontiguousarray(out[k]) for k in names]
        for name, a in zip(names, arrays, strict=True):
            if a.dtype.hasobject:
                raise TypeError(f"output {name!r} has dtype object")
        raw = np.frombuffer(b"".join(a.tobytes() for a in arrays), dtype=np.uint8)
        items = [[n, a.dtype.str, list(a.shape)] for n, a in zip(names, arrays, strict=True)]
        return _address(raw), raw.nbytes, raw, {"kind": "arrays", "items": items}
    array = np.ascontiguousarray(out)
    if array.dtype.hasobject:
        raise TypeError(f"cannot send an output of type {type(out).__name__} to LoadGen")
    desc = {"kind": "array", "dtype": array.dtype.str, "shape": list(array.shape)}
    return _address(array), array.nbytes, array, desc


def _split(data: bytes, desc: dict[str, Any]) -> list[np.ndarray] | None:
    """The arrays a response holds, or None when its size does not fit the descriptor."""
    items = [[None, desc["dtype"], desc["shape"]]] if desc["kind"] == "array" else desc["items"]
    arrays = []
    offset = 0
    for _name, dtype, shape in items:
        dt = np.dtype(dtype)
        size = dt.itemsize * math.prod(shape)
        if offset + size > len(data):
            return None
        arrays.append(np.frombuffer(data[offset : offset + size], dtype=dt).reshape(shape))
        offset += size
    return arrays if offset == len(data) else None


def decode_output(data: bytes, desc: dict[str, Any]) -> Any:
    """One logged response as the session gave it, from its descriptor: text (str), bytes,
    an array, or a dict of name -> array. None when it holds no output (a failed sample,
    none given) or does not fit its descriptor (wrong size, text that is not UTF-8)."""
    kind = desc.get("kind")
    if kind == "text":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if kind == "bytes":
        return data
    if kind in ("array", "arrays"):
        arrays = _split(data, desc)
        if arrays is None:
            return None
        if kind == "array":
            return arrays[0]
        return {item[0]: a for item, a in zip(desc["items"], arrays, strict=True)}
    return None


def outputs_match(
    got: bytes, expected: bytes, desc: dict[str, Any], rtol: float, atol: float
) -> bool:
    """Exact for text and bytes; numpy allclose (NaN equal to NaN) for arrays."""
    if got == expected:
        return True
    if desc.get("kind") not in ("array", "arrays"):
        return False
    a, b = _split(got, desc), _split(expected, desc)
    if a is None or b is None:
        return False
    for x, y in zip(a, b, strict=True):
        if x.dtype.kind in "fc":
            if not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


# ------------------------------------------------------------------------ the driver


@dataclass
class RunStats:
    answered: int = 0
    failed: int = 0
    reasons: list[str] = field(default_factory=list)
    formats: dict[int, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"answered": self.answered, "failed": self.failed, "first_failures": self.reasons}


class Driver:
    """LoadGen's SUT and QSL callbacks over one session."""

    def __init__(self, lg: Any, session: SutSession, batch_size: int, workers: int) -> None:
        self.lg = lg
        self.session = session
        self.batch_size = batch_size
        self.workers = workers
        self.samples: list[Sample] = []
        self.table: list[Sample | None] = []
        self.stats = RunStats()
        self.record_formats = False
        # sample index -> (weak reference to the SampleOutput last answered for it, pointer,
        # size): a session that hands back the same SampleOutput again skips re-encoding
        self._cache: dict[int, tuple[Callable[[], Any], int, int]] = {}
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[list[int], list[int]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    # ---------------------------------------------------------------- per run

    def begin(self, samples: list[Sample], record_formats: bool) -> None:
        self.samples = samples
        self.table = [None] * len(samples)
        self.stats = RunStats()
        self.record_formats = record_formats
        self._threads = [
            threading.Thread(target=self._serve_queue, name=f"loadgen-worker-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def end(self) -> RunStats:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []
        self.table = []
        return self.stats

    # ---------------------------------------------------------------- QSL

    def load(self, indices: list[int]) -> None:
        table, samples = self.table, self.samples
        for i in indices:
            table[i] = samples[i]

    def unload(self, indices: list[int]) -> None:
        table = self.table
        for i in indices:
            table[i] = None

    # ---------------------------------------------------------------- SUT

    def issue(self, ids: list[int], indices: list[int]) -> None:
        if self._threads:
            self._queue.put((ids, indices))
        else:
            self._serve(ids, indices)

    def flush(self) -> None:
        pass

    def _serve_queue(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._serve(*item)

    def _serve(self, ids: list[int], indices: list[int]) -> None:
        size = self.batch_size
        if len(ids) <= size:
            self._answer(ids, indices)
            return
        for start in range(0, len(ids), size):
            self._answer(ids[start : start + size], indices[start : start + size])

    def _fail(self, count: int, reason: str) -> None:
        with self._lock:
            self.stats.failed += count
            if len(self.stats.reasons) < MAX_REASONS:
                self.stats.reasons.append(reason)

    def _answer(self, ids: list[int], indices: list[int]) -> None:
        """Answer one chunk; LoadGen gets a response for every id whatever happens (an
        exception escaping into LoadGen's thread would end the process, a missing response
        would hang the run)."""
        lg = self.lg
        response = lg.QuerySampleResponse
        self.stats.answered += len(ids)
        try:
            table = self.table
            samples = cast("list[Sample]", [table[x] for x in indices])
            outs = self.session.run(samples)
            if len(outs) != len(samples):
                raise ValueError(f"session answered {len(outs)} of {len(samples)} samples")
        except Exception as error:
            self._fail(len(ids), f"session.run raised {type(error).__name__}: {error}")
            lg.QuerySamplesComplete([response(i, 0, 0) for i in ids])
            return
        responses: list[Any] = []
        keep: list[Any] = []
        append = responses.append
        if self.record_formats:
            self._answer_recording(ids, samples, outs, responses, keep)
        else:
            # the hot path: a session that hands back the very SampleOutput it gave for this
            # sample before (validated and encoded then) costs one lookup
            cache_get = self._cache.get
            for rid, s, o in zip(ids, samples, outs, strict=True):
                hit = cache_get(s.index)
                if hit is not None and hit[0]() is o:
                    append(response(rid, hit[1], hit[2]))
                else:
                    self._encode(rid, s, o, append, keep)
        lg.QuerySamplesComplete(responses)
        del keep  # LoadGen has copied what it logs

    def _encode(
        self, rid: int, s: Sample, o: SampleOutput, append: Callable[[Any], None], keep: list[Any]
    ) -> None:
        response = self.lg.QuerySampleResponse
        if o.error is not None or o.index != s.index:
            self._fail(1, _failure(s, o))
            append(response(rid, 0, 0))
            return
        out = o.output
        if out is None:
            self._cache[s.index] = (weakref.ref(o), 0, 0)
            append(response(rid, 0, 0))
            return
        try:
            pointer, size, hold, _ = encode_output(out)
        except Exception as error:
            self._fail(1, f"sample {s.index}: {type(error).__name__}: {error}")
            append(response(rid, 0, 0))
            return
        if hold is out:  # no copy was made: o keeps the buffer alive as long as it lives
            self._cache[s.index] = (weakref.ref(o), pointer, size)
        keep.append(hold)
        append(response(rid, pointer, size))

    def _answer_recording(
        self,
        ids: list[int],
        samples: list[Sample],
        outs: Sequence[SampleOutput],
        responses: list[Any],
        keep: list[Any],
    ) -> None:
        response = self.lg.QuerySampleResponse
        formats = self.stats.formats
        for rid, s, o in zip(ids, samples, outs, strict=True):
            if o.error is not None or o.index != s.index:
                self._fail(1, _failure(s, o))
                formats[s.index] = {"kind": "failed"}
                responses.append(response(rid, 0, 0))
                continue
            if o.output is None:
                formats[s.index] = {"kind": "none"}
                responses.append(response(rid, 0, 0))
                continue
            try:
                pointer, size, hold, desc = encode_output(o.output)
            except Exception as error:
                self._fail(1, f"sample {s.index}: {type(error).__name__}: {error}")
                formats[s.index] = {"kind": "failed"}
                responses.append(response(rid, 0, 0))
                continue
            formats[s.index] = desc
            keep.append(hold)
            responses.append(response(rid, pointer, size))


def _failure(sample: Sample, out: SampleOutput) -> str:
    if out.error is not None:
        return f"sample {sample.index}: {out.error}"
    return f"sample {sample.index}: the session answered it as sample {out.index}"


# ------------------------------------------------------------------------ settings


def _settings(scenario: Scenario, mode: str, **extra: Any) -> dict[str, Any]:
    return {"scenario": scenario, "mode": mode, **extra}


def _apply(lg: Any, values: dict[str, Any]) -> Any:
    settings = lg.TestSettings()
    for key, value in values.items():
        if key == "scenario":
            settings.scenario = getattr(lg.TestScenario, value)
        elif key == "mode":
            settings.mode = getattr(lg.TestMode, value)
        else:
            setattr(settings, key, value)
    return settings


@dataclass
class Plan:
    """What LoadGen is told to expect (from the args, else from the warm-up)."""

    expected_latency_ns: int
    target_qps: float
    seeds: dict[str, int]
    same_index: int


# ------------------------------------------------------------------------ the probe


@probes.register("inference.loadgen")
class LoadgenProbe:
    name: ClassVar[str] = "inference.loadgen"
    Args: ClassVar[type[BaseModel]] = LoadgenArgs

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, LoadgenArgs)
        names: dict[str, str] = {}
        if args.scenario == "SingleStream":
            names["latency_p90"] = "ms"
        elif args.scenario == "MultiStream":
            names["latency_p99"] = "ms"
        elif args.scenario == "Server":
            names["server_qps"] = "queries/s"
            names["latency_p99"] = "ms"
            if args.server_search:
                names["server_max_valid_qps"] = "queries/s"
        else:
            names["throughput"] = "samples/s"
        names["failed_samples"] = "count"
        if args.accuracy:
            names["accuracy_outputs"] = "count"
        if args.accuracy_metric is not None:
            names["accuracy"] = "%"
            names["accuracy_errors"] = "count"
        if args.compliance:
            names["test01_match"] = "ratio"
            names["test04_speedup"] = "ratio"
        return names

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, LoadgenArgs)
        steps = 2  # warm-up, performance run
        if args.compliance:
            steps += 2
        if args.accuracy or args.compliance:
            steps += 1
        if args.server_search:
            steps += 4 + args.search_steps
        return steps

    # ---------------------------------------------------------------- collect

    def collect(self, ctx: CollectContext) -> list[str]:
        import mlperf_loadgen as lg

        args = ctx.args
        assert isinstance(args, LoadgenArgs)
        try:
            samples = build_dataset(args.dataset, args.sample_count, ctx.seed)
        except (OSError, ValueError) as error:
            raise BadInput("dataset", args.dataset.get("kind"), str(error)) from None
        labels = _labels_for(args, len(samples))
        session = open_session(ctx)
        failures: list[str] = []
        try:
            ctx.evidence.write_json(
                "config.json",
                {
                    "args": args.model_dump(mode="json"),
                    "quick": ctx.quick,
                    "seed": ctx.seed,
                    "dataset": _dataset_facts(samples, args.dataset),
                    "session": _describe(session),
                    "loadgen": _loadgen_version(),
                },
            )
            if labels is not None:
                # score() reads these, never the dataset: keyed by sample (= qsl) index
                ctx.evidence.write_json(
                    LABELS_FILE,
                    {
                        "metric": args.accuracy_metric,
                        "kind": labels.kind,
                        "count": len(labels.values),
                        "source": labels.source,
                        "labels": {str(i): v for i, v in enumerate(labels.values)},
                    },
                )
            driver = Driver(lg, session, args.batch_size, args.workers)
            sut = lg.ConstructFastSUT(driver.issue, driver.flush)
            try:
                self._collect(ctx, args, lg, driver, sut, samples, failures)
            finally:
                lg.DestroyFastSUT(sut)
        finally:
            session.close()
        return failures

    def _collect(
        self,
        ctx: CollectContext,
        args: LoadgenArgs,
        lg: Any,
        driver: Driver,
        sut: Any,
        samples: list[Sample],
        failures: list[str],
    ) -> None:
        ctx.progress("warm-up")
        warm = min(args.warmup_samples, max(1, len(samples) // 4))
        pilot = _warm_up(driver.session, samples, warm, args)
        plan = _plan(args, pilot, ctx.seed, len(samples) - warm)
        ctx.evidence.write_json("warmup.json", {**pilot, "plan": plan.__dict__})
        if pilot["failed"]:
            failures.append(
                f"warm-up: {pilot['failed']} of {pilot['answered']} samples failed "
                f"(first: {pilot['first_failures'][0]})"
            )
        runs = _Runner(ctx, args, lg, driver, sut, failures)
        seeds = plan.seeds

        if args.compliance:
            # Samples no earlier step has touched: a SUT that remembers answers cannot
            # have any of them yet. Each fresh sample once, then one sample as often.
            fresh = samples[warm:] or samples
            count = min(len(fresh), args.test04_samples)
            base = {
                "min_duration_ms": 0,
                "single_stream_expected_latency_ns": plan.expected_latency_ns,
                "performance_sample_count_override": count,
                **seeds,
            }
            runs.run(
                "test04-unique",
                fresh,
                _settings("SingleStream", "PerformanceOnly", **base)
                | {"performance_issue_unique": True},
            )
            runs.run(
                "test04-same",
                fresh,
                _settings("SingleStream", "PerformanceOnly", **base)
                | {
                    "performance_issue_same": True,
                    "performance_issue_same_index": plan.same_index % count,
                    "min_query_count": count,
                    "max_query_count": count,
                },
            )

        target_qps = plan.target_qps
        if args.server_search:
            target_qps = self._search(args, runs, samples, plan) or target_qps

        main = self._scenario_settings(args, plan, target_qps, args.min_duration_s)
        if args.compliance:
            main |= {
                "accuracy_log_sampling_target": args.test01_samples,
                "accuracy_log_rng_seed": seeds["schedule_rng_seed"] ^ 0x5EED,
            }
        runs.run("performance", samples, main)

        if args.accuracy or args.compliance:
            accuracy = self._scenario_settings(args, plan, target_qps, args.min_duration_s)
            accuracy["mode"] = "AccuracyOnly"
            runs.run("accuracy", samples, accuracy, record_formats=True)

    def _scenario_settings(
        self, args: LoadgenArgs, plan: Plan, target_qps: float, min_duration_s: float
    ) -> dict[str, Any]:
        values: dict[str, Any] = {"min_duration_ms": round(min_duration_s * 1000), **plan.seeds}
        if args.min_query_count is not None:
            values["min_query_count"] = args.min_query_count
        if args.max_duration_s is not None:
            values["max_duration_ms"] = round(args.max_duration_s * 1000)
        if args.scenario == "SingleStream":
            values["single_stream_expected_latency_ns"] = plan.expected_latency_ns
        elif args.scenario == "MultiStream":
            values["multi_stream_samples_per_query"] = args.samples_per_query
            values["multi_stream_expected_latency_ns"] = plan.expected_latency_ns
        elif args.scenario == "Server":
            assert args.latency_bound_ms is not None
            values["server_target_qps"] = target_qps
            values["server_target_latency_ns"] = round(args.latency_bound_ms * 1e6)
        else:
            values["offline_expected_qps"] = target_qps
        return _settings(args.scenario, "PerformanceOnly", **values)

    def _search(
        self, args: LoadgenArgs, runs: _Runner, samples: list[Sample], plan: Plan
    ) -> float | None:
        """Bracket, then bisect, the highest Server QPS whose short trial meets the latency
        bound; returns it (None when no trial did)."""
        lo: float | None = None
        hi: float | None = None
        qps = plan.target_qps
        trial = 0

        def attempt(q: float) -> bool:
            nonlocal trial
            trial += 1
            values = self._scenario_settings(args, plan, q, args.search_trial_s)
            values.pop("min_query_count", None)
            log, stats = runs.run(f"search-{trial:02d}", samples, values)
            return trial_passed(log, stats.failed)[0]

        for _ in range(8):  # bracket: double while passing, halve while failing
            if attempt(qps):
                lo = qps
                if hi is not None:
                    break
                qps *= 2
            else:
                hi = qps
                if lo is not None:
                    break
                qps /= 2
        for _ in range(args.search_steps):
            if lo is None or hi is None or hi / lo - 1 <= args.search_tolerance:
                break
            mid = (lo + hi) / 2
            if attempt(mid):
                lo = mid
            else:
                hi = mid
        return lo

    # ---------------------------------------------------------------- score

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, LoadgenArgs)
        runs = _read_runs(evidence)
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []
        wanted = self.metrics(args)

        compliance_flags: list[str] = []
        if args.compliance:
            t04 = _test04(runs, args)
            t01 = _test01(evidence, runs, args)
            for result in (t01, t04):
                if isinstance(result, Measurement):
                    measurements.append(result)
                    if result.details.get("flagged"):
                        compliance_flags.append(result.details["flag"])
                else:
                    unmeasured.append(result)

        main = runs.get("performance")
        if main is None:
            reason = "the evidence holds no performance run (collect did not get that far)"
            for metric in wanted:
                if metric not in _SCORED_APART:
                    unmeasured.append(Unmeasured(id=metric, reason=reason))
        else:
            reasons = [invalid_reason(main.log)]
            if main.stats["failed"]:
                reasons.append(_failed_text(main.stats))
            reasons += compliance_flags
            invalid = "; ".join(r for r in reasons if r)
            measurements += _scenario_measurements(args, main, invalid, unmeasured)
            if args.server_search:
                measurements += _search_measurement(args, runs, main, invalid, unmeasured)

        failed = {name: run.stats["failed"] for name, run in runs.items()}
        answered = sum(run.stats["answered"] for run in runs.values())
        measurements.append(
            Measurement(
                id="failed_samples",
                value=float(sum(failed.values())),
                unit="count",
                n=answered,
                repeats=len(runs),
                method="samples the session reported as failed (SampleOutput.error), or "
                "answered out of order, or whose output could not be sent to LoadGen, "
                "over every LoadGen run of the task",
                details={
                    "per_run": failed,
                    "first_failures": {
                        name: run.stats["first_failures"]
                        for name, run in runs.items()
                        if run.stats["failed"]
                    },
                },
            )
        )
        if args.accuracy:
            accuracy = runs.get("accuracy")
            if accuracy is None:
                unmeasured.append(
                    Unmeasured(id="accuracy_outputs", reason="the evidence holds no accuracy run")
                )
            else:
                logged = _accuracy_entries(evidence, accuracy.dir)
                good = sum(1 for e in logged if e["data"])
                measurements.append(
                    Measurement(
                        id="accuracy_outputs",
                        value=float(good),
                        unit="count",
                        n=len(logged),
                        repeats=1,
                        method="samples answered with an output in LoadGen's AccuracyOnly "
                        "run; the outputs are kept in the evidence for a task's accuracy "
                        "script",
                        details={
                            "log": f"{accuracy.dir}/mlperf_log_accuracy.json",
                            "formats": f"{accuracy.dir}/formats.json",
                            "qsl_size": accuracy.run["qsl"]["total"],
                        },
                        invalid_reason=_failed_text(accuracy.stats)
                        if accuracy.stats["failed"]
                        else "",
                    )
                )
        if args.accuracy_metric is not None:
            for result in _accuracy(evidence, runs, args.accuracy_metric, ctx.confidence):
                if isinstance(result, Measurement):
                    measurements.append(result)
                else:
                    unmeasured.append(result)
        return ScoreResult(measurements, unmeasured)


# ------------------------------------------------------------------------ accuracy


def _predicted_class(output: Any) -> tuple[int | None, str]:
    """top1's class for one decoded output: the integer a lone integer (or integral
    number, or text) is, else the argmax of one score vector (an array, or text of
    whitespace-separated numbers). (None, why) when the output names no class."""
    if isinstance(output, dict):
        if len(output) != 1:
            return None, f"{len(output)} output arrays ({', '.join(output)}); top1 needs one"
        output = next(iter(output.values()))
    if isinstance(output, str):
        tokens = output.split()
        if len(tokens) == 1:
            try:
                return int(tokens[0]), ""
            except ValueError:
                return None, f"text output {_clip(output)!r} is not an integer class id"
        try:
            output = np.array([float(t) for t in tokens], dtype=np.float64)
        except ValueError:
            return None, f"text output {_clip(output)!r} is neither a class id nor scores"
    if not isinstance(output, np.ndarray):
        return None, f"a {type(output).__name__} output names no class"
    if output.size == 0:
        return None, "an empty output"
    if output.dtype.kind not in "iuf":
        return None, f"an output of dtype {output.dtype} names no class"
    if output.size == 1:
        value = output.reshape(-1)[0].item()
        if isinstance(value, int) or float(value).is_integer():
            return int(value), ""
        return None, f"a single number {value!r} is no class id"
    scores = np.squeeze(output)
    if scores.ndim != 1:
        return None, f"an output of shape {list(output.shape)} is not one score vector"
    if scores.dtype.kind == "f" and np.isnan(scores).any():
        return None, "NaN among the scores"
    return int(np.argmax(scores)), ""


def _predicted_text(output: Any) -> tuple[str | None, str]:
    """exact_match's answer for one decoded output: its text, stripped (a lone integer
    answer also reads as its digits). (None, why) when the output is not text."""
    if isinstance(output, bytes):
        try:
            output = output.decode("utf-8")
        except UnicodeDecodeError:
            return None, "a bytes output that is not UTF-8 text"
    if isinstance(output, str):
        return output.strip(), ""
    if isinstance(output, np.ndarray) and output.size == 1 and output.dtype.kind in "iu":
        return str(int(output.reshape(-1)[0])), ""
    if isinstance(output, np.ndarray):
        return None, f"an array output (shape {list(output.shape)}) is not text"
    return None, f"a {type(output).__name__} output is not text"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _judge_sample(
    metric: AccuracyMetric, data: str | None, desc: dict[str, Any] | None, label: Any
) -> tuple[bool | None, Any, str]:
    """(correct, prediction, why) for one sample; correct is None when its output cannot
    be scored (the sample failed, gave no output, or an output the metric cannot read)."""
    if data is None:
        return None, None, "LoadGen logged no output for it"
    kind = desc.get("kind") if desc is not None else None
    if kind is None:
        return None, None, "formats.json has no descriptor for it"
    if kind == "failed":
        return None, None, "the sample failed"
    if kind == "none":
        return None, None, "the session gave no output"
    assert desc is not None
    output = decode_output(bytes.fromhex(data), desc)
    if output is None:
        return None, None, f"its {len(data) // 2} bytes do not fit its format ({kind})"
    if metric == "top1":
        predicted, why = _predicted_class(output)
        if predicted is None:
            return None, None, why
        return predicted == label, predicted, ""
    text, why = _predicted_text(output)
    if text is None:
        return None, None, why
    return text == str(label).strip(), _clip(text), ""


_METRIC_WORDS: dict[str, str] = {
    "top1": "top-1 accuracy: each output names a class (the argmax of one score vector, "
    "or a lone integer class id, as a number or as text) compared with the sample's "
    "integer label",
    "exact_match": "exact match: each output's text, stripped, compared with the sample's label",
}


def _accuracy(
    reader: EvidenceReader, runs: dict[str, _Run], metric: AccuracyMetric, confidence: float
) -> list[Measurement | Unmeasured]:
    """`accuracy` (%) and `accuracy_errors` from the AccuracyOnly run's logged outputs,
    decoded with its formats.json, against labels.json; both Unmeasured when either is
    missing."""

    def unmeasured(reason: str) -> list[Measurement | Unmeasured]:
        return [Unmeasured(id=i, reason=reason) for i in ("accuracy", "accuracy_errors")]

    acc = runs.get("accuracy")
    if acc is None:
        return unmeasured(
            "the evidence holds no accuracy run (accuracy mode did not run: collect did "
            "not get that far)"
        )
    if not reader.exists(LABELS_FILE):
        return unmeasured(f"the evidence holds no labels ({LABELS_FILE}): nothing to score against")
    record = reader.read_json(LABELS_FILE)
    labels = {int(k): v for k, v in (record.get("labels") or {}).items()}
    if not labels:
        return unmeasured(f"{LABELS_FILE} holds no labels")
    formats_name = f"{acc.dir}/formats.json"
    if not reader.exists(formats_name):
        return unmeasured(f"the accuracy run has no {formats_name} to decode its outputs with")
    formats: dict[str, Any] = reader.read_json(formats_name)
    logged: dict[int, str] = {}
    for entry in _accuracy_entries(reader, acc.dir):
        logged.setdefault(int(entry["qsl_idx"]), str(entry.get("data", "")))

    n = len(labels)
    correct = unscorable = 0
    first_wrong: list[dict[str, Any]] = []
    first_errors: list[dict[str, Any]] = []
    for idx in sorted(labels):
        label = labels[idx]
        ok, predicted, why = _judge_sample(metric, logged.get(idx), formats.get(str(idx)), label)
        if ok:
            correct += 1
        elif ok is None:
            unscorable += 1
            if len(first_errors) < MAX_REASONS:
                first_errors.append({"qsl_idx": idx, "why": why})
        elif len(first_wrong) < MAX_REASONS:
            first_wrong.append({"qsl_idx": idx, "predicted": predicted, "label": label})
    log = f"{acc.dir}/mlperf_log_accuracy.json"
    details = {
        "metric": metric,
        "correct": correct,
        "wrong": n - correct - unscorable,
        "unscorable": unscorable,
        "first_wrong": first_wrong,
        "first_unscorable": first_errors,
        "log": log,
        "formats": formats_name,
        "labels": LABELS_FILE,
        "labels_source": record.get("source", {}),
    }
    words = _METRIC_WORDS[metric]
    return [
        accuracy_percent(
            "accuracy",
            correct,
            n,
            confidence,
            f"{words}, over every sample of LoadGen's AccuracyOnly run (its logged "
            f"outputs decoded with the run's formats.json, the labels recorded at collect "
            f"time in {LABELS_FILE}); a sample that failed, gave no output or gave one the "
            "metric cannot read counts as wrong (accuracy_errors)",
            details,
        ),
        Measurement(
            id="accuracy_errors",
            value=float(unscorable),
            unit="count",
            n=n,
            repeats=1,
            method="samples of the AccuracyOnly run that could not be scored (the sample "
            "failed, LoadGen logged no output for it, or its output does not fit its format "
            f"or names no answer for {metric}); `accuracy` counts them as wrong",
            details={"first_unscorable": first_errors, "log": log},
        ),
    ]


# metrics score() measures whether or not the performance run is in the evidence
_SCORED_APART = frozenset(
    {
        "test01_match",
        "test04_speedup",
        "failed_samples",
        "accuracy_outputs",
        "accuracy",
        "accuracy_errors",
    }
)


# ------------------------------------------------------------------------ collect helpers


def _labels_for(args: LoadgenArgs, count: int) -> Labels | None:
    """The labels accuracy_metric scores against (None without one); BadInput when the
    dataset's labels cannot be read or cannot serve the metric."""
    if args.accuracy_metric is None:
        return None
    kind = args.dataset.get("kind")
    try:
        labels = read_labels(args.dataset, count)
    except (OSError, ValueError) as error:
        raise BadInput("dataset", kind, f"labels: {error}") from None
    if args.accuracy_metric == "top1" and labels.kind != "int":
        raise BadInput(
            "dataset",
            kind,
            "accuracy_metric top1 compares class ids, and these labels are text: "
            "use exact_match, or integer labels",
        )
    return labels


class _Runner:
    """Runs LoadGen once per call and copies its logs into runs/NN-<name>/."""

    def __init__(
        self,
        ctx: CollectContext,
        args: LoadgenArgs,
        lg: Any,
        driver: Driver,
        sut: Any,
        failures: list[str],
    ) -> None:
        self.ctx, self.args, self.lg, self.driver, self.sut = ctx, args, lg, driver, sut
        self.failures = failures
        self.count = 0

    def run(
        self,
        name: str,
        samples: list[Sample],
        values: dict[str, Any],
        record_formats: bool = False,
    ) -> tuple[LoadgenLog, RunStats]:
        lg, args, driver = self.lg, self.args, self.driver
        self.count += 1
        directory = f"runs/{self.count:02d}-{name}"
        self.ctx.progress(name)
        total = len(samples)
        performance = min(total, values.get("performance_sample_count_override") or total)
        with tempfile.TemporaryDirectory(prefix="loadgen-") as tmp:
            log_settings = lg.LogSettings()
            log_settings.log_output.outdir = tmp
            log_settings.log_output.prefix = "mlperf_log_"
            log_settings.log_output.suffix = ""
            log_settings.log_output.prefix_with_datetime = False
            log_settings.log_output.copy_detail_to_stdout = False
            log_settings.log_output.copy_summary_to_stdout = False
            log_settings.enable_trace = args.trace
            driver.begin(samples, record_formats)
            qsl = lg.ConstructQSL(total, performance, driver.load, driver.unload)
            started = time.perf_counter()
            try:
                # a path that never exists: no audit.config lying in the cwd can change
                # the settings behind the harness's back
                lg.StartTestWithLogSettings(
                    self.sut, qsl, _apply(lg, values), log_settings, str(Path(tmp) / "none")
                )
            finally:
                wall = time.perf_counter() - started
                lg.DestroyQSL(qsl)
                stats = driver.end()
            out = Path(tmp)
            for name_ in (*LOG_FILES, *((TRACE_FILE,) if args.trace else ())):
                path = out / name_
                if path.is_file():
                    self.ctx.evidence.write_bytes(f"{directory}/{name_}", path.read_bytes())
            detail = out / "mlperf_log_detail.txt"
            log = parse_detail(detail.read_text(encoding="utf-8") if detail.is_file() else "")
        if record_formats:
            self.ctx.evidence.write_json(
                f"{directory}/formats.json", {str(k): v for k, v in sorted(stats.formats.items())}
            )
        record = {
            "name": name,
            "settings": values,
            "qsl": {
                "total": total,
                "performance": performance,
                "first_sample_index": samples[0].index,
            },
            "wall_s": wall,
            "trace": args.trace,
            **stats.as_json(),
        }
        if name.startswith("search-"):
            passed, why = trial_passed(log, stats.failed)
            record["trial"] = {"passed": passed, "why": why}
        self.ctx.evidence.write_json(f"{directory}/run.json", record)
        if stats.failed:
            self.failures.append(f"{name}: {_failed_text(stats.as_json())}")
        return log, stats


def trial_passed(log: LoadgenLog, failed: int) -> tuple[bool, str]:
    """A Server search trial passes when LoadGen found the latency constraint met, logged
    no error and every sample was answered. Short trials are judged on latency only (their
    duration and early stopping are the confirmation run's business)."""
    if "result_validity" not in log.values:
        return False, "LoadGen wrote no result"
    if failed:
        return False, f"{failed} samples failed"
    if log.errors:
        return False, "; ".join(log.errors)
    if log.get("result_perf_constraints_met") is not True:
        p99 = log.get("result_99.00_percentile_latency_ns")
        return False, f"latency constraint not met (p99 {p99} ns)"
    return True, "latency constraint met"


def _failed_text(stats: dict[str, Any]) -> str:
    first = stats["first_failures"][0] if stats["first_failures"] else "no reason recorded"
    return f"{stats['failed']} of {stats['answered']} samples failed (first: {first})"


def _describe(session: SutSession) -> dict[str, Any]:
    try:
        facts = session.describe()
        return json.loads(json.dumps(facts, default=str))  # type: ignore[no-any-return]
    except Exception as error:
        return {"describe_failed": f"{type(error).__name__}: {error}"}


def _loadgen_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlcommons-loadgen")
    except PackageNotFoundError:
        return "unknown"


def _dataset_facts(samples: list[Sample], spec: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256()
    for s in samples:
        if isinstance(s.data, np.ndarray):
            digest.update(s.data.tobytes())
        else:
            digest.update(str(s.data).encode("utf-8"))
        digest.update(b"\x00")
    first = samples[0].data
    facts: dict[str, Any] = {"spec": spec, "count": len(samples), "sha256": digest.hexdigest()}
    if isinstance(first, np.ndarray):
        facts.update(shape=list(first.shape), dtype=first.dtype.name)
    return facts


def _warm_up(
    session: SutSession, samples: list[Sample], count: int, args: LoadgenArgs
) -> dict[str, Any]:
    """Single-sample calls (latency), then for batching scenarios two batch calls
    (throughput), all outside LoadGen."""
    latencies: list[float] = []
    answered = failed = 0
    reasons: list[str] = []

    def call(batch: list[Sample]) -> float:
        nonlocal answered, failed
        t0 = time.perf_counter()
        try:
            outs = session.run(batch)
            errors = [o.error for o in outs if o.error is not None]
            errors += ["session answered too few samples"] * (len(batch) - len(outs))
        except Exception as error:
            errors = [f"session.run raised {type(error).__name__}: {error}"] * len(batch)
        elapsed = time.perf_counter() - t0
        answered += len(batch)
        failed += len(errors)
        reasons.extend(str(e) for e in errors[: MAX_REASONS - len(reasons)])
        return elapsed

    for s in samples[:count]:
        latencies.append(call([s]))
    batch_s: list[float] = []
    size = min(len(samples), args.batch_size)
    if args.scenario == "MultiStream":
        size = min(len(samples), args.samples_per_query)
    if args.scenario in ("Offline", "MultiStream", "Server"):
        batch = samples[:size]
        batch_s = [call(batch) for _ in range(2)]
    return {
        "single_latency_s": latencies,
        "batch_size": size if batch_s else 0,
        "batch_s": batch_s,
        "answered": answered,
        "failed": failed,
        "first_failures": reasons,
    }


def _plan(args: LoadgenArgs, pilot: dict[str, Any], seed: int, fresh: int) -> Plan:
    latencies = sorted(pilot["single_latency_s"])
    single = latencies[len(latencies) // 2] if latencies else 1e-3
    floor_s = max(1e-6, args.min_duration_s * 2 / MAX_GENERATED_QUERIES)
    if args.expected_latency_ms is not None:
        expected_ns = round(args.expected_latency_ms * 1e6)
    else:
        per_query = single
        if args.scenario == "MultiStream" and pilot["batch_s"]:
            per_query = min(pilot["batch_s"])
        # under-estimating only makes LoadGen pre-generate more queries; over-estimating
        # makes it run out before the minimum duration (an INVALID run)
        expected_ns = round(max(per_query / 2, floor_s) * 1e9)
    if args.target_qps is not None:
        qps = args.target_qps
    elif args.scenario == "Offline" and pilot["batch_s"]:
        # over-estimating only lengthens the run; under-estimating ends it too soon
        qps = 1.25 * pilot["batch_size"] / max(min(pilot["batch_s"]), 1e-9)
        qps = min(qps, WARMUP_MAX_OFFLINE_QPS)
    else:
        qps = 0.5 / max(single, 1e-9)
    rng = random.Random(f"inference.loadgen:{seed}")
    seeds = {
        "qsl_rng_seed": rng.getrandbits(63),
        "sample_index_rng_seed": rng.getrandbits(63),
        "schedule_rng_seed": rng.getrandbits(63),
    }
    return Plan(expected_ns, qps, seeds, rng.randrange(max(1, fresh)))


# ------------------------------------------------------------------------ score helpers


@dataclass
class _Run:
    dir: str
    run: dict[str, Any]
    log: LoadgenLog

    @property
    def stats(self) -> dict[str, Any]:
        return self.run


def _read_runs(evidence: EvidenceReader) -> dict[str, _Run]:
    """Every LoadGen run in the evidence, by name, in the order they ran."""
    root = evidence.path("runs")
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    runs: dict[str, _Run] = {}
    for directory in names:
        rel = f"runs/{directory}"
        record = evidence.read_json(f"{rel}/run.json")
        detail = f"{rel}/mlperf_log_detail.txt"
        text = evidence.read_text(detail) if evidence.exists(detail) else ""
        runs[record["name"]] = _Run(rel, record, parse_detail(text))
    return runs


def _ns_to_ms(value: Any) -> float:
    return float(value) / 1e6


def _scenario_measurements(
    args: LoadgenArgs, main: _Run, invalid: str, unmeasured: list[Unmeasured]
) -> list[Measurement]:
    log = main.log
    if "result_validity" not in log.values:
        reason = "LoadGen wrote no result for the performance run"
        for metric in ("latency_p90", "latency_p99", "server_qps", "throughput"):
            if metric in LoadgenProbe().metrics(args):
                unmeasured.append(Unmeasured(id=metric, reason=reason))
        return []
    queries = int(log.get("result_query_count") or 0)
    common = {
        "validity": log.get("result_validity"),
        "loadgen_log": f"{main.dir}/mlperf_log_summary.txt",
        "query_count": queries,
        "mean_latency_ms": _ns_to_ms(log.get("result_mean_latency_ns", 0)),
        "settings": main.run["settings"],
    }
    met = log.get("early_stopping_met") is True
    out: list[Measurement] = []
    if args.scenario in ("SingleStream", "MultiStream"):
        single = args.scenario == "SingleStream"
        key = (
            "result_90.00_percentile_latency_ns"
            if single
            else "result_99.00_percentile_per_query_latency_ns"
        )
        es_key = "early_stopping_latency_ss" if single else "early_stopping_latency_ms"
        estimate = log.get(es_key)
        pct = "p90" if single else "p99"
        high = _ns_to_ms(estimate) if met and estimate else None
        out.append(
            Measurement(
                id=f"latency_{pct}",
                value=_ns_to_ms(log.get(key)),
                unit="ms",
                n=queries,
                repeats=1,
                ci=Interval(
                    low=None,
                    high=high,
                    confidence=EARLY_STOPPING_CONFIDENCE,
                    method=f"LoadGen's early-stopping estimate of the {pct} "
                    "(one-sided, 99%, tolerance 0), the figure MLPerf reports",
                    need=""
                    if high is not None
                    else f"LoadGen's early stopping was not met: "
                    f"{_squash(log.get('early_stopping_result', ''))}",
                ),
                method=f"MLPerf LoadGen {args.scenario}: {pct} "
                + ("sample latency" if single else "per-query latency")
                + " over the performance run"
                + ("" if single else f", {args.samples_per_query} samples per query"),
                details={**common, "early_stopping_estimate_ms": _ns_to_ms(estimate or 0)},
                invalid_reason=invalid,
            )
        )
    elif args.scenario == "Server":
        bound = args.latency_bound_ms
        completed = float(log.get("result_completed_samples_per_sec") or 0.0)
        details = {
            **common,
            "scheduled_samples_per_s": float(log.get("result_scheduled_samples_per_sec") or 0),
            "target_qps": main.run["settings"].get("server_target_qps"),
            "latency_bound_ms": bound,
            "overlatency_queries": log.get("result_overlatency_query_count"),
            "early_stopping": _squash(log.get("early_stopping_result", "")),
        }
        out.append(
            Measurement(
                id="server_qps",
                value=completed,
                unit="queries/s",
                n=queries,
                repeats=1,
                method="MLPerf LoadGen Server: completed queries per second (one sample each) "
                f"under Poisson arrivals at the target QPS, p99 latency bound {bound:g} ms; "
                "LoadGen's validity rules (latency bound, minimum duration and queries, "
                "early stopping) gate the figure",
                details=details,
                invalid_reason=invalid,
            )
        )
        constraint = log.get("result_perf_constraints_met") is True
        out.append(
            Measurement(
                id="latency_p99",
                value=_ns_to_ms(log.get("result_99.00_percentile_latency_ns")),
                unit="ms",
                n=queries,
                repeats=1,
                ci=Interval(
                    low=None,
                    high=bound if met and constraint else None,
                    confidence=EARLY_STOPPING_CONFIDENCE,
                    method="LoadGen's Server early stopping: with 99% confidence the p99 "
                    "latency is within the bound when the run is successful",
                    need=""
                    if met and constraint
                    else "LoadGen's early stopping or latency constraint was not met: "
                    f"{_squash(log.get('early_stopping_result', ''))}",
                ),
                method="MLPerf LoadGen Server: p99 sample latency at the target QPS",
                details=details,
                invalid_reason=invalid,
            )
        )
    else:
        out.append(
            Measurement(
                id="throughput",
                value=float(log.get("result_samples_per_second") or 0.0),
                unit="samples/s",
                n=int(log.get("effective_min_sample_count") or 0),
                repeats=1,
                method="MLPerf LoadGen Offline: samples per second, all samples issued at "
                "once; LoadGen's validity rules (minimum duration and samples) gate the "
                "figure",
                details={**common, "expected_qps": main.run["settings"]["offline_expected_qps"]},
                invalid_reason=invalid,
            )
        )
    return out


def _search_measurement(
    args: LoadgenArgs,
    runs: dict[str, _Run],
    main: _Run,
    invalid: str,
    unmeasured: list[Unmeasured],
) -> list[Measurement]:
    trials = []
    for name, run in runs.items():
        if not name.startswith("search-"):
            continue
        passed, why = trial_passed(run.log, run.stats["failed"])
        trials.append(
            {
                "trial": name,
                "target_qps": run.run["settings"]["server_target_qps"],
                "passed": passed,
                "why": why,
                "p99_ms": _ns_to_ms(run.log.get("result_99.00_percentile_latency_ns", 0)),
                "completed_qps": run.log.get("result_completed_samples_per_sec"),
                "validity": run.log.get("result_validity"),
            }
        )
    passing = [t["target_qps"] for t in trials if t["passed"]]
    if not passing:
        tried = ", ".join(f"{t['target_qps']:.4g}" for t in trials) or "none"
        unmeasured.append(
            Unmeasured(
                id="server_max_valid_qps",
                reason=f"no Server trial met the {args.latency_bound_ms:g} ms p99 bound "
                f"(target QPS tried: {tried})",
            )
        )
        return []
    best = max(passing)
    confirm = main.run["settings"].get("server_target_qps")
    return [
        Measurement(
            id="server_max_valid_qps",
            value=float(best),
            unit="queries/s",
            n=len(trials),
            repeats=1,
            method=f"bracketing then bisection over the Server target QPS with "
            f"{args.search_trial_s:g} s trials judged on LoadGen's latency constraint; the "
            f"highest passing target, confirmed by the full performance run at "
            f"{confirm:.4g} QPS (its LoadGen validity decides this figure's)",
            details={"trials": trials, "confirmation_run": main.dir},
            invalid_reason=invalid,
        )
    ]


def _accuracy_entries(evidence: EvidenceReader, directory: str) -> list[dict[str, Any]]:
    name = f"{directory}/mlperf_log_accuracy.json"
    if not evidence.exists(name):
        return []
    entries = json.loads(evidence.read_text(name) or "[]")
    return entries if isinstance(entries, list) else []


def _test01(
    reader: EvidenceReader, runs: dict[str, _Run], args: LoadgenArgs
) -> Measurement | Unmeasured:
    perf, acc = runs.get("performance"), runs.get("accuracy")
    if perf is None or acc is None:
        return Unmeasured(
            id="test01_match", reason="the evidence lacks the performance or the accuracy run"
        )
    formats = reader.read_json(f"{acc.dir}/formats.json")
    expected = {int(e["qsl_idx"]): e["data"] for e in _accuracy_entries(reader, acc.dir)}
    sampled = _accuracy_entries(reader, perf.dir)
    compared = matched = skipped = 0
    mismatches: list[dict[str, Any]] = []
    for entry in sampled:
        idx = int(entry["qsl_idx"])
        desc = formats.get(str(idx))
        if idx not in expected or desc is None or desc["kind"] == "failed":
            skipped += 1
            continue
        compared += 1
        got, want = bytes.fromhex(entry["data"]), bytes.fromhex(expected[idx])
        if outputs_match(got, want, desc, args.test01_rtol, args.test01_atol):
            matched += 1
        elif len(mismatches) < MAX_REASONS:
            mismatches.append({"qsl_idx": idx, "seq_id": entry.get("seq_id")})
    if not compared:
        return Unmeasured(
            id="test01_match",
            reason=f"LoadGen logged {len(sampled)} performance-mode outputs and none could "
            "be compared with an accuracy-mode output",
        )
    fraction = matched / compared
    flagged = fraction < args.test01_min_match
    flag = (
        f"TEST01-like check failed: {compared - matched} of {compared} performance-mode "
        f"outputs differ from the accuracy-mode outputs of the same samples"
    )
    return Measurement(
        id="test01_match",
        value=fraction,
        unit="ratio",
        n=compared,
        repeats=1,
        method="TEST01-like: LoadGen logged a seeded random subset of the performance run's "
        "outputs (accuracy_log_sampling_target); each is compared with the AccuracyOnly "
        f"run's output for the same sample (text exactly, arrays within rtol "
        f"{args.test01_rtol:g}, atol {args.test01_atol:g})",
        details={
            "compared": compared,
            "matched": matched,
            "not_comparable": skipped,
            "first_mismatches": mismatches,
            "min_match": args.test01_min_match,
            "flagged": flagged,
            "flag": flag if flagged else "",
        },
    )


def _test04(runs: dict[str, _Run], args: LoadgenArgs) -> Measurement | Unmeasured:
    unique, same = runs.get("test04-unique"), runs.get("test04-same")
    if unique is None or same is None:
        return Unmeasured(id="test04_speedup", reason="the evidence lacks the TEST04-like runs")
    key = "result_50.00_percentile_latency_ns"
    median_unique, median_same = unique.log.get(key), same.log.get(key)
    if not median_unique or not median_same:
        return Unmeasured(
            id="test04_speedup", reason="LoadGen reported no latencies for the TEST04 runs"
        )
    ratio = float(median_unique) / float(median_same)
    saving_ms = _ns_to_ms(median_unique) - _ns_to_ms(median_same)
    flagged = ratio > args.test04_max_ratio and saving_ms >= args.test04_min_saving_ms
    flag = (
        f"TEST04-like check failed: the SUT answered one repeated sample {ratio:.2f}x faster "
        f"({saving_ms:.3g} ms less per sample) than distinct samples (limit "
        f"{args.test04_max_ratio:g}x): suspected result caching"
    )
    failed = unique.stats["failed"] + same.stats["failed"]
    return Measurement(
        id="test04_speedup",
        value=ratio,
        unit="ratio",
        n=int(unique.log.get("result_query_count") or 0)
        + int(same.log.get("result_query_count") or 0),
        repeats=1,
        method="TEST04-like: SingleStream median latency over samples no earlier step had "
        "touched, each issued once (performance_issue_unique), divided by the median latency "
        "of one of them issued as often (performance_issue_same); a SUT that remembers "
        f"answers is much faster on the repeat (flagged above {args.test04_max_ratio:g}x "
        f"when that saves at least {args.test04_min_saving_ms:g} ms per sample)",
        details={
            "median_unique_ms": _ns_to_ms(median_unique),
            "median_same_ms": _ns_to_ms(median_same),
            "mean_unique_ms": _ns_to_ms(unique.log.get("result_mean_latency_ns") or 0),
            "mean_same_ms": _ns_to_ms(same.log.get("result_mean_latency_ns") or 0),
            "max_ratio": args.test04_max_ratio,
            "min_saving_ms": args.test04_min_saving_ms,
            "flagged": flagged,
            "flag": flag if flagged else "",
        },
        invalid_reason=f"{failed} samples failed in the TEST04 runs" if failed else "",
    )
