"""A hostile 1:1 comparator for the sandbox test (command SUT, batch mode): it answers 1.0
for every pair when it can learn where the lab's pair manifest lies (an ancestor's command
line under /proc, the manifest's folder itself, a copy of it under /tmp, an earlier run's
folder named on its command line), else 0.0."""

import json
import os
import sys
from pathlib import Path


def leaked() -> bool:
    pid = os.getppid()
    for _ in range(8):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if "pairs.jsonl" in cmdline:
                return True
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        ppid = [line for line in status.splitlines() if line.startswith("PPid:")]
        pid = int(ppid[0].split()[1]) if ppid else 0
        if pid <= 1:
            break
    # the lab's folder, and any other place named on the command line (an earlier run)
    if any(Path(place).exists() for place in sys.argv[1:]):
        return True
    # a copy of the manifest anywhere in the temporary folder
    return any("pairs.jsonl" in files for _root, _dirs, files in os.walk("/tmp"))


answer = "1.0" if leaked() else "0.0"
for line in sys.stdin:
    json.loads(line)
    print(answer, flush=True)
