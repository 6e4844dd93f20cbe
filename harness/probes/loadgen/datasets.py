"""Dataset kinds for LoadGen's query sample library, and the labels `accuracy_metric`
scores against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.adapters.protocol import Sample
from harness.evidence import sha256_file

LABELS_FILE = "labels.json"  # the labels accuracy_metric scores against (evidence root)

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
