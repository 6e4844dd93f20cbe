"""One LoadGen run: its settings applied, its logs copied into the evidence."""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.adapters.protocol import Sample
from harness.probes.base import CollectContext
from harness.probes.loadgen.args import LoadgenArgs
from harness.probes.loadgen.driver import Driver, RunStats
from harness.probes.loadgen.logs import LoadgenLog, failed_text, parse_detail, trial_passed
from harness.probes.loadgen.settings import MlperfMode, apply_settings, settings_record

LOG_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json")
TRACE_FILE = "mlperf_log_trace.json"


class Runner:
    """Runs LoadGen once per call and copies its logs into runs/NN-<name>/."""

    def __init__(
        self,
        ctx: CollectContext,
        args: LoadgenArgs,
        lg: Any,
        driver: Driver,
        sut: Any,
        failures: list[str],
        mlperf: MlperfMode | None = None,
    ) -> None:
        self.ctx, self.args, self.lg, self.driver, self.sut = ctx, args, lg, driver, sut
        self.failures = failures
        self.mlperf = mlperf
        self.count = 0

    def performance_count(self, values: dict[str, Any]) -> int:
        """The performance sample count these settings give (0: the QSL's own)."""
        applied = settings_record(apply_settings(self.lg, values, self.mlperf))
        return int(applied["performance_sample_count_override"]) or 2**62

    def run(
        self,
        name: str,
        samples: list[Sample],
        values: dict[str, Any],
        record_formats: bool = False,
        repeat: tuple[int, int] | None = None,
    ) -> tuple[LoadgenLog, RunStats]:
        """One LoadGen run of `samples` with these settings; `repeat` (k, of) marks the
        k-th of a task's performance runs."""
        lg, args, driver = self.lg, self.args, self.driver
        self.count += 1
        directory = f"runs/{self.count:02d}-{name}"
        self.ctx.progress(name)
        total = len(samples)
        settings = apply_settings(lg, values, self.mlperf)
        if settings.performance_sample_count_override > total:
            # mlperf.conf's count for the model, above what this QSL holds: LoadGen would
            # index past it (score() reports the smaller count as a departure from MLPerf)
            settings.performance_sample_count_override = total
        applied = settings_record(settings)
        performance = min(total, applied["performance_sample_count_override"] or total)
        with tempfile.TemporaryDirectory(prefix="loadgen-") as tmp:
            log_settings = lg.LogSettings()
            log_settings.log_output.outdir = tmp
            log_settings.log_output.prefix = "mlperf_log_"
            log_settings.log_output.suffix = ""
            log_settings.log_output.prefix_with_datetime = False
            log_settings.log_output.copy_detail_to_stdout = False
            log_settings.log_output.copy_summary_to_stdout = False
            log_settings.enable_trace = args.trace
            driver.begin(samples, record_formats)
            qsl = lg.ConstructQSL(total, performance, driver.load, driver.unload)
            started = time.perf_counter()
            collecting = gc.isenabled()
            gc.disable()  # no cyclic-GC pause of the harness's own garbage in a timed run
            try:
                # a path that never exists: no audit.config lying in the cwd can change
                # the settings behind the harness's back
                lg.StartTestWithLogSettings(
                    self.sut, qsl, settings, log_settings, str(Path(tmp) / "none")
                )
            finally:
                wall = time.perf_counter() - started
                if collecting:
                    gc.enable()
                lg.DestroyQSL(qsl)
                stats = driver.end()
            out = Path(tmp)
            for name_ in (*LOG_FILES, *((TRACE_FILE,) if args.trace else ())):
                path = out / name_
                if path.is_file():
                    self.ctx.evidence.write_bytes(f"{directory}/{name_}", path.read_bytes())
            detail = out / "mlperf_log_detail.txt"
            log = parse_detail(detail.read_text(encoding="utf-8") if detail.is_file() else "")
        if record_formats:
            self.ctx.evidence.write_json(
                f"{directory}/formats.json", {str(k): v for k, v in sorted(stats.formats.items())}
            )
        record = {
            "name": name,
            "settings": values,
            # every TestSettings field LoadGen was handed (in MLPerf mode: FromConfig's)
            "applied_settings": applied,
            "qsl": {
                "total": total,
                "performance": performance,
                "first_sample_index": samples[0].index,
            },
            "wall_s": wall,
            "trace": args.trace,
            **stats.as_json(),
        }
        if repeat is not None:
            record["repeat"] = {"index": repeat[0], "of": repeat[1]}
        if name.startswith("search-"):
            passed, why = trial_passed(log, stats.failed)
            record["trial"] = {"passed": passed, "why": why}
        self.ctx.evidence.write_json(f"{directory}/run.json", record)
        if stats.failed:
            self.failures.append(f"{name}: {failed_text(stats.as_json())}")
        return log, stats
