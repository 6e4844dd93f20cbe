"""The harness's reference attack platform for D17, built on the Adversarial Robustness
Toolbox (`adversarial-robustness-toolbox`, which imports `packaging` without declaring it).
It answers the messages of harness/probes/security/probe.py (`answer(message) -> dict`, a
callable SUT: `harness.refengines.art_platform:answer`) and reaches each target only
through the item endpoints of the job (HTTP, .npy bodies): every attack is black-box.

Digital attacks (ART class, norm): hop_skip_jump (HopSkipJump, linf), boundary
(BoundaryAttack, l2), simba (SimBA pixel, l2), square (SquareAttack, linf), zoo
(ZooAttack, l2), sign_opt (SignOPTAttack, l2), geoda (GeoDA, l2), pixel (PixelAttack, l0),
threshold (ThresholdAttack, linf), spatial_transformation (SpatialTransformation,
spatial), virtual_adversarial (VirtualAdversarialMethod, l2: its finite-difference
direction of the scores, taken in a few steps).
Physical attacks, robust to the job's transformation family by expectation over
transformation (the platform draws its own transformations from the family; it never
sees the harness's draws): square_eot (SquareAttack, linf), simba_eot (SimBA, l2),
patch_square_eot (SquareAttack over a square patch pasted at the centre: a sticker, patch).

Every example is projected into the job's budget after the attack (clipped to the L-inf
box, scaled into the L2 ball, the largest L0 positions kept), cast to float32 and moved
towards the clean input ulp by ulp where the cast left it over; the item's query budget
is kept by counting queries before sending them (an attack that would exceed it stops,
and that item answers null). ART runs one item at a time, with seeded numpy and Python
random generators.

ART 1.20.1 calls `np.asfarray` (PixelAttack, ThresholdAttack) and `np.mat` (GeoDA), both
removed in NumPy 2; they are restored, as the functions NumPy 1 had, when missing.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import logging
import os
import random
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.refengines.security_targets.transforms import (
    PhysicalDraw,
    PhysicalFamily,
    SpatialMove,
    draw_physical,
    physical,
    spatial,
)

MAX_REQUEST = 512  # inputs per POST
EOT_DRAWS = 8  # the platform's own physical draws per candidate
EOT_STOP = 7  # a candidate adversarial on this many of them ends the attack
MARGIN = 1e-3  # a watched hit must be adversarial by this much (batch-order noise)
VAT_STEPS = 4
PATCH_AREA = "centre"


def _numpy2_compat() -> None:
    if not hasattr(np, "asfarray"):
        np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)  # type: ignore[attr-defined]
    if not hasattr(np, "mat"):
        np.mat = np.asmatrix  # type: ignore[attr-defined]


_CWD_LOCK = threading.Lock()


@contextlib.contextmanager
def _scratch_cwd() -> Iterator[None]:
    """Run the body in a fresh temporary working directory (removed afterwards), for ART
    code that writes files into the current directory; the process's directory is
    restored whatever happens. Serialised: the working directory is the process's."""
    with _CWD_LOCK, tempfile.TemporaryDirectory(prefix="harness-art-") as scratch:
        before = os.getcwd()
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(before)


class BudgetExhausted(Exception):
    """The item's query budget (or the endpoint's cap) is spent: the attack stops there."""


class EndpointError(Exception):
    """The item's endpoint refused a request (its status and message)."""


class Endpoint:
    """One item's endpoint: POST .npy batches, get scores; counts queries before sending.
    One keep-alive connection per item (TCP_NODELAY), so a query costs a round trip, not
    a TCP handshake."""

    def __init__(self, url: str, shape: tuple[int, ...], budget: int) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the endpoint {url!r} is not an http:// URL")
        self.url = url
        self._host, self._port = parts.hostname, parts.port or 80
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._connection: http.client.HTTPConnection | None = None
        self.shape = shape
        self.budget = budget
        self.used = 0
        self.reserve = 0  # queries kept back for the final checks
        # sees every answered batch (job-shape inputs, scores); may raise Found
        self.watch: Callable[[np.ndarray, np.ndarray], None] | None = None

    def left(self) -> int:
        return self.budget - self.reserve - self.used

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _post(self, body: bytes) -> dict[str, Any]:
        for attempt in (0, 1):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=120)
                self._connection.connect()
                self._connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self._connection.request(
                    "POST", self._path, body=body, headers={"Content-Type": "application/x-npy"}
                )
                response = self._connection.getresponse()
                data = response.read()
            except (http.client.HTTPException, OSError):
                self.close()  # a dropped keep-alive connection: one fresh try
                if attempt:
                    raise
                continue
            if response.status == 429:
                raise BudgetExhausted(f"the endpoint refused more queries: {_error_of(data)}")
            if response.status != 200:
                raise EndpointError(f"the endpoint answered {response.status}: {_error_of(data)}")
            document = json.loads(data)
            assert isinstance(document, dict)
            return document
        raise AssertionError("unreachable")

    def scores(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).reshape((-1, *self.shape))
        if len(x) > self.left():
            raise BudgetExhausted(
                f"{self.used} + {len(x)} queries would pass the budget of {self.budget}"
                + (f" less {self.reserve} kept back" if self.reserve else "")
            )
        out = []
        for start in range(0, len(x), MAX_REQUEST):
            chunk = np.ascontiguousarray(x[start : start + MAX_REQUEST])
            buffer = io.BytesIO()
            np.save(buffer, chunk, allow_pickle=False)
            document = self._post(buffer.getvalue())
            self.used += len(chunk)
            scores = np.asarray(document["scores"], dtype=np.float64)
            if self.watch is not None:
                self.watch(chunk, scores)
            out.append(scores)
        return np.concatenate(out)


def _error_of(data: bytes) -> str:
    try:
        return str(json.loads(data).get("error", ""))[:200]
    except (ValueError, AttributeError):
        return data[:200].decode("utf-8", "replace")


class Found(Exception):
    """A queried input is already a valid example (within the budget, adversarial by a
    margin): the attack stops there, and that input is the item's answer."""

    def __init__(self, example: np.ndarray) -> None:
        super().__init__("found")
        self.example = example


Predict = Callable[[np.ndarray], np.ndarray]  # a job-shape batch -> (n, classes) scores
Runner = Callable[["Job", "Item", bool], Any]


@dataclass(frozen=True)
class Job:
    attack: str
    mode: str
    norm: str
    epsilon: float | None
    max_rotation_deg: float
    max_shift_px: float
    budget: int
    shape: tuple[int, ...]
    art_shape: tuple[int, ...]
    domain: tuple[float, float]
    classes: int
    channel_axis: int | None
    image: bool
    family: PhysicalFamily | None
    job_number: int


@dataclass
class Item:
    x: np.ndarray  # the clean input, job shape
    label: int
    goal: int | None
    predict: Callable[[np.ndarray], np.ndarray]  # job-shape batch -> scores
    seed: int
    # the job's other items of another class (untargeted) or of the goal class, nearest
    # first: the starting points of the decision-based attacks
    starts: np.ndarray | None = None
    watch: Watch | None = None

    def start(self, art_shape: tuple[int, ...]) -> dict[str, Any]:
        if self.starts is None or len(self.starts) == 0:
            return {}
        return {"x_adv_init": self.starts[:1].reshape(1, *art_shape).astype(np.float32)}


def _art_shape(shape: tuple[int, ...], image: bool) -> tuple[int, ...]:
    """What ART is shown: channels first; a grey image gets one channel, a feature vector
    becomes a one-channel image one row high (ART's image attacks then apply to it)."""
    if len(shape) == 1:
        return (1, 1, shape[0])
    return (1, *shape) if len(shape) == 2 else shape


def _classifier(job: Job, predict: Callable[[np.ndarray], np.ndarray]) -> Any:
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork

    def fn(batch: np.ndarray) -> np.ndarray:
        lo, hi = job.domain
        x = np.clip(np.asarray(batch, dtype=np.float32), lo, hi).reshape((-1, *job.shape))
        return predict(x)

    return BlackBoxClassifierNeuralNetwork(
        fn, job.art_shape, job.classes, channels_first=True, clip_values=job.domain
    )


def _eot(
    job: Job, item: Item, predict: Callable[[np.ndarray], np.ndarray] | None = None
) -> Predict:
    """Scores averaged over EOT_DRAWS fixed draws of the job's physical family (the
    platform's own draws, seeded by the item); each candidate's per-draw answers go to
    the item's watch, which stops the attack once a candidate within the budget is
    adversarial on at least EOT_STOP of the draws."""
    assert job.family is not None
    ask = predict or item.predict
    rng = np.random.default_rng([item.seed, 41])
    draws: list[PhysicalDraw] = [draw_physical(job.family, rng) for _ in range(EOT_DRAWS)]

    def averaged(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).reshape((-1, *job.shape))
        shown = np.stack([physical(v, d, job.domain, job.channel_axis) for v in x for d in draws])
        per_draw = ask(shown).reshape(len(x), len(draws), -1)
        if item.watch is not None:
            item.watch.see_draws(x, per_draw)
        return per_draw.mean(axis=1)

    return averaged


def _labels(job: Job, item: Item) -> np.ndarray:
    cls = item.goal if item.goal is not None else item.label
    return np.eye(job.classes, dtype=np.float32)[[cls]]


def _scaled(job: Job, full: int, per_query_cost: int = 1) -> int:
    """Iterations scaled to the query budget (defaults fit a budget of 5000)."""
    return max(1, int(full * min(1.0, job.budget / (5000.0 * per_query_cost))))


# ------------------------------------------------------------------ the attacks


def _hop_skip_jump(job: Job, item: Item, targeted: bool) -> np.ndarray:
    from art.attacks.evasion import HopSkipJump

    attack = HopSkipJump(
        _classifier(job, item.predict),
        targeted=targeted,
        norm=np.inf,
        max_iter=_scaled(job, 25),
        max_eval=150,
        init_eval=20,
        init_size=60,
        verbose=False,
    )
    return attack.generate(
        item.x.reshape(1, *job.art_shape),
        y=_labels(job, item) if targeted else None,
        **item.start(job.art_shape),
    )


def _boundary(job: Job, item: Item, targeted: bool) -> np.ndarray:
    from art.attacks.evasion import BoundaryAttack

    attack = BoundaryAttack(
        _classifier(job, item.predict),
        targeted=targeted,
        max_iter=_scaled(job, 300),
        num_trial=10,
        sample_size=10,
        init_size=60,
        verbose=False,
    )
    return attack.generate(
        item.x.reshape(1, *job.art_shape),
        y=_labels(job, item) if targeted else None,
        **item.start(job.art_shape),
    )


def _simba(
    job: Job,
    item: Item,
    targeted: bool,
    predict: Callable[[np.ndarray], np.ndarray] | None = None,
    cost: int = 1,
) -> np.ndarray:
    from art.attacks.evasion import SimBA

    eps = job.epsilon or 1.0
    attack = SimBA(
        _classifier(job, predict or item.predict),
        attack="px",
        max_iter=_scaled(job, 1500, cost),
        epsilon=min(0.2, eps / 4),
        targeted=targeted,
        verbose=False,
    )
    return attack.generate(item.x.reshape(1, *job.art_shape), y=_labels(job, item))


def _square(
    job: Job,
    item: Item,
    targeted: bool,
    predict: Callable[[np.ndarray], np.ndarray] | None = None,
    cost: int = 1,
) -> np.ndarray:
    from art.attacks.evasion import SquareAttack

    attack = SquareAttack(
        _classifier(job, predict or item.predict),
        norm=np.inf,
        eps=float(job.epsilon or 0.0),
        max_iter=_scaled(job, 1000, cost),
        p_init=0.3,
        nb_restarts=1,
        verbose=False,
    )
    return attack.generate(
        item.x.reshape(1, *job.art_shape), y=_labels(job, item) if targeted else None
    )


def _zoo(job: Job, item: Item, targeted: bool) -> np.ndarray:
    from art.attacks.evasion import ZooAttack

    attack = ZooAttack(
        _classifier(job, item.predict),
        confidence=0.0,
        targeted=targeted,
        learning_rate=0.05,
        max_iter=_scaled(job, 60),
        binary_search_steps=2,
        initial_const=20.0,
        nb_parallel=min(32, int(np.prod(job.shape))),
        use_resize=False,
        use_importance=False,
        batch_size=1,
        variable_h=1e-3,
        verbose=False,
    )
    return attack.generate(
        item.x.reshape(1, *job.art_shape), y=_labels(job, item) if targeted else None
    )


def _sign_opt(job: Job, item: Item, targeted: bool) -> np.ndarray:
    from art.attacks.evasion import SignOPTAttack

    attack = SignOPTAttack(
        _classifier(job, item.predict),
        targeted=targeted,
        max_iter=_scaled(job, 100),
        query_limit=max(100, int(0.5 * job.budget)),
        verbose=False,
    )
    return attack.generate(
        item.x.reshape(1, *job.art_shape), y=_labels(job, item) if targeted else None
    )


def _geoda(job: Job, item: Item, targeted: bool) -> np.ndarray:
    from art.attacks.evasion import GeoDA

    side = job.art_shape[-1]
    attack = GeoDA(
        _classifier(job, item.predict),
        norm=2,
        sub_dim=max(2, min(8, side // 1)),
        max_iter=max(200, job.budget - 200),
        bin_search_tol=0.001,
        verbose=False,
    )
    with _scratch_cwd():  # GeoDA saves its DCT basis as ./2d_dct_basis_*.npy
        return attack.generate(item.x.reshape(1, *job.art_shape), y=_labels(job, item))


def _virtual_adversarial(job: Job, item: Item, targeted: bool) -> np.ndarray:
    """VAT's direction (power iteration on the KL divergence of the scores, finite
    differences) taken VAT_STEPS times, each a step of half the budget from where the last
    ended, projected back into the budget after each."""
    from art.attacks.evasion import VirtualAdversarialMethod

    eps = float(job.epsilon or 0.0)
    attack = VirtualAdversarialMethod(
        _classifier(job, item.predict),
        max_iter=_scaled(job, 5),
        finite_diff=1e-3,
        eps=eps / 2,
        verbose=False,
    )
    current = item.x.reshape(1, *job.art_shape).astype(np.float32)
    for _ in range(VAT_STEPS):
        stepped = attack.generate(current)
        current = project(item.x, stepped, job).reshape(1, *job.art_shape)
        if _adversarial(job, item, item.predict(current.reshape(1, *job.shape))[0]):
            break
    return current


def _pixel(job: Job, item: Item, targeted: bool) -> np.ndarray:
    from art.attacks.evasion import PixelAttack

    attack = PixelAttack(
        _classifier(job, item.predict),
        th=int(job.epsilon or 1),
        es=1,
        max_iter=_scaled(job, 20),
        targeted=targeted,
        verbose=False,
    )
    return attack.generate(
        item.x.reshape(1, *job.art_shape), y=_labels(job, item) if targeted else None
    )


def _threshold(job: Job, item: Item, targeted: bool) -> np.ndarray:
    from art.attacks.evasion import ThresholdAttack

    lo, hi = job.domain
    # ART's threshold is in 0..255 of the domain's width
    th = max(1, int(np.floor((job.epsilon or 0.0) / (hi - lo) * 255.0)))
    attack = ThresholdAttack(
        _classifier(job, item.predict),
        th=th,
        es=1,
        max_iter=_scaled(job, 20),
        targeted=targeted,
        verbose=False,
    )
    return attack.generate(
        item.x.reshape(1, *job.art_shape), y=_labels(job, item) if targeted else None
    )


def _spatial(job: Job, item: Item, targeted: bool) -> tuple[np.ndarray, SpatialMove]:
    from art.attacks.evasion import SpatialTransformation

    side = min(job.art_shape[-2:])
    attack = SpatialTransformation(
        _classifier(job, item.predict),
        max_translation=100.0 * job.max_shift_px / side,
        num_translations=int(2 * np.floor(job.max_shift_px) + 1),
        max_rotation=job.max_rotation_deg,
        num_rotations=21,
        verbose=False,
    )
    attack.generate(item.x.reshape(1, *job.art_shape))
    move = SpatialMove(
        float(attack.attack_rot), (float(attack.attack_trans_x), float(attack.attack_trans_y))
    )
    return spatial(item.x, move, job.domain, job.channel_axis), move


def _patch_square_eot(job: Job, item: Item, targeted: bool) -> np.ndarray:
    """Square attack over a square patch at the centre, pasted in, scores by EOT."""
    from art.attacks.evasion import SquareAttack
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork

    side = int(job.epsilon or 1)
    planes = item.x if job.channel_axis is not None else item.x[np.newaxis]
    c, h, w = planes.shape
    top, left = (h - side) // 2, (w - side) // 2
    eot = _eot(job, item)

    def pasted(patches: np.ndarray) -> np.ndarray:
        full = np.repeat(planes[np.newaxis], len(patches), axis=0).copy()
        full[:, :, top : top + side, left : left + side] = patches.reshape(-1, c, side, side)
        return full if job.channel_axis is not None else full[:, 0]

    classifier = BlackBoxClassifierNeuralNetwork(
        lambda p: eot(pasted(np.clip(np.asarray(p, dtype=np.float32), *job.domain))),
        (c, side, side),
        job.classes,
        channels_first=True,
        clip_values=job.domain,
    )
    attack = SquareAttack(
        classifier,
        norm=np.inf,
        eps=float(job.domain[1] - job.domain[0]),
        max_iter=_scaled(job, 1000, EOT_DRAWS),
        p_init=0.4,
        nb_restarts=1,
        verbose=False,
    )
    start = planes[:, top : top + side, left : left + side][np.newaxis]
    patch = attack.generate(start.astype(np.float32), y=_labels(job, item) if targeted else None)
    return pasted(patch)[0]


DIGITAL: dict[str, tuple[str, Runner, str]] = {
    # name: (norm, runner, which targets: "any", "image" or "multiclass")
    "hop_skip_jump": ("linf", _hop_skip_jump, "any"),
    "boundary": ("l2", _boundary, "any"),
    "simba": ("l2", _simba, "any"),
    "square": ("linf", _square, "image"),
    "zoo": ("l2", _zoo, "any"),
    "sign_opt": ("l2", _sign_opt, "multiclass"),  # ART refuses two-class targets
    "geoda": ("l2", _geoda, "image"),
    "pixel": ("l0", _pixel, "image"),
    "threshold": ("linf", _threshold, "image"),
    "spatial_transformation": ("spatial", _spatial, "image"),
    "virtual_adversarial": ("l2", _virtual_adversarial, "any"),
}
PHYSICAL: dict[str, tuple[str, Runner, str]] = {
    "square_eot": (
        "linf",
        lambda job, item, t: _square(job, item, t, _eot(job, item), EOT_DRAWS),
        "image",
    ),
    "simba_eot": (
        "l2",
        lambda job, item, t: _simba(job, item, t, _eot(job, item), EOT_DRAWS),
        "image",
    ),
    "patch_square_eot": ("patch", _patch_square_eot, "image"),
}
# the fewest queries per item an attack needs to be worth running (this platform's own
# choice: below it, the attack is not offered on that target)
MIN_QUERIES: dict[str, int] = {
    "hop_skip_jump": 500,
    "boundary": 500,
    "simba": 50,
    "square": 50,
    "zoo": 1000,
    "sign_opt": 1000,
    "geoda": 500,
    "pixel": 500,
    "threshold": 3000,
    "spatial_transformation": 1000,
    "virtual_adversarial": 3000,
    "square_eot": 500,
    "simba_eot": 500,
    "patch_square_eot": 500,
}


def _starts(item: Item, items: list[Item]) -> np.ndarray:
    """The other items the decision-based attacks may start from, nearest first."""
    others = [
        o.x
        for o in items
        if o is not item
        and (o.label == item.goal if item.goal is not None else o.label != item.label)
    ]
    if not others:
        return np.zeros((0, *item.x.shape), dtype=np.float32)
    stacked = np.stack(others)
    order = np.argsort(
        np.linalg.norm((stacked - item.x).reshape(len(others), -1), axis=1), kind="stable"
    )
    return stacked[order]


def _applies(which: str, target: dict[str, Any]) -> bool:
    if which == "multiclass":
        return int(target.get("classes", 0)) > 2
    if which == "image":
        return bool(target.get("image"))
    if which == "classification":
        return target.get("task") == "classification"
    return True


def catalogue(message: dict[str, Any]) -> dict[str, Any]:
    mode = message.get("mode", "digital")
    table = DIGITAL if mode == "digital" else PHYSICAL
    offers = []
    for name, (norm, _runner, which) in table.items():
        names = [
            t["name"]
            for t in message.get("targets", [])
            if _applies(which, t)
            and norm in t.get("norms", [])
            and int(t.get("query_budget_per_item", 5000)) >= MIN_QUERIES[name]
        ]
        if names:
            offers.append(
                {"name": name, "mode": mode, "norm": norm, "targeted": False, "targets": names}
            )
    return {"attacks": offers}


# ------------------------------------------------------------------ budgets


def project(clean: np.ndarray, adv: np.ndarray, job: Job) -> np.ndarray:
    """`adv` moved into the job's budget and domain, float32, checked after the cast."""
    lo, hi = job.domain
    c64 = clean.astype(np.float64)
    a = np.clip(np.asarray(adv, dtype=np.float64).reshape(clean.shape), lo, hi)
    d = a - c64
    eps = job.epsilon
    if job.norm == "linf" and eps is not None:
        d = np.clip(d, -eps, eps)
    elif job.norm == "l2" and eps is not None:
        size = float(np.linalg.norm(d))
        if size > eps:
            d *= eps / size * (1 - 1e-7)
    elif job.norm in ("l0", "patch") and eps is not None and job.norm == "l0":
        weight = np.abs(d) if job.channel_axis is None else np.abs(d).sum(axis=job.channel_axis)
        keep = int(eps)
        if np.count_nonzero(weight) > keep:
            cut = np.sort(weight.ravel())[::-1][keep - 1] if keep > 0 else np.inf
            mask = weight >= cut
            if np.count_nonzero(mask) > keep:  # ties: keep the first ones
                flat = np.flatnonzero(mask)
                mask = np.zeros(weight.size, dtype=bool)
                mask[flat[:keep]] = True
                mask = mask.reshape(weight.shape)
            if job.channel_axis is not None:
                mask = np.expand_dims(mask, job.channel_axis)
            d = d * mask
    out = np.clip(c64 + d, lo, hi).astype(np.float32)
    return _fit(clean, out, job)


def _fit(clean: np.ndarray, adv: np.ndarray, job: Job) -> np.ndarray:
    """Move float32 values that the cast pushed over the budget back towards the clean."""
    eps = job.epsilon
    c = clean.astype(np.float32)
    for _ in range(64):
        d = adv.astype(np.float64) - c.astype(np.float64)
        if job.norm == "linf" and eps is not None:
            over = np.abs(d) > eps
        elif job.norm == "l2" and eps is not None:
            if float(np.sqrt(np.sum(d * d))) <= eps:
                return adv
            over = d != 0
        else:
            return adv
        if not over.any():
            return adv
        adv = np.where(over, np.nextafter(adv, c), adv).astype(np.float32)
    return adv


def within(clean: np.ndarray, x: np.ndarray, job: Job) -> bool:
    """Whether `x` (float32) is inside the domain and the job's budget, by the same rule
    the harness applies (float64 differences of the float32 values, no tolerance)."""
    x32 = np.asarray(x, dtype=np.float32)
    lo, hi = job.domain
    if x32.shape != clean.shape or not np.all(np.isfinite(x32)) or x32.min() < lo or x32.max() > hi:
        return False
    d = x32.astype(np.float64) - clean.astype(np.float32).astype(np.float64)
    eps = job.epsilon
    if eps is None:
        return False
    if job.norm == "linf":
        return float(np.max(np.abs(d))) <= eps
    if job.norm == "l2":
        return float(np.sqrt(np.sum(d * d))) <= eps
    changed = d != 0
    if job.channel_axis is not None:
        changed = np.any(changed, axis=job.channel_axis)
    if job.norm == "l0":
        return int(np.sum(changed)) <= eps
    if job.norm == "patch":
        where = np.argwhere(changed)
        return len(where) == 0 or int(np.max(where.max(axis=0) - where.min(axis=0) + 1)) <= eps
    return False  # spatial: judged by the declared move, not watched


def margin(item: Item, scores: np.ndarray) -> float:
    """How far the scores are past the decision the attack wants (> 0: adversarial): the
    goal class's score over the best other (targeted), the best wrong class's score over
    the true class's (untargeted)."""
    s = np.asarray(scores, dtype=np.float64)
    if item.goal is not None:
        return float(s[item.goal] - np.max(np.delete(s, item.goal)))
    return float(np.max(np.delete(s, item.label)) - s[item.label])


@dataclass
class Watch:
    """Looks at every answer an item's queries get: a queried input that is within the
    budget and adversarial by at least MARGIN (physical: on EOT_STOP of the platform's
    draws) ends the attack (Found); one adversarial by less is kept as a fallback."""

    job: Job
    item: Item
    fallback: np.ndarray | None = None

    def see(self, x: np.ndarray, scores: np.ndarray) -> None:
        for row, s in zip(x, scores, strict=True):
            m = margin(self.item, s)
            if m > 0 and within(self.item.x, row, self.job):
                if m >= MARGIN:
                    raise Found(np.array(row, dtype=np.float32))
                if self.fallback is None:
                    self.fallback = np.array(row, dtype=np.float32)

    def see_draws(self, x: np.ndarray, per_draw: np.ndarray) -> None:
        for row, draws in zip(x, per_draw, strict=True):
            hits = sum(margin(self.item, s) > 0 for s in draws)
            if 2 * hits > len(draws) and within(self.item.x, row, self.job):
                if hits >= EOT_STOP:
                    raise Found(np.array(row, dtype=np.float32))
                if self.fallback is None:
                    self.fallback = np.array(row, dtype=np.float32)


FINISH_SCALES = (1.0, 1.05, 1.15, 1.3, 1.6, 2.0)


def _adversarial(job: Job, item: Item, scores: np.ndarray) -> bool:
    label = int(np.argmax(scores))
    return label == item.goal if item.goal is not None else label != item.label


def finish(job: Job, item: Item, adv: np.ndarray, endpoint: Endpoint) -> np.ndarray:
    """The attack's result projected into the budget and checked with one query; where the
    projection (or a result left on the decision boundary) is not adversarial, the
    perturbation pushed further out, scaled by each of FINISH_SCALES in turn (projected
    again), until one is or the scales run out; then the watch's fallback, if any. (A
    check that finds a valid example raises Found through the watch.)"""
    endpoint.reserve = 0
    cost = EOT_DRAWS if job.mode == "physical" else 1
    check = _eot(job, item, endpoint.scores) if job.mode == "physical" else endpoint.scores
    direction = np.asarray(adv, dtype=np.float64).reshape(item.x.shape) - item.x.astype(np.float64)
    first = project(item.x, item.x + direction, job)
    for scale in FINISH_SCALES:
        candidate = project(item.x, item.x + scale * direction, job)
        if endpoint.left() < cost:
            break
        if _adversarial(job, item, check(candidate[np.newaxis])[0]):
            return candidate
    if item.watch is not None and item.watch.fallback is not None:
        return item.watch.fallback
    return first


# ------------------------------------------------------------------ one job


def _job(message: dict[str, Any]) -> Job:
    target, threat = message["target"], message["threat_model"]
    shape = tuple(int(s) for s in target["input_shape"])
    fam = None
    if message.get("physical"):
        f = message["physical"]["family"]
        fam = PhysicalFamily(
            max_rotation_deg=float(f["max_rotation_deg"]),
            scale_range=(float(f["scale_range"][0]), float(f["scale_range"][1])),
            max_blur_sigma_px=float(f["max_blur_sigma_px"]),
            brightness_range=(float(f["brightness_range"][0]), float(f["brightness_range"][1])),
            jpeg_quality_range=(int(f["jpeg_quality_range"][0]), int(f["jpeg_quality_range"][1])),
            print_noise_sd=float(f["print_noise_sd"]),
        )
    return Job(
        attack=message["attack"],
        mode=message["mode"],
        norm=threat["norm"],
        epsilon=None if threat.get("epsilon") is None else float(threat["epsilon"]),
        max_rotation_deg=float(threat.get("max_rotation_deg") or 0.0),
        max_shift_px=float(threat.get("max_shift_px") or 0.0),
        budget=int(threat["query_budget_per_item"]),
        shape=shape,
        art_shape=_art_shape(shape, bool(target["image"])),
        domain=(float(target["domain"][0]), float(target["domain"][1])),
        classes=int(target["classes"]),
        channel_axis=target["channel_axis"],
        image=bool(target["image"]),
        family=fam,
        job_number=int(message.get("job", 0)),
    )


def _attack_one(
    job: Job,
    item: Item,
    endpoint: Endpoint,
    runner: Runner,
    targeted: bool,
    notes: dict[str, Any],
    k: int,
) -> tuple[np.ndarray | None, SpatialMove | None]:
    """One item's example (None: none) and, for a spatial attack, its declared move."""
    item.watch = Watch(job, item) if job.norm != "spatial" else None
    if job.mode == "digital" and item.watch is not None:
        endpoint.watch = item.watch.see
    try:
        result = runner(job, item, targeted)
        if isinstance(result, tuple):
            adv, move = result
            return np.asarray(adv, dtype=np.float32).reshape(job.shape), move
        return finish(job, item, result, endpoint), None
    except Found as found:  # a queried input already does it
        notes["found_early"].append(k)
        return found.example.reshape(job.shape), None
    except BudgetExhausted as error:  # this item's queries are spent: the fallback or nothing
        notes["stopped"][str(k)] = str(error)
        return (None if item.watch is None else item.watch.fallback), None
    except Exception as error:  # one item's attack failing leaves the others standing
        notes["failed"][str(k)] = f"{type(error).__name__}: {error}"[:300]
        return (None if item.watch is None else item.watch.fallback), None
    finally:
        endpoint.watch = None
        endpoint.close()


def run(message: dict[str, Any]) -> dict[str, Any]:
    _numpy2_compat()
    logging.getLogger("art").setLevel(logging.ERROR)
    job = _job(message)
    table = DIGITAL if job.mode == "digital" else PHYSICAL
    if job.attack not in table:
        return {"error": f"no attack named {job.attack!r} ({job.mode})"}
    _norm, runner, _which = table[job.attack]
    targeted = bool(message["threat_model"].get("targeted"))
    endpoints = [Endpoint(i["endpoint"], job.shape, job.budget) for i in message["items"]]
    items = [
        Item(
            x=np.asarray(i["input"], dtype=np.float32).reshape(job.shape),
            label=int(i["label"]),
            goal=None if i.get("target_class") is None else int(i["target_class"]),
            predict=e.scores,
            seed=job.job_number * 100_003 + k,
        )
        for k, (i, e) in enumerate(zip(message["items"], endpoints, strict=True))
    ]
    for item in items:
        item.starts = _starts(item, items)
    for endpoint in endpoints:
        cost = EOT_DRAWS if job.mode == "physical" else 1
        endpoint.reserve = min(cost * len(FINISH_SCALES), endpoint.budget // 10)
    examples: list[Any] = []
    moves: list[Any] = []
    notes: dict[str, Any] = {"found_early": [], "stopped": {}, "failed": {}, "seconds": {}}
    for k, (item, endpoint) in enumerate(zip(items, endpoints, strict=True)):
        np.random.seed(item.seed % 2**32)
        random.seed(item.seed)
        start = time.perf_counter()
        example, move = _attack_one(
            job, item, endpoint, runner, targeted or item.goal is not None, notes, k
        )
        notes["seconds"][str(k)] = round(time.perf_counter() - start, 3)
        examples.append(None if example is None else example.tolist())
        moves.append(None if move is None else move.describe())
    notes["queries"] = [e.used for e in endpoints]
    answer: dict[str, Any] = {"examples": examples, "notes": notes}
    if job.norm == "spatial":
        answer["moves"] = moves
    return answer


def answer(message: Any) -> dict[str, Any]:
    """The platform's answer to one message of the D17 probes (a dict, its JSON text, or
    the path of a JSON file holding it, as a command SUT gets)."""
    if isinstance(message, str):
        text = message.strip()
        if not text.startswith("{"):
            with open(text, encoding="utf-8") as handle:
                text = handle.read()
        message = json.loads(text)
    task = message.get("task") if isinstance(message, dict) else None
    if task == "attacks.catalogue":
        return catalogue(message)
    if task == "attacks.run":
        return run(message)
    return {"error": f"unknown task {task!r}"}


def _npy_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32), allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m harness.refengines.art_platform MESSAGE.json`: the answer on stdout."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--batch"]:  # a command SUT's batch mode: one message path a line
        for line in sys.stdin:
            try:
                result = answer(line.strip())
            except Exception as error:  # one bad message fails that message only
                result = {"error": f"{type(error).__name__}: {error}"}
            print(json.dumps(result), flush=True)
        return 0
    if len(args) != 1:
        print(
            "usage: python -m harness.refengines.art_platform MESSAGE.json | --batch",
            file=sys.stderr,
        )
        return 2
    print(json.dumps(answer(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
