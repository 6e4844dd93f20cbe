"""D16 task probes (harness.probes.llm_tasks): downstream scores, modalities, services and
the fine-tuning workflow, against real HTTP servers started and stopped here: the reference
torch LLM server (harness.refengines.llm_server) and scripted OpenAI-compatible servers
whose answers the test sets, or computes itself from the media the harness sent
(scipy.ndimage connected components for circles, red-pixel centroids for the moving square,
pocketsphinx for the spoken number, the test's own number-word tables). Expected figures
are worked by hand or come from the reference libraries (scipy's beta quantiles for
Clopper-Pearson, sacrebleu's corpus BLEU, jiwer's CER)."""

from __future__ import annotations

import base64
import io
import json
import re
import sys
import threading
import wave
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest
import sacrebleu
from PIL import Image
from probehelpers import by_id, collect_and_score, cp_lower_pct, cp_upper_pct
from safetensors.numpy import save_file
from scipy import ndimage

from harness.errors import BadInput
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.llm_tasks import (
    DownstreamArgs,
    DownstreamProbe,
    FinetuneArgs,
    FinetuneProbe,
    ModalitiesArgs,
    ModalitiesProbe,
    ServicesArgs,
    ServicesProbe,
    media,
)
from harness.probes.llm_tasks.answers import (
    choice_index,
    code_of,
    exact_form,
    first_integer,
    first_word,
)
from harness.schema import SutSpec

Answer = Callable[[str, dict[str, Any]], tuple[int, Any]]


# ------------------------------------------------------------------ scripted servers


class Scripted(ThreadingHTTPServer):
    """An OpenAI-compatible server: `answer(path, body)` gives (status, text) for a POST,
    wrapped as a chat or completions answer (a dict is sent as the raw JSON body);
    `files` answers GET /files and /files/<id>/content. Every POST body is kept."""

    daemon_threads = True

    def __init__(self, answer: Answer, files: dict[str, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer
        self.files = files
        self.bodies: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Scripted

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, status: int, value: Any) -> None:
        data = value.encode() if isinstance(value, str) else json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        files = self.server.files
        if self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": "scripted"}]})
        elif files is not None and self.path == "/files":
            self._send(200, {"object": "list", "data": [{"id": k} for k in files]})
        elif files is not None and self.path.startswith("/files/"):
            key = self.path.split("/")[2]
            self._send(200, files[key]) if key in files else self._send(404, {"error": "no"})
        else:
            self._send(404, {"error": {"message": "no route"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        status, text = self.server.answer(self.path, body)
        if isinstance(text, dict) or status != 200:
            self._send(status, text if isinstance(text, dict) else {"error": {"message": text}})
        elif self.path.endswith("/chat/completions"):
            message = {"role": "assistant", "content": text}
            self._send(
                200, {"object": "chat.completion", "choices": [{"index": 0, "message": message}]}
            )
        else:
            self._send(200, {"object": "text_completion", "choices": [{"index": 0, "text": text}]})


def prompt_of(body: dict[str, Any]) -> Any:
    return body["messages"][0]["content"] if "messages" in body else body["prompt"]


def http(url: str, **extra: Any) -> SutSpec:
    return SutSpec(adapter="http", url=url, **extra)


def run_probe(
    probe: Any,
    args: Any,
    root: Path,
    sut: SutSpec,
    datasets: dict[str, Path] | None = None,
) -> tuple[list[str], ScoreResult]:
    """collect, then score with the SUT block and --dataset names as the spine passes them."""
    ctx = CollectContext(
        "t", args, sut, "cpu", 0, False, EvidenceWriter(root), datasets=datasets or {}
    )
    failures = probe.collect(ctx)
    score = ScoreContext("t", args, 0.95, None, sut, False, None, frozenset(datasets or {}))
    return failures, probe.score(EvidenceReader(root), score)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


# ------------------------------------------------------------------ answer rules


def test_answer_rules_by_hand() -> None:
    assert choice_index("B", 4) == 1
    assert choice_index("  (c). ", 4) == 2
    assert choice_index("Answer: A", 4) == 0
    assert choice_index("The answer is [D]", 4) == 3
    for text in ("B and C", "I think B", "", "BB", "E"):
        assert isinstance(choice_index(text, 4), str), text
    assert first_integer("The answer is 12, not 13.") == 12
    assert first_integer("１２") == 12
    assert first_integer("twelve") is None
    assert first_word("Up, then left", media.DIRECTIONS) == "up"
    assert first_word("upward", media.DIRECTIONS) is None
    assert exact_form(" Paris. ") == exact_form("paris") and exact_form(42) == "42"
    assert (
        code_of("Here:\n```python\ndef f():\n    return 1\n```\nDone") == "def f():\n    return 1\n"
    )
    assert code_of("def f(): pass") == "def f(): pass"


# ------------------------------------------------------------------ llm.downstream

MC = [  # (prompt, choices, answer, what the server says)
    ("Q1?", ["x", "y", "z"], 1, "B"),
    ("Q2?", ["x", "y", "z"], 2, "  (c). "),
    ("Q3?", ["x", "y"], 0, "Answer: A"),
    ("Q4?", ["x", "y", "z"], "B", "A"),  # wrong
    ("Q5?", ["x", "y", "z"], 0, "B and C"),  # unparsed
    ("Q6?", ["x", "y", "z"], 0, "HTTP500"),  # a server error
]
QA = [
    ("What is 6 x 7?", "42", "42."),
    ("Capital of France?", "Paris", "paris"),
    ("3+4?", 7, "seven"),
]
MT = [
    ("t1", "the cat sat on the mat", "the cat sat on a mat"),
    ("t2", "he reads a book every night", "he reads books every night"),
    ("t3", "we walked to the station", "we walked to the station"),
]
ZH = [("z1", "今天天气很好。", "今天天气不好"), ("z2", "我们明天去北京。", "我们去北京")]


def downstream_answer(path: str, body: dict[str, Any]) -> tuple[int, Any]:
    prompt = prompt_of(body)
    first = prompt.split("\n")[0]
    table = {p: said for p, _c, _a, said in MC}
    table.update({p: said for p, _a, said in QA})
    table.update({f"Say: {r}": h for _i, r, h in MT})
    table.update({f"说：{r}": h for _i, r, h in ZH})
    said = table[first if first in table else prompt]
    return (500, "boom") if said == "HTTP500" else (200, said)


def downstream_sets(tmp: Path) -> dict[str, Path]:
    mc = [
        {"id": f"m{k}", "prompt": p, "choices": c, "answer": a}
        for k, (p, c, a, _s) in enumerate(MC)
    ]
    qa = [{"id": k, "prompt": p, "answer": a} for k, (p, a, _s) in enumerate(QA)]
    mt = [{"id": i, "prompt": f"Say: {r}", "reference": r, "metric": "bleu"} for i, r, _h in MT]
    zh = [{"id": i, "prompt": f"说：{r}", "reference": r, "metric": "cer"} for i, r, _h in ZH]
    return {
        "downstream_mc": write_jsonl(tmp / "mc.jsonl", mc),
        "downstream_qa": write_jsonl(tmp / "qa.jsonl", qa),
        "downstream_mt": write_jsonl(tmp / "mt.jsonl", mt),
        "downstream_zh": write_jsonl(tmp / "zh.jsonl", zh),
    }


def test_downstream_scores_by_hand(tmp_path: Path) -> None:
    sets = downstream_sets(tmp_path)
    args = DownstreamArgs(resamples=200)
    with Scripted(downstream_answer) as server:
        failures, result = run_probe(
            DownstreamProbe(), args, tmp_path / "ev", http(server.url), sets
        )
        bodies = list(server.bodies)
    got = by_id(result)
    assert failures and "HTTP 500" in failures[0]
    # the documented multiple-choice prompt
    assert (
        prompt_of(bodies[0])
        == "Q1?\nA. x\nB. y\nC. z\nAnswer with the letter of the correct choice only."
    )
    assert bodies[0]["temperature"] == 0.0 and bodies[0]["model"] == "scripted"
    mc = got["mc_accuracy"]  # right: Q1, Q2, Q3; wrong Q4; unparsed Q5; failed Q6
    assert mc.value == pytest.approx(50.0) and mc.n == 6
    assert mc.ci.low == pytest.approx(cp_lower_pct(3, 6)) and mc.ci.high == pytest.approx(
        cp_upper_pct(3, 6)
    )
    reasons = {x["id"]: x["reason"] for x in mc.details["items"]}
    assert reasons["m3"].startswith("wrong") and reasons["m4"].startswith("unparsed")
    assert "HTTP 500" in reasons["m5"] and not mc.invalid_reason
    qa = got["qa_accuracy"]  # "42." = "42", "paris" = "Paris", "seven" != 7
    assert qa.value == pytest.approx(200 / 3) and qa.ci.low == pytest.approx(cp_lower_pct(2, 3))
    bleu = sacrebleu.corpus_bleu([h for _i, _r, h in MT], [[r for _i, r, _h in MT]]).score
    assert got["mt_bleu"].value == pytest.approx(bleu) and got["mt_bleu"].unit == "points"
    assert got["mt_bleu"].ci.low <= bleu <= got["mt_bleu"].ci.high
    # the zh-v1 normaliser drops 。: 1 substitution of 6 characters + 2 deletions of 7
    assert got["zh_cer"].value == pytest.approx(100 * 3 / 13)
    refs = [r.rstrip("。") for _i, r, _h in ZH]
    assert got["zh_cer"].value == pytest.approx(100 * jiwer.cer(refs, [h for _i, _r, h in ZH]))
    missing = {u.id for u in result.unmeasured}
    assert {"mc_bleu", "mt_accuracy", "dev_accuracy"} <= missing


def test_downstream_rescore_and_tamper(tmp_path: Path) -> None:
    sets = downstream_sets(tmp_path)
    args = DownstreamArgs(resamples=50, sets=["downstream_qa"])
    root = tmp_path / "ev"
    with Scripted(downstream_answer) as server:
        _f, first = run_probe(DownstreamProbe(), args, root, http(server.url), sets)
    ctx = ScoreContext("t", args, 0.95, None, http(server.url), False, None, frozenset(sets))
    again = DownstreamProbe().score(EvidenceReader(root), ctx)
    assert [m.model_dump() for m in again.measurements] == [
        m.model_dump() for m in first.measurements
    ]
    lines = (root / "requests.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["body"]["prompt"] = "something else"
    (root / "requests.jsonl").write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    tampered = by_id(DownstreamProbe().score(EvidenceReader(root), ctx))["qa_accuracy"]
    assert "do not match" in tampered.invalid_reason
    # scored without the --dataset name in the run's header, the set is not the lab's
    ctx_dev = ScoreContext("t", args, 0.95, None, http(server.url), False, None, frozenset())
    assert (
        "dev set"
        in by_id(DownstreamProbe().score(EvidenceReader(root), ctx_dev))[
            "qa_accuracy"
        ].invalid_reason
    )


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("{not json", "line 2"),
        ('{"id": "b", "prompt": "p", "answer": "x", "colour": 1}', "line 2: colour"),
        ('{"id": "b", "prompt": "p", "choices": ["x", "y"], "answer": 2}', "line 2: answer"),
        ('{"id": "b", "prompt": "", "answer": "x"}', "line 2: prompt"),
        ('{"id": "a", "prompt": "p", "answer": "x"}', "line 2: id"),
        ('{"id": "b", "prompt": "p", "metric": "bleu"}', "line 2: reference"),
    ],
)
def test_downstream_bad_lines(tmp_path: Path, line: str, field: str) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text('{"id": "a", "prompt": "p", "answer": "x"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(BadInput) as caught:
        DownstreamProbe().check_datasets(DownstreamArgs(), {"downstream_mc": path})
    assert caught.value.source == str(path) and caught.value.field == field
    assert "\n" not in str(caught.value)


def test_downstream_reference_dev_set(tmp_path: Path) -> None:
    failures, result = collect_and_score(
        DownstreamProbe(), DownstreamArgs(dev_per_kind=2, resamples=50), tmp_path / "ev"
    )
    got = by_id(result)
    assert failures == []
    assert set(got) == {"dev_accuracy", "dev_bleu", "dev_cer"}
    assert got["dev_accuracy"].n == 6  # 2 addition, 2 word-order, 2 product items
    for m in got.values():
        assert "dev set" in m.invalid_reason and "reference LLM server" in m.invalid_reason
    assert {u.id for u in result.unmeasured} >= {"mc_accuracy", "zh_cer"}


# ------------------------------------------------------------------ llm.modalities

WORDS = {  # the test's own tables: number words 1-9
    "en": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "es": ["uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"],
    "zh": list("一二三四五六七八九"),
}


def _image(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def _centroid(frame: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero((frame[..., 0] > 150) & (frame[..., 1] < 100))
    return np.array([xs.mean(), ys.mean()])


class Solver:
    """Answers the harness's media questions by computing them; `off` adds one to every
    number (and turns every direction around): right in form, wrong in fact."""

    def __init__(self, folder: Path, off: bool = False) -> None:
        self.folder = folder
        self.off = off
        self.lock = threading.Lock()
        self.decoder: Any = None

    def _spoken(self, data: str) -> int:
        from pocketsphinx import Decoder

        with wave.open(io.BytesIO(base64.b64decode(data))) as w:
            assert w.getframerate() == 16000 and w.getnchannels() == 1
            raw = w.readframes(w.getnframes())
        with self.lock:
            if self.decoder is None:  # real recognition, restricted to the clip's form
                grammar = Path(self.folder) / "numbers.gram"
                grammar.write_text(
                    "#JSGF V1.0;\ngrammar numbers;\npublic <s> = the number is ( "
                    + " | ".join(WORDS["en"])
                    + " );\n"
                )
                self.decoder = Decoder(samprate=16000, jsgf=str(grammar))
            self.decoder.start_utt()
            self.decoder.process_raw(raw, full_utt=True)
            self.decoder.end_utt()
            hyp = self.decoder.hyp().hypstr.split()
        return next(WORDS["en"].index(w) + 1 for w in hyp if w in WORDS["en"])

    def __call__(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        content = prompt_of(body)
        if isinstance(content, str):  # a sum of two number words
            found = [
                n + 1
                for words in WORDS.values()
                for n, w in enumerate(words)
                for _ in re.finditer(rf"(?<![a-z]){w}(?![a-z])", content)
            ]
            return 200, str(sum(found) + self.off)
        parts = {p["type"]: p for p in content}
        images = [_image(p["image_url"]["url"]) for p in content if p["type"] == "image_url"]
        if "input_audio" in parts:
            spoken = self._spoken(parts["input_audio"]["input_audio"]["data"])
            return 200, f"The number is {spoken + self.off}."
        if len(images) == 1:
            _labels, count = ndimage.label(images[0].min(axis=2) < 200)
            return 200, str(count + self.off)
        dx, dy = _centroid(images[-1]) - _centroid(images[0])
        direction = (
            ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up")
        )
        turned = {"left": "right", "right": "left", "up": "down", "down": "up"}
        return 200, f"It moves {turned[direction] if self.off else direction}."


def test_modalities_counted_when_answered_right(tmp_path: Path) -> None:
    args = ModalitiesArgs(items_per_modality=2)
    with Scripted(Solver(tmp_path)) as server:
        failures, result = run_probe(ModalitiesProbe(), args, tmp_path / "ev", http(server.url))
        bodies = list(server.bodies)
    got = by_id(result)
    assert failures == []
    assert got["modalities"].value == 4 and got["languages"].value == 3, got["modalities"].details
    assert not got["modalities"].invalid_reason and got["modalities"].exact
    # the documented request forms, media made by the harness
    speech = next(
        b
        for b in bodies
        if isinstance(prompt_of(b), list) and prompt_of(b)[1]["type"] == "input_audio"
    )
    assert prompt_of(speech)[1]["input_audio"]["format"] == "wav"
    video = [b for b in bodies if isinstance(prompt_of(b), list) and len(prompt_of(b)) == 5]
    assert len(video) == 2 and all(p["type"] == "image_url" for p in prompt_of(video[0])[1:])
    ev = tmp_path / "ev"
    items = json.loads((ev / "items.json").read_text())["items"]
    assert sum(1 for i in items if i["modality"] == "text") == 6  # 2 per language
    assert (ev / "media" / "image-0.png").is_file() and (ev / "media" / "speech-0.wav").is_file()


def test_modalities_wrong_answers_not_counted(tmp_path: Path) -> None:
    with Scripted(Solver(tmp_path, off=True)) as server:
        _f, result = run_probe(
            ModalitiesProbe(),
            ModalitiesArgs(items_per_modality=1),
            tmp_path / "ev",
            http(server.url),
        )
    got = by_id(result)
    assert got["modalities"].value == 0 and got["languages"].value == 0
    rows = [r for m in got["modalities"].details["modalities"].values() for r in m["rows"]]
    assert rows and all(r["reason"].startswith("wrong") for r in rows)


def test_modalities_reference_server(tmp_path: Path) -> None:
    args = ModalitiesArgs(items_per_modality=1, speech_source="tones", video_form="video_url")
    failures, result = collect_and_score(ModalitiesProbe(), args, tmp_path / "ev")
    got = by_id(result)
    assert got["modalities"].value == 0
    assert "reference LLM server" in got["modalities"].invalid_reason
    per = got["modalities"].details["modalities"]
    for modality in ("image", "speech", "video"):  # it takes string contents only
        assert "HTTP 400" in per[modality]["rows"][0]["reason"]
    assert failures == []  # a 4xx refusal of a medium is the server's answer, not a crash


def test_beeps_counted_independently() -> None:
    for item in range(4):
        data, count = media.beeps(0, item)
        with wave.open(io.BytesIO(data)) as w:
            assert w.getframerate() == 16000
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(float)
        loud = np.abs(samples) > 1000  # 0.15 s bursts, 0.25 s apart; bridge the zero crossings
        _labels, bursts = ndimage.label(ndimage.binary_closing(loud, iterations=40))
        assert bursts == count


# ------------------------------------------------------------------ llm.services

CODE = {
    "digit_sum": "def digit_sum(n):\n    return sum(int(c) for c in str(n))\n",
    "reverse_words": "def reverse_words(s):\n    return ' '.join(s.split()[::-1])\n",
    "is_prime": "def is_prime(n):\n"
    "    return n > 1 and all(n % k for k in range(2, int(n ** 0.5) + 1))\n",
}


def services_answer(wrong_prime: bool) -> Answer:
    def answer(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        prompt = prompt_of(body)
        for name, code in CODE.items():
            if f"`{name}(" in prompt:
                if wrong_prime and name == "is_prime":
                    code = "def is_prime(n):\n    return True\n"
                return 200, f"Sure:\n```python\n{code}```"
        return 200, "ready"

    return answer


def test_services_all_four(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    save_file(
        {
            "model.embed.weight": np.zeros((10, 4), np.float32),
            "model.norm.bias": np.zeros(4, np.float32),
        },
        str(ckpt / "model.safetensors"),
    )
    files = {"ds1": '{"text": "a"}\n{"text": "b"}\n'}
    with Scripted(services_answer(False), files) as server:
        sut = http(server.url, data_url="/files", checkpoint=str(ckpt))
        failures, result = run_probe(ServicesProbe(), ServicesArgs(), tmp_path / "ev", sut)
    got = by_id(result)["services"]
    per = got.details["services"]
    assert failures == []
    assert got.value == 4, {k: v["reason"] for k, v in per.items()}
    assert per["model"]["parameters_total"] == 10 * 4 + 4
    assert per["data"]["records"] == 2 and per["data"]["kind"] == "jsonl"
    assert all(t["passed"] for t in per["code"]["tasks"])
    assert not got.invalid_reason


def test_services_wrong_code_and_no_data(tmp_path: Path) -> None:
    with Scripted(services_answer(True), {}) as server:
        sut = http(server.url, data_url="/files")
        _f, result = run_probe(ServicesProbe(), ServicesArgs(), tmp_path / "ev", sut)
    per = by_id(result)["services"].details["services"]
    assert by_id(result)["services"].value == 1  # the API only
    assert per["api"]["counted"]
    assert "is_prime(1,) gave" in per["code"]["tasks"][2]["reason"]
    assert "no datasets" in per["data"]["reason"] and "no checkpoint" in per["model"]["reason"]


def test_services_reference_server(tmp_path: Path) -> None:
    failures, result = collect_and_score(
        ServicesProbe(), ServicesArgs(code_max_tokens=32), tmp_path / "ev"
    )
    got = by_id(result)["services"]
    assert failures == []
    assert got.details["counted"] == ["api"] and "reference LLM server" in got.invalid_reason


# ------------------------------------------------------------------ llm.finetune

PLATFORM = """import json, sys, time
task = json.load(open(sys.argv[1]))
time.sleep({sleep})
answer = {{"predictions": [{{"id": x["id"], "label": "a"}} for x in task["inputs"]]}}
answer["predictions"].append({{"id": "nobody", "label": "b"}})
if {state}:
    answer["manual_settings"] = ["learning_rate", "epochs"]
print(json.dumps(answer))
"""


def finetune_set(tmp: Path) -> Path:
    rows = [
        {"id": f"tr{k}", "text": f"word{k % 2}", "label": "ab"[k % 2], "split": "train"}
        for k in range(10)
    ]
    rows += [
        {"id": f"te{k}", "text": "w", "label": "a" if k < 6 else "b", "split": "test"}
        for k in range(10)
    ]
    return write_jsonl(tmp / "ft.jsonl", rows)


def platform(tmp: Path, sleep: float, state: bool) -> list[str]:
    script = tmp / f"platform_{state}.py"
    script.write_text(PLATFORM.format(sleep=sleep, state=state), encoding="utf-8")
    return [sys.executable, str(script), "{input}"]


def test_finetune_scored_by_hand(tmp_path: Path) -> None:
    data = {"finetune": finetune_set(tmp_path)}
    sut = SutSpec(
        adapter="command",
        argv=platform(tmp_path, 0, True),
        manual_settings=["epochs", {"name": "batch_size"}],
    )
    failures, result = run_probe(FinetuneProbe(), FinetuneArgs(), tmp_path / "ev", sut, data)
    got = by_id(result)
    assert failures == []
    acc = got["finetune_accuracy"]  # "a" for all: 6 of the 10 held-out inputs
    assert acc.value == pytest.approx(60.0) and acc.n == 10
    assert acc.ci.low == pytest.approx(cp_lower_pct(6, 10)) and acc.ci.high == pytest.approx(
        cp_upper_pct(6, 10)
    )
    assert acc.details["predictions_for_unknown_ids"] == 1 and not acc.invalid_reason
    # {epochs, batch_size} declared and {learning_rate, epochs} stated: 3 distinct names
    assert got["manual_settings"].value == 3
    assert got["manual_settings"].details["names"] == ["batch_size", "epochs", "learning_rate"]
    task = json.loads((tmp_path / "ev" / "task.json").read_text())["task"]
    assert all(set(x) == {"id", "text"} for x in task["inputs"])  # no labels handed over


def test_finetune_unstated_settings_and_over_budget(tmp_path: Path) -> None:
    data = {"finetune": finetune_set(tmp_path)}
    sut = SutSpec(adapter="command", argv=platform(tmp_path, 1.2, False))
    _f, result = run_probe(
        FinetuneProbe(), FinetuneArgs(time_budget_s=1.0), tmp_path / "ev", sut, data
    )
    got = by_id(result)
    assert "over the 1 s time budget" in got["finetune_accuracy"].invalid_reason
    assert (
        got["manual_settings"].value == 0
        and "does not state" in got["manual_settings"].invalid_reason
    )


def test_finetune_reference_platform(tmp_path: Path) -> None:
    failures, result = collect_and_score(
        FinetuneProbe(), FinetuneArgs(train_rows=200, test_rows=100), tmp_path / "ev"
    )
    got = by_id(result)
    assert failures == []
    held = json.loads((tmp_path / "ev" / "heldout.json").read_text())["labels"]
    answer = json.loads(json.loads((tmp_path / "ev" / "answer.json").read_text())["output"])
    right = sum(held[p["id"]] == p["label"] for p in answer["predictions"])
    assert got["finetune_accuracy"].value == pytest.approx(right) and right >= 90
    assert got["manual_settings"].value == 0
    assert "reference fine-tuning platform" in got["finetune_accuracy"].invalid_reason


def test_finetune_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "ft.jsonl"
    path.write_text(
        '{"id": 1, "text": "t", "label": "a", "split": "train"}\n'
        '{"id": 2, "text": "t", "label": "a", "split": "dev"}\n'
    )
    with pytest.raises(BadInput) as caught:
        FinetuneProbe().check_datasets(FinetuneArgs(), {"finetune": path})
    assert caught.value.field == "line 2: split" and caught.value.source == str(path)
