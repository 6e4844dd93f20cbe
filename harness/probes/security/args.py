"""The arguments of `security.attacks` and `security.physical`: which reference targets,
the threat model of each (a budget per norm), items and queries per (attack, target) job,
the success floor, and the physical transformation family."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Norm = Literal["linf", "l2", "l0", "patch", "spatial"]
NORMS: tuple[str, ...] = ("linf", "l2", "l0", "patch", "spatial")
FLOOR_SOURCE = (
    "harness default: an attack counts when the exact one-sided Clopper-Pearson lower bound "
    "of its verified success rate is above 50 % (the guide asks for attacks that really work "
    "and names no rate)"
)


class TargetPlan(BaseModel):
    """One reference target and its budgets (a norm without a budget is not offered on it).
    Budgets are in the target's input domain: L-inf and L2 on the element values, L0 and
    patch in positions (pixels over the non-channel axes; features of a vector), spatial
    as a rotation and a shift."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    linf: float | None = Field(default=None, gt=0)
    l2: float | None = Field(default=None, gt=0)
    l0: int | None = Field(default=None, ge=1)
    patch_px: int | None = Field(default=None, ge=1)  # side of the square a patch lies in
    max_rotation_deg: float | None = Field(default=None, gt=0, le=180)
    max_shift_px: float | None = Field(default=None, ge=0)
    # this target's own queries per item and items per job (None: the task's); a slow
    # target (face verification, ~30 ms a query here) gets a smaller budget
    query_budget: int | None = Field(default=None, ge=1)
    items: int | None = Field(default=None, ge=1, le=1000)

    def budget(self, norm: str) -> dict[str, float] | None:
        """The threat model's budget fields for `norm`, None when not offered here."""
        if norm == "spatial":
            if self.max_rotation_deg is None or self.max_shift_px is None:
                return None
            return {"max_rotation_deg": self.max_rotation_deg, "max_shift_px": self.max_shift_px}
        value = {"linf": self.linf, "l2": self.l2, "l0": self.l0, "patch": self.patch_px}[norm]
        return None if value is None else {"epsilon": float(value)}

    def norms(self) -> list[str]:
        return [n for n in NORMS if self.budget(n) is not None]


class PhysicalArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_rotation_deg: float = Field(default=10.0, ge=0, le=45)
    scale_low: float = Field(default=0.9, gt=0)
    scale_high: float = Field(default=1.1, gt=0)
    max_blur_sigma_px: float = Field(default=0.8, ge=0)
    brightness_low: float = Field(default=0.8, gt=0)
    brightness_high: float = Field(default=1.2, gt=0)
    jpeg_quality_low: int = Field(default=70, ge=1, le=95)
    jpeg_quality_high: int = Field(default=95, ge=1, le=95)
    print_noise_sd: float = Field(default=0.02, ge=0)
    draws_per_item: int = Field(default=8, ge=1, le=256)
    # an item survives when the target errs (or reaches the target class) on at least this
    # share of its transformed copies whose clean copy it still gets right
    min_survival: float = Field(default=0.5, gt=0, le=1)

    @model_validator(mode="after")
    def _ranges(self) -> PhysicalArgs:
        if self.scale_low > self.scale_high:
            raise ValueError("scale_low exceeds scale_high")
        if self.brightness_low > self.brightness_high:
            raise ValueError("brightness_low exceeds brightness_high")
        if self.jpeg_quality_low > self.jpeg_quality_high:
            raise ValueError("jpeg_quality_low exceeds jpeg_quality_high")
        return self


def default_digital_targets() -> list[TargetPlan]:
    def signs(name: str) -> TargetPlan:
        return TargetPlan(
            name=name, linf=0.1, l2=3.0, l0=24, max_rotation_deg=25, max_shift_px=3,
            query_budget=2000,
        )  # fmt: skip

    def face(name: str) -> TargetPlan:  # ~30 ms a query here: a small budget
        return TargetPlan(name=name, linf=0.08, l2=2.0, query_budget=100, items=4)

    return [
        TargetPlan(
            name="digits_sklearn", linf=0.25, l2=1.5, l0=4, max_rotation_deg=20, max_shift_px=1
        ),
        TargetPlan(name="breast_cancer_onnx", linf=0.2, l2=1.5, l0=4),
        signs("signs_torch"),
        signs("signs_keras"),
        face("face_impersonation"),
        face("face_dodging"),
    ]


def default_physical_targets() -> list[TargetPlan]:
    return [
        TargetPlan(name="signs_torch", linf=0.12, l2=6.0, patch_px=12, query_budget=2000),
        TargetPlan(name="signs_keras", linf=0.12, l2=6.0, patch_px=12, query_budget=2000),
    ]


class AttacksArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["digital"] = "digital"
    targets: list[TargetPlan] = Field(default_factory=default_digital_targets, min_length=1)
    items: int = Field(default=10, ge=1, le=1000)  # clean inputs per (attack, target) job
    query_budget: int = Field(default=5000, ge=1)  # per item
    cap_factor: float = Field(default=2.0, ge=1.0)  # the endpoint refuses beyond this x budget
    floor_pct: float = Field(default=50.0, ge=0, lt=100)
    floor_source: str = FLOOR_SOURCE
    max_attacks: int = Field(default=40, ge=1, le=200)
    # attacks whose success rate is a metric of this task even when the platform does not
    # offer them (NOT_MEASURED then); every attack the platform offers is reported anyway
    report_attacks: list[str] = Field(default_factory=list)
    # run only these of the attacks offered (empty: every one); the others are listed as
    # offered and not run
    only_attacks: list[str] = Field(default_factory=list)
    physical: PhysicalArgs = Field(default_factory=PhysicalArgs)
    # where the query endpoints listen, and the host name the jobs give for them (a remote
    # HTTP platform needs an address of this machine it can reach)
    listen_host: str = "127.0.0.1"
    advertise_host: str | None = None
    target_seed: int = 0  # the targets' training seed (the items' order follows the run's)

    @model_validator(mode="after")
    def _unique_targets(self) -> AttacksArgs:
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError("targets: a target is named twice")
        return self


class PhysicalAttacksArgs(AttacksArgs):
    mode: Literal["physical"] = "physical"  # type: ignore[assignment]
    targets: list[TargetPlan] = Field(default_factory=default_physical_targets, min_length=1)
    items: int = Field(default=10, ge=1, le=1000)
