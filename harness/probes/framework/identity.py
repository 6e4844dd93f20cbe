"""What program a command really runs, and which language it is written in.

collect: `program_facts` records the executable (resolved path, sha256, ELF or script, its
shebang), every file the command line names (a script, a .jar, a class file; not the model
or input file the harness substitutes), inline code (`python -c`), and the sources a C/C++
binding declares, each with its sha256; `identity` is the digest of all of that. score:
`language_problem` decides from those facts alone whether the program is of the language
it is declared as; two commands with the same identity are one program, counted once.

What this cannot see (that a declared source file is what the ELF was built from, that a
backend's declared chip is the one it ran on) is labelled as declared by the applicant.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

from harness.probes.framework.util import sha256_bytes, sha256_path

PYTHON_NAME = re.compile(r"^(python|pypy)[0-9.]*$")
# programs that run other programs' code: never a C or C++ binding, never a toolchain part
INTERPRETERS = re.compile(
    r"^(python|pypy)[0-9.]*$|^(java|node|nodejs|perl|ruby|php|lua|Rscript|julia|"
    r"sh|bash|dash|zsh|ksh|fish|busybox|env|xargs|nohup|timeout|nice|time|stdbuf)$"
)
C_SOURCES = (".c",)
CPP_SOURCES = (".cpp", ".cc", ".cxx", ".c++", ".C")
# an ELF that embeds an interpreter, or starts other programs, is not a C/C++ binding of its
# own: these names in its symbol tables give it away
EMBEDDED_INTERPRETER = (b"Py_BytesMain", b"Py_Initialize", b"JNI_CreateJavaVM", b"libpython")
STARTS_PROGRAMS: tuple[bytes, ...] = (
    b"system",
    b"popen",
    b"execv",
    b"execve",
    b"execvp",
    b"execl",
    b"execlp",
    b"execle",
    b"execvpe",
    b"posix_spawn",
    b"posix_spawnp",
    b"syscall",
    b"fork",
    b"vfork",
    b"clone",
    b"clone3",
    b"dlopen",
)
MAX_SCAN_BYTES = 256 * 1024 * 1024
SUBSTITUTED = ("{model}", "{input}")  # commands.MODEL_PLACEHOLDER, INPUT_PLACEHOLDER


def _sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def resolve_program(program: str, cwd: Path, path_env: str | None) -> Path | None:
    """The file argv[0] names: on PATH when it has no separator, else from the cwd."""
    if os.sep not in program:
        found = shutil.which(program, path=path_env)
        return Path(found).resolve() if found else None
    path = (cwd / Path(program).expanduser()).resolve()
    return path if path.is_file() else None


def _head(path: Path, size: int = 256) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def _shebang(path: Path) -> str:
    head = _head(path)
    if not head.startswith(b"#!"):
        return ""
    return head[2:].split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()


def _elf_markers(path: Path) -> dict[str, list[str]]:
    """The interpreter and program-starting names an ELF's bytes hold (NUL-delimited, as the
    dynamic string table stores them)."""
    try:
        if path.stat().st_size > MAX_SCAN_BYTES:
            return {"embedded_interpreter": [], "starts_programs": []}
        data = path.read_bytes()
    except OSError:
        return {"embedded_interpreter": [], "starts_programs": []}
    embedded = [name.decode() for name in EMBEDDED_INTERPRETER if name in data]
    starts = [name.decode() for name in STARTS_PROGRAMS if b"\0" + name + b"\0" in data]
    return {"embedded_interpreter": embedded, "starts_programs": starts}


def _file_fact(path: Path, index: int | None = None) -> dict[str, Any]:
    fact: dict[str, Any] = {"path": str(path), "sha256": sha256_path(path)}
    if index is not None:
        fact["argv_index"] = index
    return fact


def _class_files(argv: list[str], cwd: Path) -> list[Path]:
    """`java -cp DIR Main`: DIR/Main.class (package dots as folders)."""
    found: list[Path] = []
    for i, part in enumerate(argv[:-1]):
        if part in ("-cp", "-classpath", "--class-path"):
            rest = [a for a in argv[i + 2 :] if not a.startswith("-")]
            if not rest:
                continue
            main = rest[0].replace(".", "/") + ".class"
            for entry in argv[i + 1].split(os.pathsep):
                candidate = _existing_file(cwd, str(Path(entry) / main))
                if candidate is not None:
                    found.append(candidate)
    return found


def _existing_file(cwd: Path, part: str) -> Path | None:
    """The regular file a command-line word names (from the cwd), or None: options, code
    and words no path can be are not files."""
    if not part or part.startswith("-") or "\n" in part or len(part) > 4096:
        return None
    try:
        path = (cwd / part).resolve()
        return path if path.is_file() else None
    except (OSError, ValueError):
        return None


def _python_code_digest(source: bytes) -> str:
    """The digest of a Python program's syntax tree: comments, blank lines and layout do
    not make two copies of one script two programs."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return sha256_bytes(source)
    return _sha256_text(ast.dump(tree, annotate_fields=False))


def _program_files(
    executable: Path, argv: list[str], declared_argv: list[str], cwd: Path
) -> tuple[list[dict[str, Any]], list[str]]:
    """The files an interpreter runs as the program (a Python script; a Java .jar or main
    class file), each with a code digest, and inline code digests (python -c / -m)."""
    found: list[dict[str, Any]] = []
    inline: list[str] = []
    name = executable.name
    args = argv[1:]
    if PYTHON_NAME.match(name):
        i = 0
        while i < len(args):
            part = args[i]
            if part == "-c" and i + 1 < len(args):
                inline.append(_python_code_digest(args[i + 1].encode("utf-8")))
                break
            if part == "-m" and i + 1 < len(args):
                inline.append(_sha256_text(f"module {args[i + 1]}"))
                break
            if part in ("-W", "-X"):
                i += 2
                continue
            if part.startswith("-"):
                i += 1
                continue
            if not any(mark in declared_argv[i + 1] for mark in SUBSTITUTED):
                path = _existing_file(cwd, part)
                if path is not None:
                    fact = _file_fact(path, i + 1)
                    fact["code_sha256"] = _python_code_digest(path.read_bytes())
                    found.append(fact)
            break
    elif name == "java":
        for i, part in enumerate(args[:-1]):
            if part == "-jar":
                path = _existing_file(cwd, args[i + 1])
                if path is not None:
                    found.append({**_file_fact(path, i + 2), "code_sha256": sha256_path(path)})
                break
        found += [{**_file_fact(p), "code_sha256": sha256_path(p)} for p in _class_files(argv, cwd)]
    return found, inline


def identity_of(facts: dict[str, Any]) -> str:
    """The program's identity from its recorded digests (scoring recomputes it)."""
    return _sha256_text(
        json.dumps(
            {
                "executable": facts.get("executable_sha256"),
                "program": sorted(
                    str(f.get("code_sha256")) for f in facts.get("program_files", [])
                ),
                "inline": sorted(facts.get("inline_code_sha256", [])),
            }
        )
    )


def program_facts(
    declared_argv: list[str],
    argv: list[str],
    cwd: Path,
    path_env: str | None,
    sources: list[str] | None = None,
) -> dict[str, Any]:
    """What the command runs, with digests; never raises. The identity is the executable
    and, for an interpreter, the program it runs (a script's syntax tree, a .jar or class
    file, inline code): not the other files the command line names, nor declared sources."""
    facts: dict[str, Any] = {"program": argv[0]}
    executable = resolve_program(argv[0], cwd, path_env)
    if executable is None:
        facts["identity"] = _sha256_text(json.dumps({"missing": argv[0]}))
        return facts
    head = _head(executable, 4)
    facts.update(
        executable=str(executable),
        executable_sha256=sha256_path(executable),
        elf=head == b"\x7fELF",
        shebang=_shebang(executable),
    )
    if facts["elf"]:
        facts.update(_elf_markers(executable))
    files: list[dict[str, Any]] = []
    for index in range(1, len(argv)):
        if any(mark in declared_argv[index] for mark in SUBSTITUTED):
            continue  # the model or the input file the harness substitutes
        part = argv[index]
        candidate = _existing_file(cwd, part)
        if candidate is not None:
            files.append(_file_fact(candidate, index))
    program_files, inline = _program_files(executable, argv, declared_argv, cwd)
    declared_sources = []
    for source in sources or []:
        path = (cwd / source).resolve()
        declared_sources.append(
            _file_fact(path) if path.is_file() else {"path": str(path), "sha256": None}
        )
    facts.update(
        files=files,
        program_files=program_files,
        inline_code_sha256=inline,
        sources=declared_sources,
    )
    facts["identity"] = identity_of(facts)
    if executable.name == "java":
        facts["jar_or_class"] = [_java_kind(Path(f["path"])) for f in program_files]
    return facts


def _java_kind(path: Path) -> str:
    """What a Java program file really is: "jar" (a zip holding .class entries), "class"
    (the 0xCAFEBABE magic), or what is wrong with it."""
    head = _head(path, 4)
    if head == b"\xca\xfe\xba\xbe":
        return "class"
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                if any(n.endswith(".class") for n in archive.namelist()):
                    return "jar"
        except (zipfile.BadZipFile, OSError):
            pass
        return "a zip without class files"
    return "neither a jar nor a class file"


def language_problem(language: str, facts: dict[str, Any]) -> str:
    """Why the program recorded in `facts` is not a `language` program ("" when it is)."""
    if "executable" not in facts:
        return f"program {facts.get('program')!r} was not found"
    if facts.get("identity") != identity_of(facts):
        return "the recorded program identity is not the one its digests give"
    name = Path(facts["executable"]).name
    program = [Path(f["path"]) for f in facts.get("program_files", [])]
    shebang = facts.get("shebang", "")
    if language == "python":
        if PYTHON_NAME.match(name) and (
            facts.get("inline_code_sha256") or any(f.suffix == ".py" for f in program)
        ):
            return ""
        if shebang and re.search(r"\b(python|pypy)[0-9.]*\b", shebang):
            return ""
        return (
            f"not a Python program: {name} is neither a Python interpreter running a .py "
            "script or -c code nor a script with a python shebang"
        )
    if language == "java":
        kinds = facts.get("jar_or_class") or []
        if name != "java" or not facts.get("elf"):
            return f"not a Java program: {name} is not a Java launcher (an executable named java)"
        if not kinds:
            return "not a Java program: no .jar (-jar) or main class file (-cp) to run"
        if not all(k in ("jar", "class") for k in kinds):
            return f"not a Java program: its program file is {kinds[0]}"
        return ""
    suffixes = C_SOURCES if language == "c" else CPP_SOURCES
    label = "C" if language == "c" else "C++"
    if not facts.get("elf"):
        return f"not a {label} program: {name} is not a compiled (ELF) executable"
    if INTERPRETERS.match(name):
        return f"not a {label} program: {name} is an interpreter"
    embedded = facts.get("embedded_interpreter") or []
    if embedded:
        return f"not a {label} program: the executable embeds an interpreter ({embedded[0]})"
    starts = facts.get("starts_programs") or []
    if starts:
        return (
            f"not a {label} program of its own: the executable can start other programs "
            f"({', '.join(starts)})"
        )
    sources = facts.get("sources") or []
    missing = [s["path"] for s in sources if s.get("sha256") is None]
    if missing:
        return f"declared source not found: {missing[0]}"
    if not any(Path(s["path"]).suffix in suffixes for s in sources):
        return (
            f"no {label} source declared: a {language} binding names the sources it was "
            f"built from (`sources`, {'/'.join(suffixes)})"
        )
    return ""


def program_summary(facts: dict[str, Any] | None) -> dict[str, Any]:
    """The report's view of a program: executable, digests, and the files it runs."""
    if not facts:
        return {}
    return {
        "executable": facts.get("executable", facts.get("program")),
        "executable_sha256": facts.get("executable_sha256"),
        "files": [f"{f['path']} ({f['sha256'][:12]})" for f in facts.get("files", [])],
        "sources (declared by the applicant)": [s["path"] for s in facts.get("sources", [])],
        "identity": facts.get("identity"),
    }
