"""D17 black-box adversarial attacks: `security.attacks` (digital) and `security.physical`
(physical world). The system under test is the attack platform; the harness holds the
targets (harness/refengines/security_targets: scikit-learn, ONNX Runtime, PyTorch,
TensorFlow and dlib models it trains at collect time) and judges every example itself.

collect:
1. The targets of `targets` are trained (seeded by `target_seed`; one missing here, e.g.
   TensorFlow, is skipped with its reason) and each gets `items` clean held-out inputs, in
   an order seeded by the run's seed, that the target itself gets right (the same items
   for every attack on that target).
2. The platform (the submission's SUT through any adapter: a callable gets the dict, an
   HTTP SUT `{"input": <dict>}`, a command SUT the path of a JSON file holding it; without
   a submission the harness's reference platform, harness.refengines.art_platform, called
   in-process) is asked for its attacks:

       {"schema": "harness.d17-attacks/v1", "task": "attacks.catalogue", "mode": "digital",
        "targets": [{"name", "framework", "task", "input_shape", "dtype": "float32",
                     "domain": [lo, hi], "classes", "class_names", "channel_axis", "image",
                     "description", "norms": [...], "budgets": {norm: {...}}}, ...]}
   ->  {"attacks": [{"name": "square", "mode": "digital", "norm": "linf",
                     "targeted": false, "targets": ["digits_sklearn", ...]}, ...]}

   (name a lower-case identifier; norm one of linf, l2, l0, patch, spatial; `targets`
   optional, default every target offered; entries of the other mode are ignored, a
   malformed one is refused with its reason).
3. One job per (attack, target the attack names whose plan has a budget for its norm), one
   message each:

       {"schema": "harness.d17-attacks/v1", "task": "attacks.run", "job": 7,
        "attack": "square", "mode": "digital", "target": {...as above, without budgets},
        "threat_model": {"norm": "linf", "epsilon": 0.25,       # spatial: max_rotation_deg,
                         "targeted": false,                      #   max_shift_px instead
                         "query_budget_per_item": 5000, "query_cap_per_item": 10000},
        "physical": {"family": {...}, "draws_per_item": 8, "min_survival": 0.5},  # physical
        "items": [{"index": 0, "endpoint": "http://127.0.0.1:PORT/jobs/TOKEN/items/0",
                   "input": [[...]], "label": 3, "target_class": null}, ...]}

   `target_class` is set for a targeted attack ((label + 1) mod classes) and for face
   verification (impersonation: accept, dodging: reject). The target answers only through
   each item's endpoint (harness/probes/security/query_server.py: POST a batch, get labels
   and scores), which the harness meters per item and closes when the platform answers.
   The answer:

       {"examples": [<array of the input's shape> | null, ...],    # one per item, in order
        "moves": [{"rotation_deg": r, "shift_px": [rows, cols]} | null, ...],  # spatial only
        "notes": {...}}                                             # optional, kept
   or  {"examples_npy_b64": "<base64 of numpy.save of an (n, *input_shape) array>",
        "returned": [true, ...]}

   Values are read as numbers and cast to float32 (what the target takes); the harness
   queries the target itself on every returned example that is finite and inside the
   domain (physical: also on `draws_per_item` seeded transformations of it and of its clean
   input, harness/refengines/security_targets/transforms.py), outside the meter.
4. Evidence: targets.json (facts, held-out accuracy, the items' pool indices), sut.json,
   catalogue.json, jobs.json and per job jobs/NNN.npz (clean inputs, labels, goals, claims,
   the target's answers on them, every returned example as it came, the moves, the
   harness's answers on the examples and on their transformed copies, the metered queries
   per item) with jobs/NNN.json (threat model, per-item reasons the answer could not be
   read, the physical draws).

score (evidence only; every check recomputed, harness/probes/security/checks.py): an item
counts when its example came back, is finite, in the domain and within the budget, its
item's metered queries are within the budget, and the target's own answer is off the true
class (or on the target class); physical: on at least `min_survival` of the transformed
copies whose clean copy the target still gets right (an item whose clean input the
transformations alone defeat in more than half the draws fails). Every other item fails
with its reason (wrong shape, NaN, over budget, too many queries, not adversarial, ...).
- `success_rate_<attack>`: counted items of the attack's jobs, pooled over its targets, in
  % with exact one-sided Clopper-Pearson bounds;
- `digital_attacks_passing` / `physical_attacks_passing`: attacks whose lower bound is
  above `floor_pct` (a harness default, 50 %, said in `floor_source`): declared attacks
  count for nothing;
- `frameworks_attacked`: frameworks on which at least one attack's success rate over that
  framework's targets has its lower bound above the floor.

Without a submission the harness's reference platform is the SUT being measured, as D07's
reference engine is: the targets, items and checks are the suite's own whoever answers,
so its figures are real measurements of that platform and carry no invalid_reason; the
spine keeps a dry run's reference answers from ever being a PASS (harness.evaluate), and
the method says who answered.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.security.args import AttacksArgs, PhysicalAttacksArgs
from harness.probes.security.collect import run_jobs
from harness.probes.security.score import metric_of, score_attacks
from harness.registry import probes

REFERENCE_DIGITAL = (
    "hop_skip_jump",
    "boundary",
    "simba",
    "square",
    "zoo",
    "sign_opt",
    "geoda",
    "pixel",
    "threshold",
    "spatial_transformation",
    "virtual_adversarial",
)
REFERENCE_PHYSICAL = ("square_eot", "simba_eot", "patch_square_eot")


class _AttackProbe:
    Args: ClassVar[type[BaseModel]] = AttacksArgs
    reads_sut_outputs: ClassVar[bool] = True
    reference_attacks: ClassVar[tuple[str, ...]] = REFERENCE_DIGITAL

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, AttacksArgs)
        names = {f"{args.mode}_attacks_passing": "count", "frameworks_attacked": "count"}
        for attack in args.report_attacks or self.reference_attacks:
            names[metric_of(attack)] = "%"
        return names

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, AttacksArgs)
        return 1 + len(args.targets) * (1 + len(args.report_attacks or self.reference_attacks))

    def collect(self, ctx: CollectContext) -> list[str]:
        return run_jobs(ctx)

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, AttacksArgs)
        measurements, unmeasured = score_attacks(evidence, args, ctx.confidence, self.metrics(args))
        return ScoreResult(measurements, unmeasured)


@probes.register("security.attacks")
class DigitalAttacksProbe(_AttackProbe):
    name: ClassVar[str] = "security.attacks"
    Args: ClassVar[type[BaseModel]] = AttacksArgs


@probes.register("security.physical")
class PhysicalAttacksProbe(_AttackProbe):
    name: ClassVar[str] = "security.physical"
    Args: ClassVar[type[BaseModel]] = PhysicalAttacksArgs
    reference_attacks: ClassVar[tuple[str, ...]] = REFERENCE_PHYSICAL
