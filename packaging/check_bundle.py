"""Open the desktop bundle's window on a virtual screen, screenshot it, quit it, and time
its start-up against the same window started from a Python environment.

    python3 packaging/check_bundle.py                                  # dist/maskwork/maskwork, 5 starts
    python3 packaging/check_bundle.py --compare .venv/bin/maskwork -o /tmp/bundle.png

Start-up is the time from launching the program to its main window being mapped on the
screen (``xdotool search --onlyvisible --name '^maskwork'``); the starts alternate between
the bundle and ``--compare`` so that both see the same load. Each start gets empty config,
cache and data folders, so no autosave prompt or remembered state differs between them.
After the window appears, the first start of the bundle is screenshotted and every start
is asked to quit with Ctrl+Q (xdotool); one that is still running after 10 s is killed and
reported. Exits with 1 when the bundle's window never appears or does not quit.

Needs Debian's xvfb, xdotool and imagemagick (``import``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "dist" / "maskwork" / "maskwork"
#: The title every main window starts with ("maskwork - untitled").
TITLE_PATTERN = "^maskwork"
WINDOW_TIMEOUT_S = 60
QUIT_TIMEOUT_S = 10
SCREEN = "1600x1000x24"


def start_xvfb() -> tuple[subprocess.Popen, str]:
    """A virtual screen on the first free display number."""
    number = 90
    while Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
        number += 1
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", SCREEN, "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    display = f":{number}"
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("Xvfb did not start")
        time.sleep(0.05)
    return server, display


def visible_window(display: str) -> str | None:
    """The id of a mapped window whose title starts with maskwork, or None."""
    found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", TITLE_PATTERN], capture_output=True,
                           text=True, env={**os.environ, "DISPLAY": display}, check=False)  # fmt: skip
    ids = found.stdout.split()
    return ids[0] if ids else None


def start_once(program: str, display: str, screenshot: Path | None) -> tuple[float | None, str]:
    """Launch ``program``, wait for its window, optionally screenshot, quit it.

    Returns (seconds until the window was mapped or None, how it ended).
    """
    with tempfile.TemporaryDirectory() as home:
        environment = {
            **os.environ,
            "DISPLAY": display,
            "QT_QPA_PLATFORM": "xcb",
            "XDG_CONFIG_HOME": f"{home}/config",
            "XDG_CACHE_HOME": f"{home}/cache",
            "XDG_DATA_HOME": f"{home}/data",
        }
        started = time.monotonic()
        process = subprocess.Popen([program], env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        window = None
        while window is None and time.monotonic() - started < WINDOW_TIMEOUT_S and process.poll() is None:
            window = visible_window(display)
            if window is None:
                time.sleep(0.02)
        elapsed = time.monotonic() - started if window else None
        if window and screenshot is not None:
            time.sleep(2)  # let the first paint finish
            subprocess.run(["import", "-window", "root", str(screenshot)], env=environment, check=True)
        if window:
            # Without a window manager: give the window the focus, then type through XTEST
            # (Qt ignores synthetic key events sent to a window).
            subprocess.run(["xdotool", "windowfocus", "--sync", window, "key", "ctrl+q"], env=environment,
                           capture_output=True, timeout=10, check=False)  # fmt: skip
        try:
            process.wait(QUIT_TIMEOUT_S)
            ending = f"quit (exit code {process.returncode})"
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            ending = "killed: did not quit"
        if window is None:
            ending += f"; no window: {process.stderr.read().decode(errors='replace')[-500:]}"
        process.stderr.close()
        return elapsed, ending


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=str(BUNDLE), help="the bundle's program (default dist/maskwork/maskwork)")
    parser.add_argument("--compare", help="another maskwork program to time alike, e.g. .venv/bin/maskwork")
    parser.add_argument("--repeat", type=int, default=5, help="starts of each program")
    parser.add_argument("-o", "--screenshot", type=Path, default=Path("bundle-window.png"))
    args = parser.parse_args(argv)

    programs = {"bundle": args.bundle, **({"venv": args.compare} if args.compare else {})}
    times: dict[str, list[float]] = {name: [] for name in programs}
    failures = 0
    server, display = start_xvfb()
    try:
        for attempt in range(args.repeat):
            for name, program in programs.items():
                shot = args.screenshot if (name == "bundle" and attempt == 0) else None
                elapsed, ending = start_once(program, display, shot)
                shown = f"{elapsed:.2f} s" if elapsed is not None else "never"
                print(f"{name} start {attempt + 1}: window after {shown}, {ending}", flush=True)
                if elapsed is None or not ending.startswith("quit"):
                    failures += name == "bundle"
                else:
                    times[name].append(elapsed)
    finally:
        server.terminate()
        server.wait()
    for name, values in times.items():
        if values:
            print(f"{name}: median {statistics.median(values):.2f} s, min {min(values):.2f} s, max {max(values):.2f} s "
                  f"over {len(values)} starts")  # fmt: skip
    if len(times) == 2 and all(times.values()):
        ratio = statistics.median(times["bundle"]) / statistics.median(times["venv"])
        print(f"bundle / venv start-up (medians): {ratio:.2f}")
    print(f"screenshot: {args.screenshot}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
