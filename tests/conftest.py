"""Fixtures for the CLI-level tests.

`cli(*args)` runs `harness.cli.main` in-process and returns Result(code, stdout, stderr);
`cli_subprocess(*args)` runs `python -m harness` in a real process. `tiny_run` is the one
real run of tests/data/tiny-suite.yaml shared by the whole session (copy it before
changing anything in it: the `run_copy` fixture does). `no_gc_pauses` holds off the cyclic
garbage collector for tests that judge in-process timing.
"""

from __future__ import annotations

import gc
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `clihelpers`, in any import mode

from clihelpers import (
    TINY_SUITE,
    Result,
    TinyRun,
    isolated_env,
    run_cli,
    run_cli_subprocess,
    set_env,
)


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config dir: the dry-run key never lands in the real home."""
    config = tmp_path / "xdg-config"
    config.mkdir()
    set_env(monkeypatch, config, columns=200)
    return config


@pytest.fixture
def no_gc_pauses() -> Iterator[None]:
    """No automatic cyclic garbage collection during the test. Late in a session, with torch
    and onnx loaded, a full collection stops every Python thread for 100-250 ms: LoadGen's
    callbacks, a sampler, the loopback PTDaemon. A test that judges latency or sampling
    windows in milliseconds would then fail on when the collector ran, not on the code."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@pytest.fixture
def config_home(_isolated_config: Path) -> Path:
    return _isolated_config


@pytest.fixture
def cli() -> Callable[..., Result]:
    return run_cli


@pytest.fixture
def cli_subprocess() -> Callable[..., Result]:
    return run_cli_subprocess


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """ONE real run of the tiny suite, shared by every test; never modify it in place."""
    base = tmp_path_factory.mktemp("tiny-run")
    config = base / "xdg-config"
    config.mkdir()
    run_dir = base / "run"
    with isolated_env(config, columns=80):
        result = run_cli("run", TINY_SUITE, "--out", run_dir)
    assert result.code == 0, f"the session run failed:\n{result.stdout}\n{result.stderr}"
    return TinyRun(run_dir, config, result)


@pytest.fixture
def run_copy(tiny_run: TinyRun, tmp_path: Path) -> Path:
    """A private copy of the session run, free to modify."""
    target = tmp_path / "run-copy"
    shutil.copytree(tiny_run.run_dir, target)
    return target
