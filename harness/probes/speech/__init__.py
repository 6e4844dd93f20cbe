"""D08 speech interaction: recognition (CER/WER), wake words, intents and arbitration,
synthesis ratings and intelligibility, response time."""

from harness.probes.speech import asr, labelled, mos, response_time, tts, wake

__all__ = ["asr", "labelled", "mos", "response_time", "tts", "wake"]
