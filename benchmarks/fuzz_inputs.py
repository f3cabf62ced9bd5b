"""Long fuzz run of the image readers and ``maskwork run`` (issue 15, item 7).

    .venv/bin/python benchmarks/fuzz_inputs.py [--cases 12000] [--seed 1015] [--every 1000]

Generates ``--cases`` files with the seeded corpus of ``tests/fuzz_corpus.py`` (valid
images of every readable format, odd dtypes and channel counts, multi-page files, and
truncated, garbage, byte-flipped, header-lying, complex and damaged ones) and checks each
exactly as ``tests/test_fuzz_inputs.py`` does: read it, then run ``maskwork run`` on it
in-process (in a forked child) with the real stderr file descriptor captured. Unlike the
test it goes on after a failure and counts:

* contract violations: an assertion of the test failed (an exit code other than 0 or 2,
  more than one stderr line, a valid file refused, a file that must be refused read);
* tracebacks: any other exception out of the reader or ``main()``;
* crashes: a native library killing the process (the cases run in forked children of
  ``--every`` cases each; after a crash the rest of the chunk goes on in a new child).

It prints the children's resident memory every ``--every`` cases, the peak, the cases
that raised a child's peak by more than 100 MiB, the seconds taken and the outcome
counts, then the first violations, every crash and the first tracebacks. The exit
status is 1 when anything was counted.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz_corpus import Case, corpus  # noqa: E402
from test_fuzz_inputs import ROUTES, check_case  # noqa: E402

from maskwork import cli  # noqa: E402


def run_capturing_stderr(argv: list[str], capture) -> tuple[int, str]:
    """``maskwork`` with `argv` in this process, file descriptor 2 sent to `capture`."""
    capture.seek(0)
    capture.truncate()
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(capture.fileno(), 2)
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse's own exit
        code = stop.code
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
    capture.seek(0)
    return code, capture.read().decode("utf-8", "replace")


def peak_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory so far of this process (or of the largest waited-for child), MiB."""
    return resource.getrusage(who).ru_maxrss / 1024


def resident_mib() -> float:
    """The process's resident memory now, in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def check_cases(cases: list[tuple[int, Case]], folder: Path, report) -> None:
    """Check `cases` (index, case), writing one JSON line per case to `report`.

    Runs in a child process; each line is written before the next case starts, so a
    crash loses nothing but the crashing case, which the parent then names.
    """
    with tempfile.TemporaryFile() as capture:
        run = lambda argv: run_capturing_stderr(argv, capture)  # noqa: E731
        for index, case in cases:
            outcome: dict = {"index": index}
            peak_before = peak_mib()
            try:
                check_case(case, ROUTES[index % len(ROUTES)], folder, run)
            except AssertionError as failure:
                outcome["violation"] = str(failure).splitlines()[0]
            except Exception:
                outcome["traceback"] = traceback.format_exc()
            if peak_mib() - peak_before > 100:
                outcome["peak_step"] = f"peak {peak_before:.0f} -> {peak_mib():.0f} MiB"
            outcome["rss"] = resident_mib()
            for leftover in folder.iterdir():
                leftover.unlink()
            report.write(json.dumps(outcome) + "\n")
            report.flush()


def check_in_child(cases: list[tuple[int, Case]], folder: Path) -> tuple[list[dict], int]:
    """Check `cases` in a forked child; return its outcomes and the signal that killed it (0)."""
    with tempfile.NamedTemporaryFile("w+") as report:
        pid = os.fork()
        if pid == 0:
            try:
                check_cases(cases, folder, report)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        report.seek(0)
        outcomes = [json.loads(line) for line in report if line.strip()]
    return outcomes, os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=12_000, help="number of generated inputs")
    parser.add_argument("--seed", type=int, default=1015, help="corpus seed (the test uses 15)")
    parser.add_argument("--every", type=int, default=1000, help="cases per child process and table row")
    args = parser.parse_args()

    counts: collections.Counter[str] = collections.Counter()
    findings: dict[str, list[str]] = {"violation": [], "traceback": [], "crash": [], "peak_step": []}
    generated = corpus(args.seed, args.cases)
    start = time.perf_counter()
    print(f"{'cases':>7} {'seconds':>8} {'RSS MiB':>8}")
    with tempfile.TemporaryDirectory() as folder:
        done = 0
        while chunk := list(itertools.islice(generated, args.every)):
            names = {done + offset: case for offset, case in enumerate(chunk)}
            pending = list(names.items())
            while pending:
                outcomes, signal_number = check_in_child(pending, Path(folder))
                for outcome in outcomes:
                    case = names[outcome["index"]]
                    for kind in ("violation", "traceback", "peak_step"):
                        if kind in outcome:
                            findings[kind].append(f"{case.name} ({len(case.data):,} bytes): {outcome[kind]}")
                pending = pending[len(outcomes):]
                if signal_number:
                    # The first case without an outcome killed the child; go on after it.
                    findings["crash"].append(f"{pending[0][1].name}: killed by signal {signal_number}")
                    pending = pending[1:]
            counts.update(case.expect for case in chunk)
            done += len(chunk)
            rss = outcomes[-1]["rss"] if outcomes else float("nan")
            print(f"{done:>7} {time.perf_counter() - start:>8.1f} {rss:>8.1f}", flush=True)

    print(f"inputs: {sum(counts.values())} ({', '.join(f'{n} {kind}' for kind, n in sorted(counts.items()))})")
    print(f"seconds: {time.perf_counter() - start:.1f}; peak RSS of a child: {peak_mib(resource.RUSAGE_CHILDREN):.1f} MiB")
    for line in findings["peak_step"]:
        print(f"peak raised by {line}")
    print(
        f"contract violations: {len(findings['violation'])}; tracebacks: {len(findings['traceback'])}; "
        f"crashes: {len(findings['crash'])}"
    )
    for line in findings["violation"][:20] + findings["crash"] + findings["traceback"][:5]:
        print(line)
    return 1 if findings["violation"] or findings["traceback"] or findings["crash"] else 0


if __name__ == "__main__":
    sys.exit(main())
