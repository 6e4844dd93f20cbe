"""The `models.reference` score, a pure function of the evidence: pass/fail of every
comparison, throughput with order-statistic bounds on the median repeat, and the counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.evidence import EvidenceReader
from harness.probes.base import ScoreResult
from harness.probes.models.accuracy import (
    accuracy_failures,
    decisive_agreement,
    training_failures,
)
from harness.probes.models.args import ModelsArgs
from harness.probes.models.plan import (
    FRAMEWORK,
    FRAMEWORKS,
    INFER_METRICS,
    RESNET50,
    RESNET50_NOTE,
    WEIGHTS_NOTE,
    family_of,
    inference_runs,
    run_name,
)
from harness.schema import Interval, Measurement, Unmeasured
from harness.stats import median_bounds


def score(evidence: EvidenceReader, args: ModelsArgs, confidence: float) -> ScoreResult:
    """Every inference and training run scored from its evidence, then the counts."""
    device = evidence.read_json("device.json")
    measurements: list[Measurement] = []
    unmeasured: list[Unmeasured] = []
    # (model, backend, precision) -> "ok" or why not
    infer_status: dict[tuple[str, str, str], str] = {}
    on_dut: dict[tuple[str, str, str], bool] = {}
    for key, backend, precision in inference_runs(args):
        name = run_name(key, backend, precision)
        run = evidence.read_json(f"inference/{name}.json")
        on_dut[(key, backend, precision)] = bool(run.get("on_device_under_test"))
        status, ms, um = _score_inference(name, run, args, confidence, device)
        infer_status[(key, backend, precision)] = status
        measurements += ms
        unmeasured += um
    train_status: dict[tuple[str, str], str] = {}
    for family in args.families:
        for precision in args.train_precisions:
            record = evidence.read_json(f"training/{family}.{precision}.json")
            status, ms, um = _score_training(family, precision, record, args, confidence)
            train_status[(family, precision)] = status
            measurements += ms
            unmeasured += um
    measurements += _counts(args, infer_status, on_dut, train_status, device)
    return ScoreResult(measurements, unmeasured)


def _rates(samples_per_repeat: float, repeat_s: Sequence[float]) -> list[float]:
    return [samples_per_repeat / s for s in repeat_s]


def _interval(bounds: Any, confidence: float, repeats: int) -> Interval:
    return Interval(
        low=bounds.low,
        high=bounds.high,
        confidence=confidence,
        method="one-sided distribution-free order-statistic bounds on the median repeat",
        need=(
            ""
            if bounds.low is not None
            else f"need at least {bounds.min_n} timed repeats for a {confidence:.0%} bound "
            f"(have {repeats})"
        ),
    )


def _device_name(device: dict[str, Any]) -> str:
    return str(device.get("name") or device.get("device", ""))


def _score_inference(
    name: str,
    run: dict[str, Any],
    args: ModelsArgs,
    confidence: float,
    device: dict[str, Any],
) -> tuple[str, list[Measurement], list[Unmeasured]]:
    ids = [f"{name}.{m}" for m in INFER_METRICS]
    if run.get("status") != "measured":
        reason = f"{run.get('status', 'not run')}: {run.get('reason', 'not measured')}"
        return reason, [], [Unmeasured(id=i, reason=reason) for i in ids]
    precision = run["precision"]
    tol = args.tolerances[precision]
    acc = run["accuracy"]
    misses = accuracy_failures(acc, tol)
    note = RESNET50_NOTE if run["model"] == RESNET50 else WEIGHTS_NOTE
    where = run["backend"] if run["backend"] != "torch" else f"torch on {run['device']}"
    compared = acc.get("output", "the model output")
    method = (
        f"{where}, {precision}: {compared} on a fixed seeded batch of {acc['shape'][0]} "
        f"vs {run['reference']}; {note}"
    )
    tol_text = (
        f"cosine >= {tol.min_cosine:g}, top-1 agreement >= {tol.min_top1_agreement:g} "
        f"(flips at reference near-ties, gap <= {tol.tie_margin:g} of max |ref|, excused), "
        f"max rel error <= {tol.max_rel_err:g}"
    )
    decisive, excused = (None, 0) if not acc.get("finite") else decisive_agreement(acc, tol)
    details = {
        "accuracy": acc,
        "top1_decisive_agreement": decisive,
        "top1_excused_flips": excused,
        "tolerance": tol.model_dump(),
        "passed": not misses,
        "misses": misses,
        "on_device_under_test": run["on_device_under_test"],
    }
    measurements: list[Measurement] = []
    unmeasured: list[Unmeasured] = []
    accuracy_values = {
        "cosine": acc.get("cosine"),
        "top1_agreement": acc.get("top1_agreement"),
        "max_rel_err": acc.get("max_rel_err"),
    }
    for metric, value in accuracy_values.items():
        if value is None:
            unmeasured.append(Unmeasured(id=f"{name}.{metric}", reason="; ".join(misses)))
            continue
        n = acc["decisions"] if metric == "top1_agreement" else acc["values"]
        measurements.append(
            Measurement(
                id=f"{name}.{metric}",
                value=float(value),
                unit="ratio",
                n=int(n),
                repeats=1,
                method=f"{method}; tolerance: {tol_text}",
                details=details,
            )
        )
    if misses:
        reason = f"outputs fail the accuracy check: {'; '.join(misses)} ({tol_text})"
        unmeasured.append(Unmeasured(id=f"{name}.infer_throughput", reason=reason))
        return reason, measurements, unmeasured
    samples = run["batch"] * run["iters"]
    rates = _rates(samples, run["repeat_s"])
    bounds = median_bounds(rates, confidence)
    repeats = len(rates)
    measurements.append(
        Measurement(
            id=f"{name}.infer_throughput",
            value=bounds.median,
            unit="samples/s",
            n=samples * repeats,
            repeats=repeats,
            ci=_interval(bounds, confidence, repeats),
            method=(
                f"{where}, {precision} inference: median of {repeats} timed repeats of "
                f"{run['iters']} batches of {run['batch']} ({run['sample']}) after "
                f"{len(run['warmup_s'])} warm-ups, device synchronised; {note}"
            ),
            details={
                "min": min(rates),
                "max": max(rates),
                "repeat_s": run["repeat_s"],
                "execution": run.get("execution", {}),
                "device": _device_name(device) if run["backend"] == "torch" else run["backend"],
                "accuracy_passed": True,
            },
        )
    )
    return "ok", measurements, unmeasured


def _score_training(
    family: str,
    precision: str,
    record: dict[str, Any],
    args: ModelsArgs,
    confidence: float,
) -> tuple[str, list[Measurement], list[Unmeasured]]:
    metric = f"{family}.train.{precision}.throughput"
    if record.get("status") != "measured":
        reason = f"{record.get('status', 'not run')}: {record.get('reason', 'not measured')}"
        return reason, [], [Unmeasured(id=metric, reason=reason)]
    tol = args.tolerances[record["precision"]]
    misses = training_failures(record, tol)
    if misses:
        reason = "training check failed: " + "; ".join(misses)
        return reason, [], [Unmeasured(id=metric, reason=reason)]
    samples = record["batch"] * record["steps_per_repeat"]
    rates = _rates(samples, record["repeat_s"])
    bounds = median_bounds(rates, confidence)
    repeats = len(rates)
    first = record["warmup_losses"][0]
    measurement = Measurement(
        id=metric,
        value=bounds.median,
        unit="samples/s",
        n=samples * repeats,
        repeats=repeats,
        ci=_interval(bounds, confidence, repeats),
        method=(
            f"torch on {record['device']}, {precision} training ({record['optimizer']}, "
            f"{record['loss']}): median of {repeats} timed repeats of "
            f"{record['steps_per_repeat']} optimizer steps of {record['batch']} samples "
            f"({record['sample']}) after {len(record['warmup_s'])} warm-up steps, device "
            f"synchronised; every loss finite and the first-step loss within "
            f"{tol.max_loss_rel_diff:g} (relative) of the FP32 CPU reference; {WEIGHTS_NOTE}"
        ),
        details={
            "min": min(rates),
            "max": max(rates),
            "repeat_s": record["repeat_s"],
            "first_loss": first,
            "reference_loss": record["reference_loss"],
            "first_loss_rel_diff": abs(first - record["reference_loss"])
            / abs(record["reference_loss"])
            if record["reference_loss"]
            else None,
            "last_loss": record["losses"][-1],
            "execution": record.get("execution", {}),
        },
    )
    return "ok", [measurement], []


def _counts(
    args: ModelsArgs,
    infer_status: dict[tuple[str, str, str], str],
    on_dut: dict[tuple[str, str, str], bool],
    train_status: dict[tuple[str, str], str],
    device: dict[str, Any],
) -> list[Measurement]:
    dut = _device_name(device)

    def runs_of(family: str, framework: str | None = None) -> list[tuple[str, str, str]]:
        return [
            k
            for k in infer_status
            if family_of(k[0]) == family
            and (framework is None or FRAMEWORK[k[1]] == framework)
            and on_dut[k]
        ]

    def passed(keys: list[tuple[str, str, str]]) -> list[str]:
        return [run_name(*k) for k in keys if infer_status[k] == "ok"]

    def why_not(keys: list[tuple[str, str, str]]) -> str:
        if not keys:
            return "no inference run on the device under test was requested"
        return "; ".join(f"{run_name(*k)}: {infer_status[k]}" for k in keys)

    inference: dict[str, str] = {}
    networks: dict[str, str] = {}
    for family in args.families:
        keys = runs_of(family)
        ok = passed(keys)
        inference[family] = f"ok: {', '.join(ok)}" if ok else f"not passed: {why_not(keys)}"
        trained = [p for p in args.train_precisions if train_status[(family, p)] == "ok"]
        if not ok:
            networks[family] = f"inference not passed: {why_not(keys)}"
        elif not args.train_precisions:
            networks[family] = "training not requested"
        elif not trained:
            networks[family] = "training not passed: " + "; ".join(
                f"{p}: {train_status[(family, p)]}" for p in args.train_precisions
            )
        else:
            networks[family] = f"ok: inference {', '.join(ok)}; training {', '.join(trained)}"

    frameworks: dict[str, str] = {}
    for framework in FRAMEWORKS:
        if not any(FRAMEWORK[b] == framework for b in args.backends):
            frameworks[framework] = "not requested"
            continue
        missing = {f: runs_of(f, framework) for f in args.families}
        failed = {f: keys for f, keys in missing.items() if not passed(keys)}
        if failed:
            frameworks[framework] = "not every family passed: " + "; ".join(
                f"{f}: {why_not(keys)}" for f, keys in failed.items()
            )
        else:
            frameworks[framework] = "ok: " + "; ".join(
                f"{f}: {', '.join(passed(keys))}" for f, keys in missing.items()
            )

    def count(metric: str, values: dict[str, str], what: str, over: Sequence[str]) -> Measurement:
        return Measurement(
            id=metric,
            value=float(sum(1 for v in values.values() if v.startswith("ok"))),
            unit="count",
            n=len(over),
            repeats=1,
            method=f"{what}, out of {', '.join(over)}; on the device under test ({dut}) only; "
            f"{WEIGHTS_NOTE}",
            details=values,
        )

    return [
        count(
            "networks",
            networks,
            "families (vision, language, speech) whose network ran inference within the "
            "accuracy tolerance (any backend and precision) and trained with finite losses "
            "matching the reference at the first step (any precision)",
            args.families,
        ),
        count(
            "inference_networks",
            inference,
            "families whose network ran inference within the accuracy tolerance (any backend "
            "and precision)",
            args.families,
        ),
        count(
            "frameworks",
            frameworks,
            "frameworks (torch, ONNX Runtime) that ran every family's inference within the "
            "accuracy tolerance (any precision)",
            [f for f in FRAMEWORKS if any(FRAMEWORK[b] == f for b in args.backends)],
        ),
    ]
