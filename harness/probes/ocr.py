"""D04 real-accuracy check: a really trained OCR model in FP32, FP16 and INT8.

`models.ocr` runs the PP-OCRv4 text-recognition model that ships inside the
`rapidocr-onnxruntime` package (nothing is downloaded) directly through ONNX Runtime.
collect: renders a seeded set of short text lines (upper-case letters and digits, e.g.
"A7K 2031") with Pillow's built-in font at a fixed height, stores each image (PNG), its
sha256 and its label; builds the FP16 and INT8 variants with the D04 framework helpers
(`framework.variants.make_variant`; for INT8 the FP32 graph first goes through
onnxruntime's `quant_pre_process`, which folds the model's Constant weights into
initializers the quantisers need), records each variant's op counts (the quantised ops
must be there) and every predicted text (rapidocr's preprocessing and CTC greedy decoding
with the character list stored in the model's metadata).
score: per precision, exact-match accuracy with Clopper-Pearson bounds, character error
rate (Levenshtein distance summed over the set / reference characters), the exact-match
drop vs FP32 in pp (paired bound), and the count of verified precisions. score() reads
only the evidence and the task's args.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.framework import (
    CPU_PROVIDER,
    captured_logs,
    graph_facts,
    make_variant,
    session_options,
    sha256_bytes,
)
from harness.registry import probes
from harness.schema import Measurement, Unmeasured
from harness.scoring.accuracy import accuracy_percent, paired_drop_pp
from harness.scoring.text import levenshtein

OcrPrecision = Literal["fp32", "fp16", "int8"]
ALL_PRECISIONS: tuple[OcrPrecision, ...] = ("fp32", "fp16", "int8")
DEFAULT_TOLERANCE_PP: dict[str, float] = {"fp16": 1.0, "int8": 2.0}
REC_MODEL = "models/ch_PP-OCRv4_rec_infer.onnx"  # inside the rapidocr_onnxruntime package
HEIGHT = 48  # PP-OCRv4 rec input height (rapidocr rec_img_shape [3, 48, 320])
MIN_WIDTH = 320
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
DIGITS = "0123456789"
# Ops that show a graph was quantised (ONNX and com.microsoft domains).
QUANTISED_OPS = (
    "ConvInteger",
    "MatMulInteger",
    "DynamicQuantizeLinear",
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
)
REQUIRED_OPS: dict[str, tuple[str, ...]] = {
    "int8:dynamic": ("DynamicQuantizeLinear",),
    "int8:static": ("QuantizeLinear",),
}
INTEGER_KERNELS: dict[str, tuple[str, ...]] = {
    "int8:dynamic": ("ConvInteger", "MatMulInteger"),
    "int8:static": ("QLinearConv", "QLinearMatMul"),
}


class OcrArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    lines: int = Field(default=200, ge=4, le=5000)
    font_size: int = Field(default=32, ge=12, le=44)
    precisions: list[OcrPrecision] = Field(default_factory=lambda: list(ALL_PRECISIONS))
    int8_method: Literal["dynamic", "static"] = "dynamic"
    calibration_lines: int = Field(default=8, ge=1, le=256)
    tolerance_pp: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_TOLERANCE_PP))
    intra_op_threads: int | None = Field(default=None, ge=1)

    @field_validator("precisions")
    @classmethod
    def _precisions(cls, value: list[OcrPrecision]) -> list[OcrPrecision]:
        if "fp32" not in value:
            raise ValueError("fp32 is the reference every other precision is compared with")
        if len(set(value)) != len(value):
            raise ValueError("a precision is listed twice")
        return value

    @field_validator("tolerance_pp")
    @classmethod
    def _tolerances(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(DEFAULT_TOLERANCE_PP))
        if unknown:
            raise ValueError(f"tolerance_pp: unknown precision(s) {unknown} (fp16, int8)")
        if any(not math.isfinite(v) or v < 0 for v in value.values()):
            raise ValueError("tolerance_pp: tolerances are finite numbers >= 0")
        return {**DEFAULT_TOLERANCE_PP, **value}


# ------------------------------------------------------------------------ pure helpers


def text_lines(count: int, seed: int) -> list[str]:
    """Seeded lines like "A7K 2031": three letters/digits, a space, four digits."""
    rng = random.Random(f"models.ocr:{seed}")
    return [
        "".join(rng.choice(LETTERS + DIGITS) for _ in range(3))
        + " "
        + "".join(rng.choice(DIGITS) for _ in range(4))
        for _ in range(count)
    ]


def ctc_greedy(probs: np.ndarray, characters: Sequence[str]) -> str:
    """rapidocr's CTCLabelDecode: argmax per step, repeats merged, blank (index 0) dropped."""
    out: list[str] = []
    previous = -1
    for index in probs.argmax(axis=-1).tolist():
        if index != previous and index != 0:
            out.append(characters[index])
        previous = index
    return "".join(out)


# ------------------------------------------------------------------------ collect helpers


def _rapidocr_rec() -> tuple[bytes, str, str]:
    """The recognition model's bytes, its path and rapidocr's version."""
    from importlib.metadata import version

    import rapidocr_onnxruntime

    path = Path(rapidocr_onnxruntime.__file__).parent / REC_MODEL
    return path.read_bytes(), str(path), version("rapidocr-onnxruntime")


def _characters(model_bytes: bytes) -> list[str]:
    """The decoding list as rapidocr builds it: blank, the model's `character` metadata
    (one per line), then a space."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=[CPU_PROVIDER])
    meta = session.get_modelmeta().custom_metadata_map
    if "character" not in meta:
        raise ValueError("the recognition model carries no `character` metadata")
    return ["blank", *meta["character"].splitlines(), " "]


def _render(text: str, font_size: int) -> bytes:
    """Black text on white, HEIGHT px high, Pillow's built-in scalable font; PNG bytes."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=font_size)
    left, top, right, bottom = (math.floor(v) for v in font.getbbox(text))
    image = Image.new("L", (right - left + 17, HEIGHT), 255)
    y = (HEIGHT - (bottom - top)) // 2 - top
    ImageDraw.Draw(image).text((8 - left, y), text, fill=0, font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _preprocess(png: bytes) -> np.ndarray:
    """rapidocr's resize_norm_img for one line already HEIGHT px high: RGB, CHW,
    ((x / 255) - 0.5) / 0.5, zero-padded on the right to max(320, width)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    h, w = rgb.shape[:2]
    if h != HEIGHT:
        raise ValueError(f"image height {h}, expected {HEIGHT}")
    x = np.zeros((1, 3, HEIGHT, max(MIN_WIDTH, w)), dtype=np.float32)
    x[0, :, :, :w] = (rgb.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return x


def _pre_process(model_bytes: bytes) -> bytes:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp, captured_logs():
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        src.write_bytes(model_bytes)
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
        return dst.read_bytes()


def _quantised_ops(ops: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in ops.items() if k.split(".")[-1] in QUANTISED_OPS or "QLinear" in k}


def _constant_types(model_bytes: bytes) -> dict[str, int]:
    """Element types of the Constant nodes' tensors (this model keeps its weights there)."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    types: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type != "Constant":
            continue
        for attr in node.attribute:
            if attr.name == "value":
                name = onnx.TensorProto.DataType.Name(attr.t.data_type).lower()
                types[name] = types.get(name, 0) + 1
    return dict(sorted(types.items()))


def _metric_names(p: str) -> dict[str, str]:
    names = {f"{p}.exact_match": "%", f"{p}.cer": "%"}
    if p != "fp32":
        names[f"{p}.accuracy_drop"] = "pp"
    return names


# ------------------------------------------------------------------------ the probe


@probes.register("models.ocr")
class OcrProbe:
    name: ClassVar[str] = "models.ocr"
    Args: ClassVar[type[BaseModel]] = OcrArgs

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, OcrArgs)
        names: dict[str, str] = {}
        for p in args.precisions:
            names.update(_metric_names(p))
        names["verified_precisions"] = "count"
        return names

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, OcrArgs)
        return 1 + len(args.precisions)

    def collect(self, ctx: CollectContext) -> list[str]:
        import onnxruntime as ort

        args = ctx.args
        assert isinstance(args, OcrArgs)
        ctx.progress("render the labelled lines")
        fp32, model_path, rapidocr_version = _rapidocr_rec()
        characters = _characters(fp32)
        labels = text_lines(args.lines, ctx.seed)
        samples = []
        images: list[bytes] = []
        for i, text in enumerate(labels):
            png = _render(text, args.font_size)
            name = f"images/{i:05d}.png"
            ctx.evidence.write_bytes(name, png)
            images.append(png)
            samples.append({"text": text, "image": name, "sha256": sha256_bytes(png)})
        ctx.evidence.write_json("labels.json", samples)
        calib_texts = text_lines(args.calibration_lines, ctx.seed + 1_000_003)
        calibration = np.concatenate(
            [_preprocess(_render(t, args.font_size))[..., :MIN_WIDTH] for t in calib_texts]
        )
        ctx.evidence.write_json(
            "reference.json",
            {
                "model": "PP-OCRv4 text recognition (ch_PP-OCRv4_rec_infer.onnx)",
                "package": f"rapidocr-onnxruntime {rapidocr_version}",
                "model_path": model_path,
                "model_sha256": sha256_bytes(fp32),
                "characters": len(characters),
                "characters_sha256": hashlib.sha256(
                    "\n".join(characters).encode("utf-8")
                ).hexdigest(),
                "decoding": "CTC greedy: argmax per step, repeats merged, blank (0) dropped; "
                "characters = blank + model metadata `character` + space (as rapidocr)",
                "preprocessing": f"RGB, height {HEIGHT}, ((x/255)-0.5)/0.5, CHW, zero-padded "
                f"right to max({MIN_WIDTH}, width) (rapidocr resize_norm_img)",
                "rendering": f"Pillow {_pillow_version()} ImageFont.load_default(size="
                f"{args.font_size}), black on white, {HEIGHT} px high",
                "onnxruntime": ort.__version__,
                "int8_method": args.int8_method,
                "int8_calibration_lines": len(calib_texts) if args.int8_method == "static" else 0,
            },
        )
        failures: list[str] = []
        for p in args.precisions:
            ctx.progress(f"{p}: build and read")
            source = _pre_process(fp32) if p == "int8" else fp32
            variant = make_variant(
                p,
                source,
                int8_method=args.int8_method,
                calibration=calibration,
                input_name="x",
                int4_block_size=32,
                int4_symmetric=True,
                int4_accuracy_level=None,
                int4_quantizer="auto",
            )
            method = variant.method
            if p == "int8":
                method = "onnxruntime quant_pre_process (Constants folded), then " + method
            record: dict[str, Any] = {"precision": p, "method": method}
            if variant.log:
                record["tool_log"] = variant.log[-50:]
            if variant.model_bytes is None:
                record.update(status="not_produced", reason=f"{p} model: {variant.reason}")
                failures.append(record["reason"])
                ctx.evidence.write_json(f"{p}.json", record)
                continue
            graph = graph_facts(variant.model_bytes)
            record["graph"] = {
                **graph,
                "constant_types": _constant_types(variant.model_bytes),
                "quantised_ops": _quantised_ops(graph["ops"]),
            }
            record["file"] = {
                "bytes": len(variant.model_bytes),
                "sha256": sha256_bytes(variant.model_bytes),
            }
            try:
                session = ort.InferenceSession(
                    variant.model_bytes,
                    session_options(args.intra_op_threads),
                    providers=[CPU_PROVIDER],
                )
                name = session.get_inputs()[0].name
                predictions = [
                    ctc_greedy(
                        np.asarray(session.run(None, {name: _preprocess(png)})[0])[0], characters
                    )
                    for png in images
                ]
            except Exception as error:
                record.update(status="not_run", reason=f"{p}: {type(error).__name__}: {error}")
                failures.append(record["reason"])
                ctx.evidence.write_json(f"{p}.json", record)
                continue
            record.update(status="measured", predictions=predictions)
            ctx.evidence.write_json(f"{p}.json", record)
        return failures

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, OcrArgs)
        samples = evidence.read_json("labels.json")
        for s in samples:
            actual = hashlib.sha256(evidence.path(s["image"]).read_bytes()).hexdigest()
            if actual != s["sha256"]:
                raise ValueError(f"{s['image']}: sha256 {actual}, labels.json says {s['sha256']}")
        labels = [str(s["text"]) for s in samples]
        n = len(labels)
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []
        status: dict[str, str] = {}
        correct: dict[str, np.ndarray] = {}
        for p in args.precisions:
            record = evidence.read_json(f"{p}.json")
            reason = _unusable(p, record, args, n)
            if reason:
                status[p] = reason
                unmeasured += [Unmeasured(id=m, reason=reason) for m in _metric_names(p)]
                continue
            predictions = [str(t) for t in record["predictions"]]
            correct[p] = np.array([a == b for a, b in zip(predictions, labels, strict=True)])
            measurements.append(_exact_match(p, correct[p], ctx.confidence))
            measurements.append(_cer(p, labels, predictions))
            if p == "fp32":
                status[p] = "ok"
        for p in args.precisions:
            if p == "fp32" or p not in correct:
                continue
            if "fp32" not in correct:
                status[p] = f"no FP32 reference: {status.get('fp32', 'not measured')}"
                unmeasured.append(Unmeasured(id=f"{p}.accuracy_drop", reason=status[p]))
                continue
            drop = _drop(p, correct["fp32"], correct[p], ctx.confidence)
            measurements.append(drop)
            tolerance = args.tolerance_pp.get(p, DEFAULT_TOLERANCE_PP[p])
            high = drop.ci.high if drop.ci is not None else None
            status[p] = (
                "ok"
                if high is not None and high <= tolerance
                else f"exact-match drop {drop.value:.3g} pp (upper bound {high:.3g} pp) exceeds "
                f"the tolerance {tolerance:g} pp"
            )
        verified = sum(1 for p in args.precisions if status.get(p) == "ok")
        facts = evidence.read_json("reference.json")
        measurements.append(
            Measurement(
                id="verified_precisions",
                value=float(verified),
                unit="count",
                n=len(args.precisions),
                repeats=1,
                method=(
                    "precisions of the real trained OCR recognition model whose variant was "
                    "produced, holds its quantised ops, ran, and whose exact-match drop vs FP32 "
                    f"on the {n} rendered lines has a {ctx.confidence:.0%} upper bound within "
                    f"the tolerance; FP32 counts when it ran. Model: {facts.get('model')}, "
                    f"sha256 {facts.get('model_sha256')}."
                ),
                details={
                    "per_precision": {p: status.get(p, "not requested") for p in args.precisions},
                    "tolerance_pp": {
                        p: args.tolerance_pp[p] for p in args.precisions if p != "fp32"
                    },
                },
            )
        )
        return ScoreResult(measurements, unmeasured)


def _pillow_version() -> str:
    import PIL

    return str(PIL.__version__)


def _unusable(p: str, record: dict[str, Any], args: OcrArgs, n: int) -> str:
    if record.get("status") != "measured":
        return str(record.get("reason", "not measured"))
    if len(record["predictions"]) != n:
        raise ValueError(f"{p}.json holds {len(record['predictions'])} predictions for {n} lines")
    ops = record["graph"]["ops"]
    if p == "int8":
        key = f"int8:{args.int8_method}"
        missing = [op for op in REQUIRED_OPS[key] if not ops.get(op)]
        if missing or not any(ops.get(op) for op in INTEGER_KERNELS[key]):
            return f"the INT8 graph holds no {key} quantised ops: not quantised (ops: {ops})"
    weights = {
        k: record["graph"]["initializer_types"].get(k, 0)
        + record["graph"].get("constant_types", {}).get(k, 0)
        for k in ("float", "float16")
    }
    if p == "fp16" and not weights["float16"]:
        return f"the FP16 graph holds no float16 weights (initializers and Constants: {weights})"
    return ""


def _exact_match(p: str, correct: np.ndarray, confidence: float) -> Measurement:
    n, right = len(correct), int(correct.sum())
    return accuracy_percent(
        f"{p}.exact_match",
        right,
        n,
        confidence,
        f"lines the {p.upper()} PP-OCRv4 recognition model reads exactly, of {n}",
        {"correct": right, "lines": n},
    )


def _cer(p: str, labels: list[str], predictions: list[str]) -> Measurement:
    edits = sum(levenshtein(r, h) for r, h in zip(labels, predictions, strict=True))
    chars = sum(len(r) for r in labels)
    return Measurement(
        id=f"{p}.cer",
        value=100.0 * edits / chars,
        unit="%",
        n=chars,
        repeats=1,
        method=(
            f"character error rate of the {p.upper()} model: Levenshtein distances summed "
            f"over the {len(labels)} lines / {chars} reference characters"
        ),
        details={"edits": edits, "reference_characters": chars},
    )


def _drop(p: str, ref: np.ndarray, got: np.ndarray, confidence: float) -> Measurement:
    return paired_drop_pp(
        f"{p}.accuracy_drop",
        ref,
        got,
        confidence,
        f"FP32 exact-match accuracy minus {p.upper()} exact-match accuracy, same {len(got)} lines",
    )
