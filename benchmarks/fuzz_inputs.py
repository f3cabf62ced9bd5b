"""Long fuzz run of the image readers and ``maskwork run`` (issue 15, item 7).

    .venv/bin/python benchmarks/fuzz_inputs.py [--cases 12000] [--seed 1015] [--every 1000]

Generates ``--cases`` files with the seeded corpus of ``tests/fuzz_corpus.py`` (valid
images of every readable format, odd dtypes and channel counts, multi-page files, and
truncated, garbage, byte-flipped, header-lying, complex and damaged ones) and checks each
exactly as ``tests/test_fuzz_inputs.py`` does: read it, then run ``maskwork run`` on it in
this process with the real stderr file descriptor captured. Unlike the test it goes on
after a failure and counts:

* contract violations: an assertion of the test failed (an exit code other than 0 or 2,
  more than one stderr line, a valid file refused, a file that must be refused read);
* tracebacks: any other exception out of the reader or ``main()``.

It prints the process's resident memory every ``--every`` cases, the peak, the cases
that raised the peak by more than 100 MiB (what a legitimately large image costs), the
seconds taken and the outcome counts, then the first violations and tracebacks. The exit status
is 1 when anything was counted.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz_corpus import corpus  # noqa: E402
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


def peak_mib() -> float:
    """The process's peak resident memory so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resident_mib() -> float:
    """The process's resident memory now, in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=12_000, help="number of generated inputs")
    parser.add_argument("--seed", type=int, default=1015, help="corpus seed (the test uses 15)")
    parser.add_argument("--every", type=int, default=1000, help="print memory every N cases")
    args = parser.parse_args()

    counts: collections.Counter[str] = collections.Counter()
    violations: list[str] = []
    tracebacks: list[str] = []
    peak_steps: list[str] = []
    start = time.perf_counter()
    print(f"{'cases':>7} {'seconds':>8} {'RSS MiB':>8}")
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryFile() as capture:
        run = lambda argv: run_capturing_stderr(argv, capture)  # noqa: E731
        for index, case in enumerate(corpus(args.seed, args.cases)):
            counts[case.expect] += 1
            peak_before = peak_mib()
            try:
                check_case(case, ROUTES[index % len(ROUTES)], Path(folder), run)
            except AssertionError as failure:
                violations.append(f"{case.name}: {str(failure).splitlines()[0]}")
            except Exception:
                tracebacks.append(f"{case.name}:\n{traceback.format_exc()}")
            if peak_mib() - peak_before > 100:
                peak_steps.append(f"{case.name} ({len(case.data):,} bytes): peak {peak_before:.0f} -> {peak_mib():.0f} MiB")
            for leftover in Path(folder).iterdir():
                leftover.unlink()
            if (index + 1) % args.every == 0:
                print(f"{index + 1:>7} {time.perf_counter() - start:>8.1f} {resident_mib():>8.1f}", flush=True)

    print(f"inputs: {sum(counts.values())} ({', '.join(f'{n} {kind}' for kind, n in sorted(counts.items()))})")
    print(f"seconds: {time.perf_counter() - start:.1f}; peak RSS: {peak_mib():.1f} MiB")
    for line in peak_steps:
        print(f"peak raised by {line}")
    print(f"contract violations: {len(violations)}; tracebacks: {len(tracebacks)}")
    for line in violations[:20] + tracebacks[:5]:
        print(line)
    return 1 if violations or tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
