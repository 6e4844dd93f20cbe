"""Pure scoring functions that several measurement families share: accuracy figures with
exact binomial bounds (`accuracy`), text error rates (`text`). No I/O and no probe imports,
so a probe file reads as collect + score and later directions (speech WER/CER, MT scores,
biometric threshold sweeps) add their modules here, each tested against its reference
library."""
