"""`face.search_qps` and the reference 1:N engine: the faiss index against a numpy brute
force, the search-trial rule, and LoadGen Server runs against a scripted SUT that reports
its gallery size (the guide's ten-million condition)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from probehelpers import collect_and_score
from probehelpers import score_context as probe_score_context
from test_face_identify import write_sets

from harness.adapters.protocol import Sample, SampleOutput
from harness.evidence import EvidenceReader
from harness.probes.base import ScoreContext, ScoreResult
from harness.probes.biometrics.search_qps import SearchQpsArgs, SearchQpsProbe, trial_ok
from harness.probes.loadgen.logs import LoadgenLog
from harness.refengines.face_search import FaceSearchEngine, FlatIndex, background_vectors
from harness.schema import SutSpec


def test_background_vectors_are_seeded_unit_vectors() -> None:
    a, b = background_vectors(1000, 3), background_vectors(1000, 3)
    assert a.dtype == np.float32 and a.shape == (1000, 128)
    assert np.array_equal(a, b) and not np.array_equal(a, background_vectors(1000, 4))
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_flat_index_matches_numpy_brute_force() -> None:
    index = FlatIndex(background=500, seed=1)
    rng = np.random.default_rng(2)
    enrolled = rng.standard_normal((20, 128)) * 0.1
    for k, e in enumerate(enrolled):
        index.add(f"e{k}", e)
    try:
        queries = enrolled[:5] + rng.standard_normal((5, 128)) * 0.01
        rows, scores = index.search(queries, 7)
        every = np.vstack([background_vectors(500, 1).astype(np.float64), enrolled])
        for q, r, s in zip(queries, rows, scores, strict=True):
            dist = np.linalg.norm(every - q, axis=1)
            order = np.argsort(dist, kind="stable")[:7]
            assert list(r) == list(order)
            assert np.allclose(s, 1 - dist[order], atol=1e-4)
        assert index.describe()["gallery_size"] == 520
    finally:
        index.close()


def test_engine_answers_embeddings_with_rows() -> None:
    engine = FaceSearchEngine(background=100, seed=0, vector_candidates=3)
    try:
        vectors = background_vectors(100, 0)
        outs = engine.run([Sample(0, vectors[7:8]), Sample(1, vectors[42:43])])
        assert [int(o.output[0]) for o in outs] == [7, 42]
        assert all(o.output.shape == (3,) for o in outs)
    finally:
        engine.close()


def _log(**values: Any) -> LoadgenLog:
    return LoadgenLog(values, [], [])


def test_trial_rule_fails_a_backlog() -> None:
    ok = {"result_validity": "INVALID", "result_perf_constraints_met": True}
    assert trial_ok(
        _log(**ok, result_scheduled_samples_per_sec=100.0, result_completed_samples_per_sec=99.0), 0
    )[0]
    passed, why = trial_ok(
        _log(**ok, result_scheduled_samples_per_sec=100.0, result_completed_samples_per_sec=80.0), 0
    )
    assert not passed and "backlog" in why
    assert not trial_ok(_log(result_validity="VALID", result_perf_constraints_met=False), 0)[0]
    assert not trial_ok(_log(**ok), 3)[0]


class InstantSut:
    """Answers every search at once with one candidate; reports `size` as its gallery."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.searches = 0

    def describe(self) -> dict[str, Any]:
        return {"adapter": "scripted", "gallery_size": self.size}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out = []
        for s in samples:
            request = json.loads(s.data)
            if "enrol" in request:
                answer = json.dumps({"gallery_size": self.size})
            else:
                self.searches += 1
                answer = json.dumps({"candidates": [{"id": "g000000", "score": 0.5}]})
            out.append(SampleOutput(s.index, answer, None, 0.0))
        return out

    def close(self) -> None:
        pass


ARGS = SearchQpsArgs(
    min_duration_s=0.3, performance_runs=1, search_trial_s=0.2, search_steps=0, warmup_samples=2
)


def run(tmp: Path, session: Any, args: SearchQpsArgs = ARGS) -> tuple[list[str], ScoreResult]:
    g, s = write_sets(tmp)
    root = tmp / "evidence"
    probe = SearchQpsProbe()
    return collect_and_score(
        probe,
        args,
        root,
        {"gallery": g, "searches": s},
        session=session,
        sut=SutSpec(adapter="command"),
        task_id="search_qps",
        quick=True,
    )


def score_context(args: SearchQpsArgs) -> ScoreContext:
    """What the spine hands score(): the run's --dataset names (both sets) among the rest."""
    return probe_score_context(args, {"gallery", "searches"}, task_id="search_qps")


@pytest.mark.parametrize(
    ("size", "required", "gallery_reason"),
    [
        # the engine claims ten million, the harness enrolled a handful: not verified
        (10_000_000, 10_000_000, "the harness enrolled"),
        (1_000, 10_000_000, "below the 10,000,000"),
        (10_000_000, 1, ""),  # a suite asking for no more than the harness enrolled
    ],
)
def test_loadgen_server_against_a_scripted_sut(
    tmp_path: Path, size: int, required: int, gallery_reason: str
) -> None:
    sut = InstantSut(size)
    # two trials are enough here: 150 passes, then stop doubling at 300
    args = ARGS.model_copy(update={"target_qps": 150.0, "required_gallery": required})
    failures, result = run(tmp_path, sut, args)
    assert failures == []
    assert sut.searches > 0
    m = {x.id: x for x in result.measurements}
    assert set(m) == {
        "server_max_valid_qps",
        "server_qps",
        "latency_p50",
        "latency_p90",
        "latency_p99",
    }
    best = m["server_max_valid_qps"]
    assert best.value >= 150
    assert best.details["latency_constraint_at_target"]["target_qps"] == 150
    assert best.details["gallery_size_reported"] == size
    for x in m.values():
        assert f"gallery size N = {size}" in x.method
        if gallery_reason:
            assert gallery_reason in x.invalid_reason
        else:
            assert "enrolled" not in x.invalid_reason and "below" not in x.invalid_reason
        assert "built-in dev set" not in x.invalid_reason
    assert m["latency_p50"].value <= m["latency_p90"].value <= m["latency_p99"].value


def test_a_malformed_enrol_answer_is_a_failure(tmp_path: Path) -> None:
    class NoSize(InstantSut):
        def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
            out = super().run(samples)
            if samples and samples[0].index == 0 and "enrol" in samples[0].data:
                return [SampleOutput(0, '{"size": 3}', None, 0.0)]
            return out

    failures, result = run(tmp_path, NoSize(0), ARGS.model_copy(update={"search_steps": 0}))
    assert any("gallery_size" in f for f in failures)
    assert all("enrolment answer malformed" in m.invalid_reason for m in result.measurements)


# ------------------------------------------------------------------ the answers are checked


class ScriptedSut(InstantSut):
    """Answers each search with `answer(request, call)`; `call` counts the run calls."""

    def __init__(self, size: int, answer: Any) -> None:
        super().__init__(size)
        self.answer = answer
        self.calls = 0

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out = []
        for s in samples:
            request = json.loads(s.data)
            if "enrol" in request:
                out.append(SampleOutput(s.index, json.dumps({"gallery_size": self.size}), None, 0))
                continue
            self.calls += 1
            out.append(SampleOutput(s.index, self.answer(request, self.calls), None, 0.0))
        return out


def test_an_engine_that_does_not_search_gets_no_throughput(tmp_path: Path) -> None:
    # the hostile stub: every search answered with text that is no answer (7,200 queries/s)
    sut = ScriptedSut(10_000_000, lambda request, call: "I did not search")
    quick = {"required_gallery": 1, "search_trial_s": 0.1, "min_duration_s": 0.2}
    failures, result = run(tmp_path, sut, ARGS.model_copy(update=quick))
    assert any("malformed search answers" in f and "not JSON" in f for f in failures), failures
    assert "server_max_valid_qps" not in {m.id for m in result.measurements}
    why = {u.id: u.reason for u in result.unmeasured}["server_max_valid_qps"]
    assert "no Server trial" in why
    for m in result.measurements:  # the confirmation runs' figures cannot decide
        assert "answers in the performance runs malformed" in m.invalid_reason
        assert m.details["answers"]["performance_runs_pooled"]["well_formed"] == 0


def test_protocol_answers_are_parsed_with_identifys_parser() -> None:
    from harness.probes.biometrics.search_answers import AnswerCheck

    check = AnswerCheck(["A", None], {"g000000": "A", "g000001": "B"}, 2)

    def answer(index: int, *candidates: tuple[str, float]) -> SampleOutput:
        value = {"candidates": [{"id": c, "score": v} for c, v in candidates]}
        return SampleOutput(index, json.dumps(value), None, 0.0)

    assert check.check(answer(0, ("g000001", 0.9), ("g000000", 0.5))) == (None, True)
    assert check.check(answer(0, ("g000001", 0.9))) == (None, False)
    assert check.check(answer(1, ("g000000", 0.9))) == (None, None)
    fta = SampleOutput(0, '{"failure_to_acquire": true}', None, 0.0)
    assert check.check(fta) == (None, None)
    why, _ = check.check(answer(0, ("someone-else", 0.9)))
    assert why is not None and "'someone-else' is no enrolled id" in why
    why, _ = check.check(answer(0, ("g000000", 0.1), ("g000001", 0.9)))
    assert why is not None and "best first" in why
    why, _ = check.check(SampleOutput(0, "I did not search", None, 0.0))
    assert why is not None and "not JSON" in why
    summary = check.summarise(
        [answer(0, ("g000000", 0.9)), SampleOutput(1, None, "timeout", 0.0), answer(0, ("x", 1))]
    )
    assert (summary["answers"], summary["well_formed"], summary["malformed"]) == (3, 1, 1)
    assert (summary["failed"], summary["mated_answers"], summary["mate_among_candidates"]) == (
        1,
        1,
        1,
    )


def test_an_engine_that_stops_returning_mates_under_load_is_invalid(tmp_path: Path) -> None:
    # rows 0..3 of write_sets are subjects A..D; searches s1 (A), s2 (B), s3 (C) are mated
    mate = {"000004.png": "g000000", "000005.png": "g000001", "000006.png": "g000002"}

    def answer(request: dict[str, Any], call: int) -> str:
        name = Path(request["search"]).name
        best = mate.get(name, "g000003") if call <= 6 else "g000003"  # D: no search's mate
        return json.dumps({"candidates": [{"id": best, "score": 0.5}]})

    args = ARGS.model_copy(update={"required_gallery": 1, "warmup_samples": 6})
    failures, result = run(tmp_path, ScriptedSut(4, answer), args)
    assert failures == []
    best = {m.id: m for m in result.measurements}["server_max_valid_qps"]
    assert "the engine does not return mates under load" in best.invalid_reason
    answers = best.details["answers"]
    assert answers["unloaded"]["mate_rate"] == 1.0  # 3 of 3 mated searches, one at a time
    assert answers["performance_runs_pooled"]["mate_rate"] == 0.0
    assert answers["performance_runs_pooled"]["well_formed"] > 0


def test_the_checks_of_a_well_behaved_engine(tmp_path: Path) -> None:
    sut = InstantSut(4)  # always g000000 (subject A): the mate of s1 only
    failures, result = run(tmp_path, sut, ARGS.model_copy(update={"required_gallery": 1}))
    assert failures == []
    best = {m.id: m for m in result.measurements}["server_max_valid_qps"]
    assert "mates" not in best.invalid_reason and "malformed" not in best.invalid_reason
    answers = best.details["answers"]
    assert answers["unloaded"]["mate_rate"] == pytest.approx(1 / 3)
    # LoadGen draws the samples at random: about a third of the mated ones are s1
    assert 0.15 < answers["performance_runs_pooled"]["mate_rate"] < 0.55
    assert all(r["well_formed_share"] == 1.0 for r in answers["per_run"].values())
    # 6 distinct searches, far more queries per run: the method says the inputs repeat
    assert answers["distinct_search_inputs"] == 6 and answers["inputs_repeat"] is True
    assert "distinct search inputs, so inputs repeat" in best.method
    assert best.details["gallery_check"]["engine_own_entries_claimed"] == 0


def test_the_reference_engines_rows_are_checked() -> None:
    from harness.probes.biometrics.search_answers import AnswerCheck

    # 5 background rows, then the enrolled g000000 (subject A) and g000001 (subject B)
    check = AnswerCheck(["A", None], {"g000000": "A", "g000001": "B"}, 3, ["g000000", "g000001"], 5)
    rows = np.array
    assert check.check(SampleOutput(0, rows([5, 2, -1]), None, 0.0)) == (None, True)
    assert check.check(SampleOutput(0, rows([6, 2]), None, 0.0)) == (None, False)
    assert check.check(SampleOutput(1, rows([5]), None, 0.0)) == (None, None)  # non-mated
    why, _ = check.check(SampleOutput(0, rows([7]), None, 0.0))
    assert why is not None and "outside the index of 7" in why
    why, _ = check.check(SampleOutput(0, rows([1, 1]), None, 0.0))
    assert why is not None and "twice" in why
    why, _ = check.check(SampleOutput(0, rows([1, 2, 3, 4]), None, 0.0))
    assert why is not None and "more than the 3" in why


def test_the_gallery_size_is_checked_against_enrolled_and_background() -> None:
    from harness.probes.biometrics.search_qps import _gallery_check

    reference = {"reference": True, "synthetic_background": 100}
    assert "mismatch" not in _gallery_check(reference, 10, ["g000003"], 109)
    bad = _gallery_check(reference, 10, [], 10_000_000)
    assert "not the 10 entries enrolled plus its 100 synthetic background" in bad["mismatch"]
    sut = _gallery_check({"reference": False}, 10, [], 10_000_000)
    assert "mismatch" not in sut and sut["engine_own_entries_claimed"] == 9_999_990


def test_edited_dev_set_and_enrolled_counts_are_refused(tmp_path: Path) -> None:
    """What an auditor did: edit items.json and re-sign; score() must refuse it."""
    run(tmp_path, InstantSut(10_000_000))
    evidence = tmp_path / "evidence"
    original = json.loads((evidence / "items.json").read_text())
    edits = [
        ({"dev_set": {"faces": 4}}, "items.json says the dev set, but the run was given --dataset"),
        ({"enrolled": 10_000_000}, "items.json says 10000000 entries enrolled, the gallery copy "),
        ({"image_sha256": None}, "no image digest per gallery entry and search"),
    ]
    for edit, needle in edits:
        (evidence / "items.json").write_text(json.dumps({**original, **edit}))
        with pytest.raises(ValueError) as error:
            SearchQpsProbe().score(EvidenceReader(evidence), score_context(ARGS))
        assert needle in str(error.value)
    (evidence / "items.json").write_text(json.dumps(original))
    # scored as a run given no --dataset, the lab's evidence is refused too
    no_sets = ScoreContext(task_id="search_qps", args=ARGS, confidence=0.95, hardware=None)
    with pytest.raises(ValueError) as error:
        SearchQpsProbe().score(EvidenceReader(evidence), no_sets)
    assert "items.json says the lab sets, but the run was given no gallery" in str(error.value)
