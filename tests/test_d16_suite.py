"""The d16-pretrained-models suite end to end through the CLI: the quick dry run (the dev
checkpoint and the reference server: figures that never decide), and a submission whose
checkpoint comes through the `checkpoint` adapter and whose model is served over HTTP,
audited. Expected counts are worked out by hand from the tensors the test writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import yaml
from clihelpers import run_cli
from safetensors.numpy import save_file

from harness.refengines import finetune_platform
from harness.refengines.llm_server import ServerProcess


def _verdicts(run_dir: Path) -> dict[str, dict]:
    statement = json.loads((run_dir / "statement.json").read_text(encoding="utf-8"))
    return {v["indicator"]: v for v in statement["predicate"]["verdicts"]}


def test_quick_dry_run_decides_nothing_and_audits(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli("run", "d16-pretrained-models", "--quick", "--out", run_dir)
    assert result.code == 0, result.stderr[-600:]
    verdicts = _verdicts(run_dir)
    assert set(verdicts) == {
        "parameters",
        "serving_ttft_p99",
        "serving_tpot_p99",
        "modalities",
        "services",
        "finetune_accuracy",
        "manual_settings",
    }
    assert {v["status"] for v in verdicts.values()} == {"INCONCLUSIVE"}
    audit = run_cli("audit", run_dir)
    assert audit.code == 0, audit.stdout + audit.stderr


def test_a_submitted_checkpoint_and_served_model(tmp_path: Path) -> None:
    folder = tmp_path / "submission"
    folder.mkdir()
    # 10x20 + 20 + 5x5 = 245 parameters, by hand
    save_file(
        {
            "layer.weight": np.zeros((10, 20), np.float32),
            "layer.bias": np.zeros(20, np.float32),
            "head.weight": np.zeros((5, 5), np.float16),
        },
        str(folder / "model.safetensors"),
    )
    with ServerProcess(seed=3) as server:
        submission = folder / "submission.yaml"
        submission.write_text(
            yaml.safe_dump(
                {
                    "applicant": "Test Lab",
                    "product": "Tiny LM",
                    "suite": "d16-pretrained-models",
                    # `checkpoint` beside the http SUT: llm.services' model service
                    "sut": {
                        "adapter": "http",
                        "url": server.url,
                        "checkpoint": "model.safetensors",
                    },
                    "task_suts": {
                        "params": {"adapter": "checkpoint", "checkpoint": "model.safetensors"},
                        "finetune": {
                            "adapter": "command",
                            "argv": [sys.executable, finetune_platform.__file__, "{input}"],
                            "manual_settings": ["learning_rate"],
                        },
                    },
                }
            ),
            encoding="utf-8",
        )
        run_dir = tmp_path / "run"
        result = run_cli(
            "run", "d16-pretrained-models", "--quick", "--submission", submission,
            "--out", run_dir,
        )
    assert result.code == 0, result.stderr[-600:]
    statement = json.loads((run_dir / "statement.json").read_text(encoding="utf-8"))
    figures = {m["id"]: m for m in statement["predicate"]["measurements"]}
    assert figures["params.parameters_total"]["value"] == 245
    assert figures["params.parameters_total"]["unit"] == "count"
    parameters = _verdicts(run_dir)["parameters"]
    assert parameters["status"] == "FAIL"  # 245 parameters, far below 100 billion
    # the API answered and the checkpoint was counted; the random-weight model writes no
    # working code and the submission names no data service
    services = figures["services.services"]
    assert services["value"] == 2
    per = services["details"]["services"]
    assert {name for name, row in per.items() if row["counted"]} == {"api", "model"}
    # the submission declared one setting it made by hand: counted, and the target is none
    assert figures["finetune.manual_settings"]["value"] == 1
    assert _verdicts(run_dir)["manual_settings"]["status"] == "FAIL"
    assert run_cli("audit", run_dir).code == 0
