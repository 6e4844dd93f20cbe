"""The media `llm.modalities` makes itself, each with a question whose answer it knows.

- image: a 224 x 224 white PNG with k (1-7) filled circles of one colour, none touching
  ("How many circles are in this image?");
- video: `frames` (default 4) 160 x 160 PNG frames of a red square that moves 24 px per
  frame left, right, up or down ("In which direction does the red square move?"); also
  the same frames as one animated GIF for the `video_url` form;
- speech: "The number is <one to nine>." spoken by festival's `text2wave` (voice
  cmu_us_slt_arctic_hts) or `espeak-ng`, 16 kHz mono 16-bit WAV ("What number is spoken
  in this recording?"); or `tones`: k (1-6) beeps of 880 Hz, 0.15 s each, 0.25 s apart,
  made with numpy ("How many beeps are in this recording?");
- multilingual text: "What is <a> plus <b>?" with a and b (1-9) written as words of the
  language (en, zh, es, fr, de, ja), the answer in digits.
Every draw comes from numpy's PCG64 seeded by (seed, 16, kind, item).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from harness.errors import SutFailure

DIRECTIONS = ("left", "right", "up", "down")
_STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
NUMBER_WORDS = {
    "en": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "zh": ["一", "二", "三", "四", "五", "六", "七", "八", "九"],
    "es": ["uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"],
    "fr": ["un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"],
    "de": ["eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"],
    "ja": ["一", "二", "三", "四", "五", "六", "七", "八", "九"],
}
SUM_QUESTIONS = {
    "en": "What is {a} plus {b}? Answer with digits only.",
    "zh": "{a}加{b}等于多少？只用阿拉伯数字回答。",
    "es": "¿Cuánto es {a} más {b}? Responde solo con cifras.",
    "fr": "Combien font {a} plus {b} ? Réponds uniquement avec des chiffres.",
    "de": "Was ist {a} plus {b}? Antworte nur mit Ziffern.",
    "ja": "{a}たす{b}はいくつですか？算用数字だけで答えてください。",
}
COLOURS = [(220, 30, 30), (30, 90, 220), (20, 150, 60), (230, 140, 0), (130, 40, 170)]
SAMPLE_RATE = 16_000


def rng_for(seed: int, kind: int, item: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) % 2**32, 16, kind, item])


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue()


def circles(seed: int, item: int) -> tuple[bytes, int]:
    """(PNG bytes, the number of circles)."""
    rng = rng_for(seed, 1, item)
    count = int(rng.integers(1, 8))
    size = 224
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    colour = COLOURS[int(rng.integers(len(COLOURS)))]
    placed: list[tuple[float, float, float]] = []
    while len(placed) < count:
        r = float(rng.integers(12, 20))
        x, y = (float(v) for v in rng.uniform(r + 4, size - r - 4, size=2))
        if all((x - a) ** 2 + (y - b) ** 2 > (r + c + 8) ** 2 for a, b, c in placed):
            placed.append((x, y, r))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return _png(image), count


@dataclass(frozen=True)
class Clip:
    frames: list[bytes]  # PNG
    gif: bytes
    direction: str


def moving_square(seed: int, item: int, frames: int) -> Clip:
    rng = rng_for(seed, 2, item)
    direction = DIRECTIONS[int(rng.integers(4))]
    dx, dy = _STEP[direction]
    size, side, step = 160, 28, 24
    travel = step * (frames - 1)
    lo, hi = 4, size - side - 4
    x0 = float(rng.integers(lo, hi + 1)) if dx == 0 else (lo if dx > 0 else hi)
    y0 = float(rng.integers(lo, hi + 1)) if dy == 0 else (lo if dy > 0 else hi)
    if travel > hi - lo:
        raise ValueError(f"{frames} frames of {step} px do not fit in {size} px")
    images = []
    for k in range(frames):
        image = Image.new("RGB", (size, size), "white")
        x, y = x0 + dx * step * k, y0 + dy * step * k
        ImageDraw.Draw(image).rectangle((x, y, x + side - 1, y + side - 1), fill=(220, 30, 30))
        images.append(image)
    gif = io.BytesIO()
    images[0].save(gif, format="GIF", save_all=True, append_images=images[1:], duration=500, loop=0)
    return Clip([_png(i) for i in images], gif.getvalue(), direction)


def spoken_number(seed: int, item: int, source: str) -> tuple[bytes, int]:
    """(WAV bytes, the number spoken), by festival or espeak-ng (module doc)."""
    number = int(rng_for(seed, 3, item).integers(1, 10))
    word = NUMBER_WORDS["en"][number - 1]
    with tempfile.TemporaryDirectory(prefix="harness-d16-tts-") as tmp:
        out = Path(tmp) / "clip.wav"
        if source == "festival":
            argv = [_program("text2wave"), "-F", str(SAMPLE_RATE), "-o", str(out), "-eval",
                    "(voice_cmu_us_slt_arctic_hts)"]  # fmt: skip
            text = f"The number is {word}."
        else:
            argv = [
                _program("espeak-ng"),
                "-v",
                "en-us",
                "-w",
                str(out),
                "--",
                f"The number is {word}.",
            ]
            text = None
        done = subprocess.run(
            argv, input=text, capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0 or not out.is_file():
            raise SutFailure(f"{argv[0]} failed: {done.stderr.strip()[-300:]}")
        data = out.read_bytes()
    if source == "espeak-ng":
        data = _resampled(data)
    return data, number


def _program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SutFailure(
            f"{name} is not installed (Debian: festival festvox-us-slt-hts, or espeak-ng); "
            "or set speech_source: tones"
        )
    return found


def _resampled(data: bytes) -> bytes:
    """A mono 16-bit WAV at SAMPLE_RATE (linear interpolation) from another rate."""
    with wave.open(io.BytesIO(data)) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    samples = samples.reshape(-1, channels).mean(axis=1)
    if rate != SAMPLE_RATE and len(samples) > 1:
        t = np.arange(int(len(samples) * SAMPLE_RATE / rate)) / SAMPLE_RATE
        samples = np.interp(t, np.arange(len(samples)) / rate, samples)
    return wav_bytes(samples.astype("<i2"))


def wav_bytes(samples: np.ndarray) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype("<i2").tobytes())
    return out.getvalue()


def beeps(seed: int, item: int) -> tuple[bytes, int]:
    """(WAV bytes, the number of beeps)."""
    count = int(rng_for(seed, 4, item).integers(1, 7))
    on, off = int(0.15 * SAMPLE_RATE), int(0.25 * SAMPLE_RATE)
    t = np.arange(on) / SAMPLE_RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms edges, no clicks
    beep = 0.5 * 32767 * np.sin(2 * np.pi * 880.0 * t) * ramp
    silence = np.zeros(off)
    parts = [silence]
    for _ in range(count):
        parts += [beep, silence]
    return wav_bytes(np.concatenate(parts).round()), count


def sum_question(seed: int, language: str, item: int) -> tuple[str, int]:
    """(the question in `language`, a + b)."""
    a, b = (
        int(v)
        for v in rng_for(seed, 5, item * 64 + sorted(NUMBER_WORDS).index(language)).integers(
            1, 10, size=2
        )
    )
    words = NUMBER_WORDS[language]
    return SUM_QUESTIONS[language].format(a=words[a - 1], b=words[b - 1]), a + b
