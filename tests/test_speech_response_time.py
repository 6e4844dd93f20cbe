"""D08 response time: the streaming protocol's timing and pacing against a loopback server
whose delay is known, the body bytes it receives, the reference streaming server's real
transcript (jiwer), the whole-call definition through a real command SUT, and the
order-statistic bounds against scipy's binomial distribution."""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import jiwer
import pytest
from scipy import stats

from harness.evidence import EvidenceReader, EvidenceWriter
from harness.judge import judge
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.speech import streaming
from harness.probes.speech.response_time import (
    ResponseTimeArgs,
    ResponseTimeProbe,
    nearest_rank,
    quantile_bounds,
)
from harness.schema import Indicator, SutSpec

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
CLIP = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0880.wav"  # 2.99 s
CLIP_TEXT = "he was not an ill disposed young man"
INDICATOR = Indicator(
    id="response_time",
    title="Mean response time",
    metric="response_time.mean",
    op="<",
    target=2,
    unit="s",
    source="guide D08",
)


def pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes())


class _Delayed(BaseHTTPRequestHandler):
    """Reads the chunked body, notes when each chunk arrived, waits DELAY_S, answers."""

    protocol_version = "HTTP/1.1"
    DELAY_S: ClassVar[float] = 0.3
    seen: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        arrivals, body = [], b""
        while True:
            size = int(self.rfile.readline().strip(), 16)
            if size == 0:
                self.rfile.readline()
                break
            body += self.rfile.read(size)
            self.rfile.read(2)
            arrivals.append(time.perf_counter())
        _Delayed.seen.append({"headers": dict(self.headers), "body": body, "arrivals": arrivals})
        time.sleep(self.DELAY_S)
        answer = json.dumps({"output": "done"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def delayed_server() -> Any:
    _Delayed.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Delayed)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/asr"
    server.shutdown()
    server.server_close()


def run(
    args: ResponseTimeArgs,
    tmp: Path,
    sut: dict[str, Any] | None = None,
    datasets: dict[str, Path] | None = None,
) -> tuple[list[str], ScoreResult, Path]:
    root = tmp / "evidence"
    failures = ResponseTimeProbe().collect(
        CollectContext(
            task_id="rt",
            args=args,
            sut=SutSpec.model_validate(sut or {}),
            device="cpu",
            seed=0,
            quick=False,
            evidence=EvidenceWriter(root),
            datasets=datasets or {},
            sut_base_dir=tmp,
        )
    )
    result = ResponseTimeProbe().score(
        EvidenceReader(root), ScoreContext(task_id="rt", args=args, confidence=0.95, hardware=None)
    )
    return failures, result, root


# ------------------------------------------------------------------ the protocol


def test_latency_is_end_of_body_to_first_answer_byte(delayed_server: str) -> None:
    audio = bytes(range(256)) * 125  # 32000 bytes: one second of 16 kHz s16
    result = streaming.stream_utterance(delayed_server, audio, 100, False, 10.0)
    assert result.error is None and result.output == "done" and result.chunks == 10
    assert 0.3 <= result.latency_s < 0.55  # the server's 0.3 s, plus loopback overhead
    (seen,) = _Delayed.seen
    assert seen["body"] == audio  # every byte, in order
    assert seen["headers"]["Content-Type"] == streaming.CONTENT_TYPE
    assert seen["headers"]["Transfer-Encoding"] == "chunked"


def test_realtime_pace_sends_each_chunk_once_its_audio_is_captured(delayed_server: str) -> None:
    audio = b"\x01\x00" * 8000  # 0.5 s
    result = streaming.stream_utterance(delayed_server, audio, 100, True, 10.0)
    assert result.chunks == 5
    assert 0.5 <= result.send_s < 0.7
    arrivals = _Delayed.seen[0]["arrivals"]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(0.06 < g < 0.16 for g in gaps), gaps  # ~100 ms apart


def test_unreachable_and_failing_suts_are_per_utterance_errors(delayed_server: str) -> None:
    dead = streaming.stream_utterance("http://127.0.0.1:9/x", b"\0\0" * 100, 100, False, 2.0)
    assert dead.latency_s is None and dead.error and "unreachable" in dead.error


def test_reference_server_recognises_the_streamed_clip() -> None:
    with streaming.ReferenceStreamingServer() as server:
        result = streaming.stream_utterance(server.url, pcm(CLIP), 100, False, 60.0)
    assert result.error is None and result.output is not None
    assert jiwer.wer(CLIP_TEXT, result.output) <= 0.3, result.output
    assert result.latency_s is not None and result.latency_s > 0


# ------------------------------------------------------------------ the probe


def test_probe_streams_to_an_http_sut_and_scores_the_mean(
    tmp_path: Path, delayed_server: str
) -> None:
    listing = tmp_path / "utts"
    listing.mkdir()
    (listing / "a.wav").write_bytes(CLIP.read_bytes())
    args = ResponseTimeArgs(pace="fast", chunk_ms=200, min_utterances=2, resamples=200)
    failures, result, root = run(
        args, tmp_path, {"adapter": "http", "url": delayed_server}, {"utterances": listing}
    )
    assert failures == []
    timings = json.loads((root / "timings.json").read_text())
    m = {x.id: x for x in result.measurements}
    assert m["mean"].value == pytest.approx(timings[0]["latency_s"])
    assert 0.3 <= m["mean"].value < 0.55
    assert "streaming" in m["mean"].method and "200 ms chunks" in m["mean"].method
    assert m["mean"].ci.high is None  # 1 utterance, fewer than min_utterances
    assert "at least 2 utterances" in m["mean"].ci.need
    assert judge(INDICATOR, m["mean"], None, None).status == "INCONCLUSIVE"


def test_whole_call_definition_for_a_command_sut(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text("import sys, time\ntime.sleep(0.2)\nprint('ok ' + sys.argv[1])\n")
    listing = tmp_path / "u.jsonl"
    listing.write_text(
        "".join(json.dumps({"id": f"u{k}", "audio": str(CLIP)}) + "\n" for k in range(3))
    )
    sut = {"adapter": "command", "argv": [sys.executable, str(script), "{input}"]}
    args = ResponseTimeArgs(min_utterances=3, resamples=200)
    failures, result, _ = run(args, tmp_path, sut, {"utterances": listing})
    assert failures == []
    m = {x.id: x for x in result.measurements}
    assert "whole call" in m["mean"].method
    assert 0.2 <= m["mean"].value < 2.0
    assert m["mean"].ci.high is not None and m["mean"].ci.high >= m["mean"].value


# ------------------------------------------------------------------ hostile SUTs (review)


class _Early(BaseHTTPRequestHandler):
    """MODE "early": the status line and one body byte as soon as the request arrives,
    before the audio ends, the rest 1 s after the body; "json-prefix": after the body, the
    first bytes of a JSON answer at once and the rest 0.6 s later; "space": a blank line at
    once, the text 0.6 s later."""

    protocol_version = "HTTP/1.1"
    MODE: ClassVar[str] = "early"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send_head(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
        self.wfile.flush()

    def do_POST(self) -> None:
        if self.MODE == "early":
            self._send_head()
            self._chunk(b"{")
        try:
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                self.rfile.read(size + 2)
        except (OSError, ValueError):  # the harness hung up on an early answer
            return
        if self.MODE == "early":
            time.sleep(1.0)
            self._chunk(b'"output": "done"}')
        else:
            self._send_head()
            self._chunk(b'{"output": ' if self.MODE == "json-prefix" else b"\n  ")
            time.sleep(0.6)
            self._chunk(b'"done"}' if self.MODE == "json-prefix" else b"done")
        self._chunk(b"")


@pytest.fixture
def early_server() -> Any:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Early)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/asr"
    server.shutdown()
    server.server_close()


def test_bytes_before_the_end_of_speech_fail_the_utterance(early_server: str) -> None:
    """H5: one byte sent before the audio ends used to stop the clock at ~0."""
    _Early.MODE = "early"
    result = streaming.stream_utterance(early_server, b"\x01\x00" * 8000, 100, True, 10.0)
    assert result.latency_s is None
    assert result.error is not None and "before the end of speech" in result.error


@pytest.mark.parametrize("mode", ["json-prefix", "space"])
def test_latency_runs_to_the_answer_text_not_to_its_first_byte(
    early_server: str, mode: str
) -> None:
    """H5: the start of a JSON answer, or whitespace, at once and the text 0.6 s later:
    the figure is the text's arrival (complete_s: the last byte)."""
    _Early.MODE = mode
    result = streaming.stream_utterance(early_server, b"\x01\x00" * 3200, 100, False, 10.0)
    assert result.error is None and result.output == "done"
    assert result.latency_s is not None and result.latency_s >= 0.6
    assert result.complete_s is not None and result.complete_s >= result.latency_s


def test_an_answer_unrelated_to_the_speech_fails_at_the_timeout(tmp_path: Path) -> None:
    """H6/H12: a command SUT printing `ok` at once used to PASS; its answers are checked
    against the utterances' texts, each fails and counts at the timeout, and the figure
    FAILs (the failures count against it)."""
    script = tmp_path / "ok.py"
    script.write_text("print('ok')\n")
    listing = tmp_path / "u.jsonl"
    listing.write_text(
        "".join(
            json.dumps({"id": f"u{k}", "audio": str(CLIP), "text": CLIP_TEXT}) + "\n"
            for k in range(3)
        )
    )
    sut = {"adapter": "command", "argv": [sys.executable, str(script), "{input}"]}
    args = ResponseTimeArgs(min_utterances=2, resamples=200, timeout_s=5.0)
    _, result, root = run(args, tmp_path, sut, {"utterances": listing})
    assert result.measurements == []  # none answered what was said
    assert "does not match the speech" in result.unmeasured[0].reason
    # one right answer among wrong ones: the wrong ones count at the timeout, and FAIL
    script.write_text(
        f"import sys\nprint({CLIP_TEXT!r} if sys.argv[1].endswith('000000.wav') else 'ok')\n"
    )
    (tmp_path / "b").mkdir()
    _, result, root = run(args, tmp_path / "b", sut, {"utterances": listing})
    m = {x.id: x for x in result.measurements}["mean"]
    assert m.failures_count_against and "counted at the timeout" in m.invalid_reason
    assert "byte copies of shipped clips" in m.invalid_reason  # CLIP is a LibriVox clip
    assert m.value > 2 * 5.0 / 3  # two of three at 5 s
    assert judge(INDICATOR, m, None, None).status == "FAIL"
    # the list is kept byte for byte; an edited copy is refused
    assert (root / "input.jsonl").read_bytes() == listing.read_bytes()
    (root / "input.jsonl").write_text(listing.read_text().replace("young", "old"))
    with pytest.raises(ValueError, match="sha256"):
        ResponseTimeProbe().score(
            EvidenceReader(root),
            ScoreContext(task_id="rt", args=args, confidence=0.95, hardware=None),
        )


def test_a_streaming_record_with_other_chunks_or_pace_is_refused(
    tmp_path: Path, delayed_server: str
) -> None:
    """A9: sut.json claiming another chunk_ms or pace than the task's args is refused."""
    listing = tmp_path / "utts"
    listing.mkdir()
    (listing / "a.wav").write_bytes(CLIP.read_bytes())
    args = ResponseTimeArgs(pace="fast", chunk_ms=200, min_utterances=2, resamples=200)
    _, _, root = run(
        args, tmp_path, {"adapter": "http", "url": delayed_server}, {"utterances": listing}
    )
    facts = json.loads((root / "sut.json").read_text())
    for key, value in (("chunk_ms", 2000), ("pace", "realtime")):
        (root / "sut.json").write_text(json.dumps({**facts, key: value}))
        with pytest.raises(ValueError, match=key):
            ResponseTimeProbe().score(
                EvidenceReader(root),
                ScoreContext(task_id="rt", args=args, confidence=0.95, hardware=None),
            )


def test_dev_utterances_never_decide(tmp_path: Path) -> None:
    """H3/A3: the dev utterances (LibriVox clip and its transcript, pinned digests) give
    figures with an invalid_reason; a SUT answering the transcript is checked as right."""
    script = tmp_path / "say.py"
    first = sorted(LIBRIVOX.glob("*.wav"))[0]
    text = "and mister john dashwood had then leisure to consider how much there might be "
    text += "prudently in his power to do for them"
    assert first.stem.endswith("0870")
    script.write_text(f"print({text!r})\n")
    sut = {"adapter": "command", "argv": [sys.executable, str(script), "{input}"]}
    args = ResponseTimeArgs(librivox_clips=1, festival_sentences=0, min_utterances=2)
    failures, result, root = run(args, tmp_path, sut)
    assert failures == []
    held = json.loads((root / "utterances.json").read_text())
    assert held["dev_sources"]["status"] == "shipped dev set: verified"
    assert held["items"][0]["text"] == text
    m = {x.id: x for x in result.measurements}["mean"]
    assert m.details["failed"] == 0
    assert "shipped public dev set" in m.invalid_reason and not m.failures_count_against


# ------------------------------------------------------------------ statistics


def test_quantile_bounds_against_the_binomial_by_hand() -> None:
    xs = [float(k) for k in range(1, 30)]  # 29 samples
    low, high, need = quantile_bounds(xs, 0.9, 0.95)
    assert need == 29  # 1 - 0.9^29 = 0.953 >= 0.95, 1 - 0.9^28 = 0.948 < 0.95
    assert 1 - 0.9**29 >= 0.95 > 1 - 0.9**28
    assert high == 29.0  # only the largest of 29 bounds p90 from above
    # the lower bound: the largest k with P(Binomial(29, 0.9) >= k) >= 0.95
    k = max(j for j in range(1, 30) if stats.binom.sf(j - 1, 29, 0.9) >= 0.95)
    assert low == xs[k - 1]
    assert quantile_bounds(xs[:28], 0.9, 0.95)[1] is None
    assert quantile_bounds(xs, 0.99, 0.95)[2] == 299


def test_nearest_rank_by_hand() -> None:
    xs = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert nearest_rank(xs, 0.5) == 3.0
    assert nearest_rank(xs, 0.9) == 5.0
    assert nearest_rank(xs, 0.2) == 1.0
