"""Reference engines the harness runs itself, offline, for dry runs on its dev sets and for
scoring outputs back (ASR of synthesised speech): pocketsphinx, Festival, espeak-ng,
microWakeWord, Apertium. Sessions here follow `harness.adapters.protocol`; nothing here
imports a probe."""
