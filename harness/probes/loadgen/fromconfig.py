"""LoadGen's `TestSettings.FromConfig`, in a process of its own.

LoadGen counts user.conf loads per process: only the first `FromConfig(..., conf_type=1)`
of a process applies its built-in mlperf.conf first; every later one leaves mlperf.conf out
and logs `error_invalid_config` ("Multiple conf files are used") into the next run's
detail log. A harness process runs many tasks and runs, so each lookup runs in a fresh
interpreter, once per task, and every run's TestSettings is rebuilt field by field from
that record (`settings_from_record`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

# the child: FromConfig once (conf_type 1 loads mlperf.conf, then the user.conf; 0 loads
# mlperf.conf alone), every field printed as JSON (LoadGen enums by name)
_CHILD = r"""
import json, sys
import mlperf_loadgen as lg
path, model, scenario, conf_type = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
settings = lg.TestSettings()
rc = settings.FromConfig(path, model, scenario, conf_type)
record = {}
for name in dir(settings):
    if name.startswith("_") or name == "FromConfig":
        continue
    value = getattr(settings, name)
    if isinstance(value, (bool, int, float, str)):
        record[name] = value
    elif isinstance(getattr(value, "name", None), str):
        record[name] = value.name
print(json.dumps({"rc": rc, "settings": record}))
"""
TIMEOUT_S = 60.0


def from_config_record(
    model: str, scenario: str, user_conf: Path | None, timeout_s: float = TIMEOUT_S
) -> dict[str, Any]:
    """Every TestSettings field FromConfig gives for the model and scenario (with the
    user.conf when given); ValueError when LoadGen refuses (a missing file, a line it
    cannot parse: LoadGen takes no trailing comments)."""
    path = "" if user_conf is None else str(user_conf)
    argv = [sys.executable, "-c", _CHILD, path, model, scenario, "0" if user_conf is None else "1"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ValueError(f"LoadGen's FromConfig did not answer within {timeout_s:g} s") from None
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = " ".join(done.stderr.split()[-30:])
        raise ValueError(f"LoadGen's FromConfig failed (exit {done.returncode}): {tail}") from None
    if answer["rc"] != 0:
        raise ValueError(
            f"LoadGen's TestSettings.FromConfig({path!r}, {model!r}, {scenario!r}) refused it "
            f"(return code {answer['rc']}: a missing file, or a line it cannot parse)"
        )
    record: dict[str, Any] = answer["settings"]
    record["scenario"] = scenario  # FromConfig reads the scenario's keys, never sets it
    return record


def settings_from_record(lg: Any, record: dict[str, Any]) -> Any:
    """A TestSettings with every field of `record` set."""
    settings = lg.TestSettings()
    for key, value in record.items():
        if key == "scenario":
            settings.scenario = getattr(lg.TestScenario, value)
        elif key == "mode":
            settings.mode = getattr(lg.TestMode, value)
        else:
            setattr(settings, key, value)
    return settings
