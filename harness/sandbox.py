"""Keeping a SUT program away from what the lab holds: its own PID namespace (it cannot
read the harness's command line, environment or open files under /proc) and the lab's
folders masked (the `--dataset` sets, the run directory, the signing key and the harness's
configuration), through bubblewrap (`bwrap`, Debian's `bubblewrap`) when it is installed.

What stays: the rest of the file system as the harness sees it (the SUT's own folder, its
interpreter and libraries, the staged copies of its inputs), the network and the same user.
Without bwrap a SUT runs as before, and the session's `describe()` says it was not
sandboxed, so the evidence shows it.

The run registers the paths to mask with `hide()` before any SUT starts; `wrap()` builds
the command line of one SUT process.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

_hidden: list[Path] = []


def hide(paths: Iterable[Path]) -> None:
    """Mask these files and folders from every SUT program started from now on (a file's
    folder is masked with it: a manifest's images and references lie beside it)."""
    for path in paths:
        resolved = Path(os.path.abspath(path))
        target = resolved if resolved.is_dir() else resolved.parent
        if target not in _hidden:
            _hidden.append(target)


def reset() -> None:
    """Forget every masked path (a new run in the same process)."""
    _hidden.clear()


def hidden() -> list[Path]:
    return list(_hidden)


@functools.cache
def bwrap() -> str | None:
    """The bwrap program when it is installed and can make namespaces here, else None."""
    program = shutil.which("bwrap")
    if program is None:
        return None
    try:
        probe = subprocess.run(
            [program, "--dev-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "true"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return program if probe.returncode == 0 else None


def _needed(cwd: Path, program: str) -> list[Path]:
    """Folders a SUT needs even when a masked folder holds them: its own folder, its program,
    the Python installation."""
    needed = [cwd, Path(os.path.abspath(program)).parent]
    needed += [Path(p) for p in sorted({sys.prefix, sys.base_prefix, sys.exec_prefix})]
    needed.append(Path(__file__).resolve().parents[1])  # the harness itself (SUTs import it)
    return needed


def wrap(argv: list[str], cwd: Path) -> tuple[list[str], str]:
    """The command line that runs `argv` in the sandbox, and a line for the evidence saying
    what the sandbox did (argv unchanged and the reason when there is none)."""
    program = bwrap()
    if program is None:
        return argv, (
            "none: bwrap (Debian package bubblewrap) is not installed or cannot make "
            "namespaces here, so the SUT ran as this user with the harness's files in reach"
        )
    masks: list[str] = []
    for folder in _hidden:
        if folder == Path("/") or not folder.exists():
            continue
        masks += ["--tmpfs", str(folder)]
    # what the SUT needs is put back on top of a masked folder that holds it
    rebinds: list[str] = []
    for folder in _needed(cwd, argv[0]):
        if folder.exists() and any(folder.is_relative_to(h) for h in _hidden):
            rebinds += ["--bind", str(folder), str(folder)]
    wrapped = [
        program,
        "--dev-bind", "/", "/",
        "--proc", "/proc",
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        *masks,
        *rebinds,
        "--chdir", str(cwd),
        "--",
        *argv,
    ]  # fmt: skip
    masked = ", ".join(str(h) for h in _hidden) or "nothing"
    return wrapped, (
        f"bwrap: own PID and IPC namespaces (the harness's /proc out of reach); masked: "
        f"{masked}"
    )
