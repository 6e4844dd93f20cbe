"""`framework.bindings`: per language (c, cpp, java, python) a command that runs the reference
model through that binding (contract: `CommandSpec`); the outputs are compared with ONNX
Runtime's Python FP32 outputs on the same inputs. Without declared bindings the harness's
own Python check is the one binding run (a dry run measures 1 honestly).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from harness.adapters import framework_sut
from harness.contracts.framework import CommandSpec
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.framework.args import BindingsArgs
from harness.probes.framework.checks import (
    _judge_command,
    _prepare_reference,
    _reference_outputs,
    _run_and_store,
    _summary,
)
from harness.probes.framework.commands import HARNESS_PYTHON_BINDING
from harness.probes.framework.identity import language_problem, program_summary
from harness.probes.framework.submission import _reference_note, _submitted, _with_reference
from harness.registry import probes
from harness.schema import Measurement

HARNESS_SELF_CHECK = "harness self-check (no bindings given)"


@probes.register("framework.bindings")
class BindingsProbe:
    name: ClassVar[str] = "framework.bindings"
    Args: ClassVar[type[BaseModel]] = BindingsArgs

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"working_bindings": "count"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, BindingsArgs)
        return 1 + (len(args.bindings) if args.bindings else 1)

    def collect(self, ctx: CollectContext) -> list[str]:
        import sys

        assert isinstance(ctx.args, BindingsArgs)
        submitted = _submitted(ctx)
        args, origin = _with_reference(ctx, submitted, ctx.args)
        ctx.progress("reference outputs")
        bindings: dict[str, CommandSpec]
        if submitted is not None and submitted.bindings is not None:
            source = "submission (sut.bindings)"
            bindings = {
                str(lang): framework_sut.submitted_command(spec, ctx.sut_base_dir)
                for lang, spec in submitted.bindings.items()
            }
        elif args.bindings is not None:
            source = "suite (task args bindings)"
            bindings = {str(lang): spec for lang, spec in args.bindings.items()}
        else:
            source = HARNESS_SELF_CHECK
            bindings = {
                "python": CommandSpec(
                    argv=[sys.executable, "-c", HARNESS_PYTHON_BINDING, "{model}", "{input}"],
                    timeout_s=120.0,
                )
            }
        failures: list[str] = []
        with tempfile.TemporaryDirectory() as tmp:
            model, inputs, _ = _prepare_reference(ctx, args, Path(tmp), origin)
            for lang, spec in bindings.items():
                ctx.progress(f"binding {lang}")
                record = _run_and_store(ctx.evidence, f"bindings/{lang}", spec, model, inputs)
                record.update(language=lang, declared_argv=spec.argv, source=source)
                ctx.evidence.write_json(f"bindings/{lang}.json", record)
                if record["status"] != "ran":
                    failures.append(f"binding {lang}: {record['reason']}")
        ctx.evidence.write_json(
            "bindings.json",
            {
                "languages": list(bindings),
                "source": source,
                "declared": {lang: spec.model_dump() for lang, spec in bindings.items()},
            },
        )
        return failures

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, BindingsArgs)
        reference = _reference_outputs(evidence)
        index = evidence.read_json("bindings.json")
        languages = index["languages"]
        declared = index.get("declared") or {}
        if sorted(languages) != sorted(declared) or (
            index.get("source") == HARNESS_SELF_CHECK and languages != ["python"]
        ):
            raise ValueError(
                f"bindings.json lists {languages} but declares {sorted(declared)} "
                f"(source: {index.get('source')})"
            )
        details: dict[str, Any] = {}
        working = 0
        seen: dict[str, str] = {}  # program identity -> the language it first counted for
        for lang in languages:
            record = evidence.read_json(f"bindings/{lang}.json")
            ok, reason, detail = _judge_command(evidence, record, reference, args.tolerance)
            program = record.get("program")
            if ok:
                problem = (
                    language_problem(lang, program)
                    if program
                    else "no record of the program it ran"
                )
                if not problem and program["identity"] in seen:
                    problem = (
                        f"the same program as the {seen[program['identity']]} binding "
                        "(counted once)"
                    )
                if problem:
                    ok, reason = False, problem
                else:
                    seen[program["identity"]] = lang
            working += ok
            details[lang] = {
                "status": reason,
                "program": program_summary(program),
                "source": record["source"],
                "argv": record["declared_argv"],
                "cwd": record.get("cwd"),
                "exit_code": record.get("exit_code"),
                "wall_s": record.get("wall_s"),
                **({"comparison": detail} if detail else {}),
            }
        measurement = Measurement(
            id="working_bindings",
            value=float(working),
            unit="count",
            n=len(languages),
            repeats=1,
            method=(
                f"language bindings (of c, cpp, java, python) whose command ran the reference "
                f"model on {len(reference)} held-out inputs and printed outputs matching ONNX "
                f"Runtime Python FP32 within {args.tolerance:g} of max |reference|, and "
                "whose program is of that language (a Python interpreter and its script, java "
                "and a .jar or class, an ELF of its own naming its C/C++ sources); the same "
                "program counts once; that an ELF was built from the sources it names is "
                "declared by the applicant (source: "
                f"{index.get('source', 'unrecorded')}). "
                + _reference_note(evidence)
                + " "
                + _summary(details)
            ),
            details=details,
        )
        return ScoreResult([measurement], [])
