"""The page of every shipped suite, `docs/suites/<id>.md`, generated from the suite file so
that it cannot drift from what runs: its indicators with their targets and sources, its
tasks with the probe and arguments (full and `--quick`), the submission it takes and the
dry run on this machine.

    python -m harness.suite_docs    # rewrite docs/suites/ (tests check it is current)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.loading import load_model
from harness.schema import Suite
from harness.suites import SUITES_DIR

DOCS_DIR = SUITES_DIR.parent / "docs" / "suites"

# what a submission looks like for the suites whose SUT is not the local machine's device
SUBMISSION_EXAMPLES: dict[str, str] = {
    "D04": """\
applicant: Example Lab
product: Example Inference Framework 2.0
suite: {id}
sut:
  adapter: framework
  model: model/classifier-fp32.onnx   # FP32 ONNX classifier; with data: the labelled .npz
  data: model/held_out.npz
  bindings:
    c: {{argv: [./build/run_c, "{{model}}", "{{input}}"], sources: [src/run.c]}}
    python: {{argv: [python3, bindings/run.py, "{{model}}", "{{input}}"]}}
  backends:
    - {{name: cpu, provider: CPUExecutionProvider, chip: Example SoC CPU}}
    - name: npu
      chip: Example NPU
      command: {{argv: [./build/run_npu, "{{model}}", "{{input}}"]}}
""",
}
LOCAL_SUBMISSION = """\
applicant: Example Lab
product: Example Chip X1
suite: {id}
sut: {{adapter: local, device: auto}}   # cpu | cuda | cuda:N
hardware: hardware/example-x1.yaml    # the system description (optional on a shipped CPU)
declared:                              # per indicator id: current level, own target
  {first}: {{current: 1, target: 2}}
"""


def _args(args: dict[str, Any]) -> str:
    if not args:
        return "(defaults)"
    return "`" + yaml.safe_dump(args, default_flow_style=True, width=10_000).strip() + "`"


def render(suite: Suite) -> str:
    lines = [
        f"# {suite.id} v{suite.version}: {suite.title}",
        "",
        f"Direction {suite.direction}. Source: {suite.source}. Confidence of every bound: "
        f"{suite.confidence:.0%} (one-sided).",
        "",
        "_Generated from `suites/" + suite.id + ".yaml` by `python -m harness.suite_docs`._",
        "",
        "## Indicators",
        "",
        "| indicator | measured by | target | source |",
        "|---|---|---|---|",
    ]
    for ind in suite.indicators:
        target = f"{ind.op} {ind.target:g} {ind.unit}"
        source = ind.source.replace("|", "\\|")
        if ind.pending:
            source += f" (pending: {ind.pending})"
        lines.append(f"| `{ind.id}`: {ind.title} | `{ind.metric}` | {target} | {source} |")
    if suite.ranking is not None:
        keys = ", then ".join(
            f"`{k.indicator}` ({k.prefer} is better)" for k in suite.ranking.primary
        )
        lines += [
            "",
            "## Ranking (`harness rank`)",
            "",
            f"Applicants whose every indicator PASSes first, then {keys}; an indicator orders "
            "two applicants only where their intervals do not overlap (otherwise the next one "
            f"is asked, and a tie on all of them stays a tie). Shortlist: at most "
            f"{suite.ranking.shortlist}; winners: at most {suite.ranking.winners}. Source: "
            f"{suite.ranking.source or 'the suite'}.",
        ]
    lines += [
        "",
        "## Tasks",
        "",
        "| task | probe | what it runs | arguments | `--quick` changes |",
        "|---|---|---|---|---|",
    ]
    for task in suite.tasks:
        title = task.title.replace("|", "\\|")
        lines.append(
            f"| `{task.id}` | `{task.probe}` | {title} | {_args(task.args)} | "
            f"{_args(task.quick_args)} |"
        )
    inputs_page = DOCS_DIR / f"{suite.id}.inputs.md"
    inputs = inputs_page.read_text(encoding="utf-8").strip() if inputs_page.is_file() else ""
    example = SUBMISSION_EXAMPLES.get(suite.direction)
    if example is None and not inputs:
        example = LOCAL_SUBMISSION
    if example is not None:
        lines += [
            "",
            "## Input: the submission",
            "",
            "Without `--submission` the local machine is the system under test (its CPU, or a "
            "CUDA GPU torch sees). A submission file (paths relative to it):",
            "",
            "```yaml",
            example.format(id=suite.id, first=suite.indicators[0].id).rstrip(),
            "```",
        ]
    if any(task.probe.startswith("power") or "power" in task.id for task in suite.tasks):
        lines += [
            "",
            "Power verdicts need a meter the lab names: `--instruments lab.yaml` or "
            "`--meter-log wall.csv --meter-uncertainty 0.5%+0.1W` (README, Power).",
        ]
    if inputs:
        lines += [
            "",
            f"_The sections below come from `docs/suites/{suite.id}.inputs.md`._",
            "",
            inputs,
        ]
    lines += [
        "",
        "## Dry run on this machine",
        "",
        "```bash",
        f"harness run {suite.id} --quick --out /tmp/{suite.id}-dry",
        f"harness verify /tmp/{suite.id}-dry && harness audit /tmp/{suite.id}-dry",
        "```",
        "",
        "A `--quick` run is real but short: the report says QUICK, and figures LoadGen or the "
        "bounds cannot decide from it are INCONCLUSIVE with what they need.",
        "",
    ]
    return "\n".join(lines)


def pages() -> dict[Path, str]:
    out: dict[Path, str] = {}
    for path in sorted(SUITES_DIR.glob("*.yaml")):
        suite = load_model(path, Suite, "suite")
        out[DOCS_DIR / f"{suite.id}.md"] = render(suite)
    return out


def main() -> None:
    DOCS_DIR.mkdir(parents=True, exist_ok=True)
    for path, text in pages().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
