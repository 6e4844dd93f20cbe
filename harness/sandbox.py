"""Keeping a SUT program away from what the lab holds, through bubblewrap (`bwrap`, Debian's
`bubblewrap`) when it is installed.

A SUT process sees an allow-list, not the machine: the system folders read-only (/usr,
/etc, /opt, ...), the Python installation and the harness (read-only: a SUT may import the
harness's engines), its program's folder (read-only), its own working folder (the
submission's, read-write) and one folder of SUT inputs (read-write, where the harness
stages the copies it hands over and where `$TMPDIR` points); an empty /tmp; its own PID and
IPC namespaces (the harness's command line, environment and open files under /proc are out
of its reach). The lab's sets, earlier runs' reports, the signing key and everything else
are simply not there; the run's `--dataset` folders, run directory and reports folder are
also masked where they lie inside one of the visible folders. The network and the user stay
the same.

Without bwrap a SUT runs as before and its session's `describe()` says it was not
sandboxed, so the evidence shows it. A lab adds read-only folders with
`HARNESS_SANDBOX_BIND=/path:/other` and turns the sandbox off with `HARNESS_SANDBOX=off`
(both recorded in the same line of the evidence).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
_hidden: list[Path] = []
_inputs: list[Path] = []  # the folder of SUT inputs, made on first use


def hide(paths: Iterable[Path]) -> None:
    """Mask these files and folders from every SUT program started from now on, where they
    lie inside a folder it sees (a file's folder is masked with it: a manifest's images and
    references lie beside it)."""
    for path in paths:
        resolved = Path(os.path.abspath(path))
        target = resolved if resolved.is_dir() else resolved.parent
        if target not in _hidden:
            _hidden.append(target)


def hide_folders(folders: Iterable[Path]) -> None:
    """Mask these folders themselves (whether or not they exist yet)."""
    for folder in folders:
        resolved = Path(os.path.abspath(folder))
        if resolved not in _hidden:
            _hidden.append(resolved)


def reset() -> None:
    """Forget every masked path (a new run in the same process)."""
    _hidden.clear()


def hidden() -> list[Path]:
    return list(_hidden)


def _remove_inputs() -> None:
    for folder in _inputs:
        shutil.rmtree(folder, ignore_errors=True)


def inputs_root() -> Path:
    """The folder where everything a SUT is handed lies (staged copies, temporary input
    files, its `$TMPDIR`): visible inside the sandbox, readable by this user only, removed
    when the harness exits."""
    if not _inputs:
        folder = Path(tempfile.mkdtemp(prefix="harness-sut-"))
        folder.chmod(0o700)
        (folder / "tmp").mkdir()
        _inputs.append(folder)
        atexit.register(_remove_inputs)
    return _inputs[0]


def clear_inputs() -> None:
    """Remove what was staged for the SUTs so far (a task's copies, once its sessions are
    closed), keeping the folder itself and an empty `tmp`."""
    for folder in _inputs:
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        (folder / "tmp").mkdir(exist_ok=True)


def _disabled() -> bool:
    return os.environ.get("HARNESS_SANDBOX", "").strip().lower() in ("off", "0", "no")


@functools.cache
def _bwrap_program() -> str | None:
    program = shutil.which("bwrap")
    if program is None:
        return None
    try:
        probe = subprocess.run(
            [program, "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "true"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return program if probe.returncode == 0 else None


def bwrap() -> str | None:
    """The bwrap program when it is installed, can make namespaces here and is not turned
    off (HARNESS_SANDBOX=off), else None."""
    return None if _disabled() else _bwrap_program()


def stage_parent(fallback: Path | None) -> Path | None:
    """Where to make a folder of copies for a SUT: the inputs folder when SUTs run in the
    sandbox (the only place they can read), else `fallback` (None: the system's temporary
    folder)."""
    if bwrap() is None:
        return fallback
    root = inputs_root()
    return fallback if fallback is not None and fallback.resolve().is_relative_to(root) else root


def staging(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for what a SUT is handed: inside the inputs folder when SUTs run
    in the sandbox (where they can read it), else in the system's temporary folder; removed
    when its `with` block ends."""
    return tempfile.TemporaryDirectory(prefix=prefix, dir=stage_parent(None))


def _interpreter_dirs(program: str) -> list[Path]:
    """The folders a program needs beside its own: a script's interpreter (its shebang),
    a pyenv shim's pyenv installation."""
    found: list[Path] = []
    real = Path(os.path.realpath(program))
    try:
        with open(real, "rb") as handle:
            first = handle.readline(256)
    except OSError:
        return found
    if first.startswith(b"#!"):
        words = first[2:].decode(errors="replace").split()
        if words:
            interpreter = words[1] if words[0].endswith("/env") and len(words) > 1 else words[0]
            located = shutil.which(interpreter) or interpreter
            found.append(Path(os.path.realpath(located)).parent)
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    if real.is_relative_to(root):
        found.append(Path(root))
    return found


def _visible(cwd: Path, argv: list[str]) -> list[Path]:
    """Read-only folders a SUT needs beyond the system's: its program's, the folders of the
    files its command line names (a script given to an interpreter), the interpreter's."""
    program = argv[0]
    needed = [Path(os.path.abspath(program)).parent, Path(os.path.realpath(program)).parent]
    for word in argv[1:]:
        named = Path(word) if os.path.isabs(word) else cwd / word
        try:
            if len(word) < 4096 and "\n" not in word and named.is_file():
                needed.append(named.resolve().parent)
        except (OSError, ValueError):  # a word that is no file name (code, a long text)
            continue
    needed += _interpreter_dirs(program)
    needed += [Path(p) for p in sorted({sys.prefix, sys.base_prefix, sys.exec_prefix})]
    needed.append(Path(__file__).resolve().parents[1])  # the harness itself (SUTs import it)
    extra = os.environ.get("HARNESS_SANDBOX_BIND", "")
    needed += [Path(p) for p in extra.split(os.pathsep) if p.strip()]
    out: list[Path] = []
    for folder in needed:
        if folder.exists() and folder not in out and folder != Path("/"):
            out.append(folder)
    return out


def wrap(argv: list[str], cwd: Path) -> tuple[list[str], str]:
    """The command line that runs `argv` in the sandbox, and a line for the evidence saying
    what the sandbox did (argv unchanged and the reason when there is none)."""
    program = bwrap()
    if program is None:
        why = (
            "turned off (HARNESS_SANDBOX=off)"
            if _disabled()
            else "bwrap (Debian package bubblewrap) is not installed or cannot make "
            "namespaces here"
        )
        return argv, f"none: {why}, so the SUT ran as this user with the lab's files in reach"
    inputs = inputs_root()
    system: list[str] = []
    for name in SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            system += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            system += ["--ro-bind", name, name]
    visible = _visible(cwd, argv)
    binds: list[str] = []
    for folder in visible:
        binds += ["--ro-bind", str(folder), str(folder)]
    shown = [*visible, cwd, inputs]
    masks: list[str] = []
    for folder in _hidden:
        if folder.exists() and any(folder.is_relative_to(v) for v in visible):
            masks += ["--tmpfs", str(folder)]
    wrapped = [
        program,
        *system,
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
        *binds,
        *masks,
        # its own folder and its inputs last: visible even inside a masked folder
        "--bind", str(cwd), str(cwd),
        "--bind", str(inputs), str(inputs),
        "--setenv", "TMPDIR", str(inputs / "tmp"),
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        "--chdir", str(cwd),
        "--",
        *argv,
    ]  # fmt: skip
    masked = ", ".join(str(h) for h in _hidden) or "nothing"
    return wrapped, (
        "bwrap: own PID and IPC namespaces; sees the system folders and "
        f"{', '.join(str(v) for v in shown)} only; masked inside them: {masked}"
    )
