"""`privacy.membership`: the platform's membership-inference (data-leakage detection)
methods, each scored on targets the harness trains itself with a member / non-member split
only the harness knows.

collect:
1. The targets of `targets` (harness.probes.privacy.targets) are split with a seed from
   the operating system's random source and trained on their members.
2. The platform (the submission's SUT through any adapter; without one the harness's
   reference platform, harness.refengines.privacy_platform) is asked for its methods:
   sample data `{"task": "membership.methods"}`, answer
   `{"methods": [{"name": "loss_threshold", "access": "probabilities"}, ...]}` (name a
   lower-case identifier, access "probabilities" or "labels").
3. Each method, on each target, is one sample (batch of one), its data:

       {"task": "membership.infer", "method": "<name>",
        "target": {"id", "name", "task", "framework", "model": {...}, "classes",
                   "features", "access", "query_url", "query_budget_records"},
        "candidates": {"x": [[...], ...], "y": [label, ...]},
        "shadow": {"x": [[...], ...], "y": [...], "note": "..."}}

   (a command SUT gets the path of a JSON file holding the same; a callable the dict; an
   HTTP SUT `{"input": <the dict>}`). `candidates` are the target's members and
   non-members shuffled, with their class labels and no word of membership; `shadow` is a
   disjoint set from the same data, none of it in the target's training set. The target
   answers only through `query_url` (harness.probes.privacy.query_server: POST
   `{"x": [[...]]}` -> `{"probabilities": [[...]]}` or `{"labels": [...]}` as the method
   declared), a fresh endpoint per (method, target), metered, with a budget of
   `query_budget_per_record` x (candidates + shadow) records, closed once the platform
   answered. The answer: `{"scores": [one finite number per candidate]}` (or the bare
   list), higher meaning more likely a member.
4. Only after the session is closed does the truth (the split seed, each candidate's
   membership and data-set row, the training facts) reach the evidence.

score (evidence only), per method over the targets it answered:
- `auc_<m>`: the mean over targets of the ROC AUC of its scores (members against
  non-members), with one-sided percentile bounds from a stratified bootstrap over records
  (harness.scoring.membership, `resamples`, `bootstrap_seed`);
- `tpr_at_fpr_0_1pct_<m>`, `tpr_at_fpr_1pct_<m>`: the mean over targets of the TPR at
  FPR <= 0.1 % and 1 %, likewise bounded, over the targets with enough non-members to
  allow one false positive (>= 1000 for 0.1 %, >= 100 for 1 %); a target with fewer is
  listed ("need N"), and when no target has enough the figure is INCONCLUSIVE saying so;
- `membership_methods_passing`: the methods that answered every target with one finite
  score per candidate and whose AUC lower bound is >= `min_auc_low` (a harness default,
  0.55): declaring a method counts for nothing, and a method whose scores rank every
  target's candidates as an earlier counted one's do (Spearman >= 0.99 on each, e.g. a
  monotone transform of it, or ART's LabelOnlyGapAttack, which is its rule-based attack
  under another name) counts once.
A failed answer (a crash, a timeout, a wrong number of scores, a NaN) fails that (method,
target) with its reason: the method's figures come from the targets it answered, marked
invalid, and it does not count.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness import sandbox
from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.privacy import targets as tg
from harness.probes.privacy.answers import kept, parse_methods, parse_scores
from harness.probes.privacy.query_server import QueryServer
from harness.probes.sessions import answer_all, open_adapter_session
from harness.registry import probes
from harness.schema import Interval, Measurement, Unmeasured
from harness.scoring import membership as ms

FPRS = {"0_1pct": 0.001, "1pct": 0.01}
SHADOW_NOTE = (
    "records drawn from the target's data set, disjoint from the candidates: none of them "
    "is in the target's training set"
)


def _default_targets() -> list[tg.TargetSpec]:
    return [tg.TargetSpec(name=n) for n in tg.CATALOGUE]  # type: ignore[arg-type]


class MembershipArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    targets: list[tg.TargetSpec] = Field(default_factory=_default_targets, min_length=1)
    # a method counts when the lower bound of its mean AUC is at least this (harness default)
    min_auc_low: float = Field(default=0.55, ge=0.5, lt=1.0)
    resamples: int = Field(default=1000, ge=100, le=100_000)
    bootstrap_seed: int = 0
    query_budget_per_record: float = Field(default=10.0, gt=0)
    max_methods: int = Field(default=30, ge=1, le=200)
    # two methods ranking every target's candidates alike (Spearman >= this on each) are one
    same_method_rank_correlation: float = Field(default=0.99, gt=0.0, le=1.0)
    # methods the report names even when the platform does not list them
    expected_methods: list[str] = Field(default_factory=list)


def _metric_ids(method: str) -> dict[str, str]:
    ids = {f"auc_{method}": "ratio"}
    ids.update({f"tpr_at_fpr_{tag}_{method}": "%" for tag in FPRS})
    return ids


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@probes.register("privacy.membership")
class MembershipProbe:
    name: ClassVar[str] = "privacy.membership"
    Args: ClassVar[type[BaseModel]] = MembershipArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, MembershipArgs)
        out = {"membership_methods_passing": "count"}
        for m in args.expected_methods:
            out.update(_metric_ids(m))
        return out

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, MembershipArgs)
        return 3 + len(args.targets)

    def _session(self, ctx: CollectContext) -> tuple[SutSession, dict[str, Any]]:
        if ctx.session is None and ctx.sut.adapter == "local":
            from harness.refengines.privacy_platform import ReferencePrivacySession

            session: SutSession = ReferencePrivacySession()
            return session, {"reference": True, **session.describe()}
        session = open_adapter_session(ctx)
        try:
            facts = dict(session.describe())
        except Exception as error:
            facts = {"describe_failed": f"{type(error).__name__}: {error}"}
        return session, {"reference": False, **{str(k): str(v) for k, v in facts.items()}}

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, MembershipArgs)
        split_seed = secrets.randbits(63)
        built = []
        for k, spec in enumerate(args.targets):
            ctx.progress(f"train target {spec.name}")
            built.append(tg.build(spec, k, split_seed))
        session, sut = self._session(ctx)
        items: list[dict[str, Any]] = []
        try:
            with sandbox.staging("harness-membership-") as stage:
                ctx.progress("ask the platform for its methods")
                discovery = _ask(session, Path(stage), 0, {"task": "membership.methods"})
                methods, refused, why = _methods(discovery["output"], discovery["error"], args)
                if why is None:
                    ctx.progress("run every method on every target")
                    with QueryServer() as server:
                        index = 1
                        for method in methods:
                            for target in built:
                                items.append(
                                    _run_one(
                                        session, server, Path(stage), index, method, target, args
                                    )
                                )
                                index += 1
        finally:
            session.close()
        # the truth reaches the evidence only now, with the session closed
        ctx.progress("record the answers and the truth")
        ctx.evidence.write_json("sut.json", sut)
        ctx.evidence.write_json("methods.json", {"discovery": discovery})
        ctx.evidence.write_json(
            "targets.json",
            {"targets": [{**t.public(), **_sizes(t)} for t in built]},
        )
        ctx.evidence.write_json("answers.json", {"items": items})
        ctx.evidence.write_json(
            "truth.json",
            {
                "split_seed": split_seed,
                "split_rule": "numpy.random.default_rng([split_seed, target index]): "
                "permutation of the data set's rows -> members, non-members, shadow; then a "
                "permutation of members + non-members -> the candidates' order; then the "
                "model's seed",
                "targets": [
                    {
                        "id": t.id,
                        "is_member": [int(v) for v in t.is_member],
                        "candidate_rows": t.candidate_rows,
                        "shadow_rows": t.shadow_rows,
                        "facts": t.facts,
                    }
                    for t in built
                ],
            },
        )
        failures = []
        if why is not None:
            failures.append(f"the platform listed no methods: {why}")
        failures += [f"method declaration refused: {m}" for m in refused]
        sizes = {t.id: len(t.candidates_y) for t in built}
        failed = [(i, _item_reason(i, sizes[i["target"]])) for i in items]
        failed = [(i, r) for i, r in failed if r is not None]
        if failed:
            first, reason = failed[0]
            failures.append(
                f"{len(failed)} of {len(items)} (method, target) answers failed (first: "
                f"{first['method']} on {first['target']}: {reason})"
            )
        return failures

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, MembershipArgs)
        discovery = evidence.read_json("methods.json")["discovery"]
        methods, refused, why = _methods(discovery["output"], discovery["error"], args)
        if why is not None:
            reason = f"the platform listed no methods: {why}"
            return ScoreResult([], [Unmeasured(id=m, reason=reason) for m in self.metrics(args)])
        public = {t["id"]: t for t in evidence.read_json("targets.json")["targets"]}
        truth = {t["id"]: t for t in evidence.read_json("truth.json")["targets"]}
        if set(public) != set(truth):
            raise ValueError("targets.json and truth.json name different targets")
        for tid, t in truth.items():
            if len(t["is_member"]) != public[tid]["candidates"]:
                raise ValueError(f"truth.json: target {tid} has another number of candidates")
        items = evidence.read_json("answers.json")["items"]
        by_method: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            if item["target"] not in truth:
                raise ValueError(f"answers.json names an unknown target {item['target']!r}")
            by_method.setdefault(item["method"], []).append(item)
        names = [m["name"] for m in methods]
        if set(by_method) != set(names) or any(len(by_method[n]) != len(truth) for n in names):
            raise ValueError("answers.json does not hold one answer per (method, target)")
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []
        table: dict[str, dict[str, Any]] = {}
        vectors: dict[str, list[np.ndarray]] = {}
        for method in methods:
            figures, row, groups = _method_figures(
                method, by_method[method["name"]], truth, args, ctx
            )
            table[method["name"]] = row
            if row["passes"]:  # every target answered: one vector per target, one order
                vectors[method["name"]] = [np.concatenate(groups[t]) for t in truth]
            measurements += [f for f in figures if isinstance(f, Measurement)]
            unmeasured += [f for f in figures if isinstance(f, Unmeasured)]
        for name in args.expected_methods:
            if name not in table:
                reason = f"the platform does not list a method named {name!r}"
                unmeasured += [Unmeasured(id=i, reason=reason) for i in _metric_ids(name)]
        repeats = ms.same_methods(vectors, args.same_method_rank_correlation)
        for name, other in repeats.items():
            table[name]["same_as"] = other
            if other is not None:
                table[name]["passes"] = False
                table[name]["reason"] = (
                    f"ranks every target's candidates as {other!r} does (Spearman >= "
                    f"{args.same_method_rank_correlation:g} on each): one method, counted once"
                )
        passing = sorted(n for n, row in table.items() if row["passes"])
        who = "the harness's reference platform" if _reference(evidence) else "the platform"
        measurements.append(
            Measurement(
                id="membership_methods_passing",
                value=float(len(passing)),
                unit="count",
                n=len(methods),
                repeats=1,
                method=(
                    f"membership-inference methods of {who} that scored every candidate of "
                    f"each of the {len(truth)} harness-trained targets (a split the harness "
                    "drew at collect time and disclosed only after the answers) and whose "
                    f"mean AUC has a {ctx.confidence:.0%} one-sided bootstrap lower bound >= "
                    f"{args.min_auc_low:g} (harness default floor); a method the platform "
                    "lists without such scores counts for nothing, and one whose scores rank "
                    "every target's candidates as an earlier counted method's do (Spearman "
                    f">= {args.same_method_rank_correlation:g} on each) counts once"
                ),
                details={
                    "passing": passing,
                    "methods": table,
                    "refused_declarations": refused,
                    "min_auc_low": args.min_auc_low,
                },
                exact="a count of methods, each decided by its own bounded figure",
            )
        )
        return ScoreResult(measurements, unmeasured)


def _reference(evidence: EvidenceReader) -> bool:
    return bool(evidence.read_json("sut.json").get("reference"))


def _sizes(target: tg.Target) -> dict[str, Any]:
    return {
        "candidates": len(target.candidates_y),
        "shadow": len(target.shadow_y),
        "sizes_asked": dict(
            zip(("members", "nonmembers", "shadow"), target.spec.sizes(), strict=True)
        ),
    }


def _methods(
    output: Any, error: str | None, args: MembershipArgs
) -> tuple[list[dict[str, str]], list[str], str | None]:
    if error:
        return [], [], error
    try:
        accepted, refused = parse_methods(output, args.max_methods)
    except ValueError as problem:
        return [], [], f"bad output: {problem}"
    if not accepted:
        return (
            [],
            refused,
            "no acceptable method in the list"
            + (f" ({'; '.join(refused[:3])})" if refused else ""),
        )
    return accepted, refused, None


def _ask(session: SutSession, stage: Path, index: int, data: dict[str, Any]) -> dict[str, Any]:
    """One sample through the session (its data also as a JSON file for command SUTs); the
    answer in its JSON-safe form."""
    text = json.dumps(data, allow_nan=False)
    path = stage / f"{secrets.token_hex(8)}.json"
    path.write_text(text, encoding="utf-8")
    try:
        (answer,) = answer_all(session, [Sample(index, data, str(path))], 1)
    finally:
        path.unlink(missing_ok=True)
    return _record(answer, _sha(text.encode("utf-8")))


def _record(answer: SampleOutput, sample_sha256: str) -> dict[str, Any]:
    output, error = None, answer.error
    if answer.output is not None and error is None:
        output, error = kept(answer.output)
    return {
        "output": output,
        "error": error,
        "latency_s": answer.latency_s,
        "sample_sha256": sample_sha256,
    }


def _run_one(
    session: SutSession,
    server: QueryServer,
    stage: Path,
    index: int,
    method: dict[str, str],
    target: tg.Target,
    args: MembershipArgs,
) -> dict[str, Any]:
    records = len(target.candidates_y) + len(target.shadow_y)
    budget = max(1, int(args.query_budget_per_record * records))
    features = int(target.public()["features"])
    url = server.open(target.predict, features, method["access"], budget)
    data = {
        "task": "membership.infer",
        "method": method["name"],
        "target": {
            **target.public(),
            "access": method["access"],
            "query_url": url,
            "query_budget_records": budget,
        },
        "candidates": {"x": target.candidates_x.tolist(), "y": target.candidates_y.tolist()},
        "shadow": {
            "x": target.shadow_x.tolist(),
            "y": target.shadow_y.tolist(),
            "note": SHADOW_NOTE,
        },
    }
    try:
        record = _ask(session, stage, index, data)
    finally:
        meter = server.close_endpoint(url)
    return {
        "method": method["name"],
        "access": method["access"],
        "target": target.id,
        "query_budget_records": budget,
        "meter": meter,
        **record,
    }


def _item_reason(item: dict[str, Any], candidates: int) -> str | None:
    """Why this (method, target) answer gives no scores (None: it gives them)."""
    if item["error"]:
        return str(item["error"])
    try:
        parse_scores(item["output"], candidates)
    except ValueError as problem:
        return f"bad output: {problem}"
    return None


def _method_figures(
    method: dict[str, str],
    items: list[dict[str, Any]],
    truth: dict[str, dict[str, Any]],
    args: MembershipArgs,
    ctx: ScoreContext,
) -> tuple[
    list[Measurement | Unmeasured], dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]]
]:
    """The method's figures, its row of the count's table, and its (member, non-member)
    scores per target answered."""
    name = method["name"]
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    per_target: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for item in sorted(items, key=lambda i: list(truth).index(i["target"])):
        tid = item["target"]
        member = np.asarray(truth[tid]["is_member"], dtype=bool)
        info = {
            "members": int(member.sum()),
            "nonmembers": int((~member).sum()),
            "meter": item["meter"],
            "query_budget_records": item["query_budget_records"],
            "latency_s": item["latency_s"],
        }
        reason = _item_reason(item, len(member))
        if reason is None:
            scores = np.asarray(parse_scores(item["output"], len(member)))
            groups[tid] = (scores[member], scores[~member])
            info["auc"] = ms.auc(*groups[tid])
            info.update(
                {f"tpr_at_fpr_{t}": ms.tpr_at_fpr(*groups[tid], f) for t, f in FPRS.items()}
            )
        else:
            failed[tid] = reason
            info["failed"] = reason
        per_target[tid] = info
    ids = _metric_ids(name)
    row: dict[str, Any] = {"access": method["access"], "failed_targets": failed, "passes": False}
    if not groups:
        reason = "no target answered: " + "; ".join(f"{t}: {r}" for t, r in failed.items())
        row["reason"] = reason
        return [Unmeasured(id=i, reason=reason) for i in ids], row, groups
    invalid = (
        "failed on " + "; ".join(f"target {t}: {r}" for t, r in failed.items()) if failed else ""
    )
    answered = list(groups)
    boot = f"{args.resamples} resamples, seed {args.bootstrap_seed}"
    what = (
        f"method {name!r} ({method['access']} access) on {len(answered)} harness-trained "
        f"target(s) ({', '.join(answered)})"
    )
    auc = ms.mean_auc_interval(
        list(groups.values()), ctx.confidence, args.resamples, args.bootstrap_seed
    )
    out: list[Measurement | Unmeasured] = [
        Measurement(
            id=f"auc_{name}",
            value=auc.value,
            unit="ratio",
            n=auc.items,
            repeats=1,
            ci=_interval(auc, ctx.confidence, boot),
            method=f"mean over targets of the ROC AUC of the membership scores (members "
            f"against non-members; ties count 1/2); {what}",
            details={"targets": per_target},
            invalid_reason=invalid,
        )
    ]
    for tag, fpr in FPRS.items():
        need = ms.nonmembers_needed(fpr)
        eligible = {t: g for t, g in groups.items() if len(g[1]) >= need}
        short = {t: len(g[1]) for t, g in groups.items() if len(g[1]) < need}
        use = eligible or groups
        tpr = ms.mean_tpr_interval(
            list(use.values()), fpr, ctx.confidence, args.resamples, args.bootstrap_seed
        )
        reasons = [invalid] if invalid else []
        if not eligible:
            reasons.append(
                f"need at least {need} non-member candidates per target for TPR at FPR "
                f"{100 * fpr:g} % to rest on one allowed false positive; the targets have "
                + ", ".join(f"{t}: {n}" for t, n in short.items())
            )
        out.append(
            Measurement(
                id=f"tpr_at_fpr_{tag}_{name}",
                value=100.0 * tpr.value,
                unit="%",
                n=tpr.items,
                repeats=1,
                ci=_interval(tpr, ctx.confidence, boot, scale=100.0),
                method=f"mean over targets of the largest TPR at FPR <= {100 * fpr:g} % "
                f"(ROC operating points, 'member' at score >= threshold); {what}; targets "
                f"with fewer than {need} non-members left out where another has enough",
                details={
                    "targets_used": sorted(use),
                    "targets_short_of_nonmembers": {
                        t: f"{n} non-members, need {need}" for t, n in short.items()
                    },
                },
                invalid_reason="; ".join(reasons),
            )
        )
    row.update(
        {
            "auc": auc.value,
            "auc_low": auc.low,
            "targets": per_target,
            "passes": not failed and auc.low >= args.min_auc_low,
        }
    )
    if failed:
        row["reason"] = invalid
    elif not row["passes"]:
        row["reason"] = f"AUC lower bound {auc.low:.4f} < {args.min_auc_low:g}"
    return out, row, groups


def _interval(b: Any, confidence: float, boot: str, scale: float = 1.0) -> Interval:
    return Interval(
        low=scale * b.low,
        high=scale * b.high,
        confidence=confidence,
        method=f"stratified bootstrap over records (members and non-members resampled apart "
        f"within each target), {boot}, percentile bounds",
    )
