"""A job's state on PBS Pro, as Snakemake's cluster-generic executor asks for it.

``nc2ice pbs-status <jobid>`` prints ``running``, ``success`` or ``failed`` (and, on
failure, why on stderr), from ``qstat -x -f``, which also reports jobs that have finished.
Without a status command a job PBS kills (walltime, memory) would look like it runs for ever.
"""

from __future__ import annotations

import subprocess
import sys

# PBS Pro's negative exit statuses that mean the job was killed for a limit.
KILLED = {
    -24: "for using more CPUs than it asked for",
    -25: "for using more CPU time than it asked for",
    -26: "for exceeding its virtual memory",
    -27: "for exceeding its memory (mem)",
    -28: "for exceeding its CPU time",
    -29: "at its walltime",
}
WAITING_OR_RUNNING = set("QHWTSRBEUM")


def parse(text: str) -> dict[str, str]:
    """The ``key = value`` lines of ``qstat -f`` (continued lines joined)."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if " = " in line and line.startswith("    ") and not line.startswith("\t"):
            key, _, value = line.strip().partition(" = ")
            fields[key] = value
        elif key and line.startswith("\t"):
            fields[key] += line.strip()
    return fields


def status(fields: dict[str, str]) -> tuple[str, str]:
    """("running" | "success" | "failed", why)."""
    state = fields.get("job_state", "")
    if state in WAITING_OR_RUNNING:
        return "running", ""
    if state not in ("F", "X"):
        return "running", f"unknown job_state {state!r}"
    comment = fields.get("comment", "")
    if not fields.get("Exit_status"):  # deleted (or never started) before it could run
        return "failed", f"finished without running{f': {comment}' if comment else ''}"
    code = int(fields["Exit_status"])
    if code == 0:
        return "success", ""
    if code in KILLED:
        why = f"killed {KILLED[code]}"
    elif code > 256:
        why = f"killed by signal {code - 256}"
        if "walltime" in comment:
            why = "killed at its walltime"
        elif "mem" in comment:
            why = "killed for exceeding its memory"
    else:
        why = f"exit status {code}"
    used = fields.get("resources_used.walltime")
    asked = fields.get("Resource_List.walltime")
    detail = f" (walltime {used} of {asked})" if used and asked else ""
    return "failed", f"{why}{detail}{f': {comment}' if comment else ''}"


def main(jobid: str) -> None:
    try:
        proc = subprocess.run(["qstat", "-x", "-f", jobid], capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit("nc2ice: qstat is not on PATH: the PBS profile runs on a PBS login node")
    if proc.returncode != 0:
        if "Unknown Job Id" in proc.stderr or "Unknown Job" in proc.stderr:
            print(f"nc2ice: PBS does not know job {jobid} (any more)", file=sys.stderr)
            print("failed")
            return
        # PBS busy or down for a moment: say running, and ask again next time.
        print(f"nc2ice: qstat failed for {jobid}: {proc.stderr.strip()}", file=sys.stderr)
        print("running")
        return
    state, why = status(parse(proc.stdout))
    if why:
        print(f"nc2ice: PBS job {jobid}: {why}", file=sys.stderr)
    print(state)
