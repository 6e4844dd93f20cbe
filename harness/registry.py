"""Name -> component registries. Built-ins register by decorator; labs add their own through
the `harness.probes` / `harness.adapters` entry-point groups, loaded lazily on first miss."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_BUILTIN_MODULES = {
    "harness.probes": [
        "harness.probes.gemm",
        "harness.probes.power",
        "harness.probes.models",
        "harness.probes.models.loadgen_runs",
        "harness.probes.loadgen",
        "harness.probes.framework",
        "harness.probes.ocr",
        "harness.probes.toolchain",
        "harness.probes.speech",
        "harness.probes.translation",
        "harness.probes.biometrics",
        "harness.probes.inspection",
        "harness.probes.checkpoints",
        "harness.probes.llm",
        "harness.probes.llm_tasks",
        "harness.probes.privacy",
        "harness.probes.riskmodels",
        "harness.probes.security",
    ],
    "harness.adapters": [
        "harness.adapters.local",
        "harness.adapters.onnx_sut",
        "harness.adapters.torch_sut",
        "harness.adapters.callable_sut",
        "harness.adapters.http_sut",
        "harness.adapters.command_sut",
        "harness.adapters.outputs_sut",
        "harness.adapters.checkpoint_sut",
        "harness.adapters.framework_sut",
    ],
}


class Registry(Generic[T]):
    def __init__(self, group: str) -> None:
        self.group = group
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.group}: {name!r} registered twice")
            self._items[name] = item
            return item

        return decorate

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in _BUILTIN_MODULES.get(self.group, []):
            import_module(module)
        for ep in entry_points(group=self.group):
            if ep.name not in self._items:
                self._items[ep.name] = ep.load()

    def get(self, name: str) -> T | None:
        if name not in self._items:
            self._load()
        return self._items.get(name)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)


probes: Registry[Any] = Registry("harness.probes")
adapters: Registry[Any] = Registry("harness.adapters")
