#!/usr/bin/env python3
"""An example D14 detector driven as a command: the harness's reference detector
(harness.refengines.inspection: difference from a golden reference, threshold, connected
components, type by shape), packaged the way an applicant packages theirs.

    detector.py IMAGE            print the JSON answer for one image and exit
    detector.py --serve          one answer line per input line on stdin (the harness's
                                 `command` adapter in batch mode): an image path, or the
                                 few-shot training request {"fewshot_train": [...]}

A `.npy` path is a height map (mm; the inspect3d task): the harness's reference height-map
detector answers it (harness.refengines.inspection3d: robust surface fit, residual
threshold, connected components, dent / bump / scratch, depth_mm / height_mm).

The golden reference: `--reference PNG` (the lab's defect-free part), else the median of
seeded defect-free images of the harness's dev part (`--part brick`, the part of the D14 dev
set). A few-shot request replaces it with the median of its defect-free examples.
"""

from __future__ import annotations

import argparse
import sys

from harness.refengines.inspection import (
    PARTS,
    DetectorSession,
    ReferenceDetector,
    load_gray,
    part_detector,
)
from harness.refengines.inspection3d import HeightMapDetector, HeightMapSession


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", help="one image to inspect")
    parser.add_argument("--serve", action="store_true", help="answer stdin line by line")
    parser.add_argument("--reference", help="the golden (defect-free) image")
    parser.add_argument("--part", default="brick", choices=sorted(PARTS))
    args = parser.parse_args()
    if args.reference:
        detector = ReferenceDetector(load_gray(args.reference))
    else:
        detector = part_detector(args.part)
    session = DetectorSession(detector, {})
    maps = HeightMapSession(HeightMapDetector(), {})

    def answer(text: str) -> str:
        return maps.answer(text) if text.lower().endswith(".npy") else session.answer(text)

    if not args.serve:
        if not args.image:
            parser.error("give an IMAGE or --serve")
        print(answer(args.image))
        return 0
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        try:
            print(answer(text), flush=True)
        except Exception as error:  # one bad input: an answer the harness counts as failed
            print(f"error: {type(error).__name__}: {error}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
