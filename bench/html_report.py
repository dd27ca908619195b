"""HTML report in a real browser: a run with a failing cell, its report opened in headless Chromium.

The run: two bundled cases (``mlp``, and a copy of it named ``mlp<img src=x onerror=alert(1)>`` to prove
escaping) on ``cpu`` and on ``cpu-fp16-tight``, a user profile that extends ``cpu-fp16`` with a float32
tolerance of rtol 1e-6 / atol 1e-7 (fp16 weights miss it, so its cells FAIL with saved outputs) and a p95
budget, so the latency plot has a budget line. The report is written with ``harness.report.html.write_html``,
then Chromium (Debian's ``chromium``) loads it from a file with no network and takes a screenshot.

Checks, each printed:
- the console check can fail: a probe page with an uncaught ReferenceError is caught by the same log reading;
- Chromium exits 0 and logs no console message, uncaught error or Content-Security-Policy refusal (the page
  has no script; a name that escaped escaping would show up here as a refused load or an alert);
- the report holds every section and the plots (inline SVG images) and no raw hostile markup;
- the screenshot shows the verdict colours (FAIL red and PASS green pixels) and plot lines, so the plots
  rendered rather than showing broken-image icons.

    python bench/html_report.py [--out DIR] [--chromium PATH]

Exit 0 when every check holds, 1 when one fails, 2 when Chromium is not installed (apt-get install chromium).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

HOSTILE = "mlp<img src=x onerror=alert(1)>"
TIGHT_PROFILE = """name = "cpu-fp16-tight"
extends = "cpu-fp16"
description = "cpu-fp16 judged at an fp32-like tolerance: fails on purpose (bench/html_report.py)"

[tolerance]
why = "bench: a tolerance fp16 weights cannot meet, so the report has failing cells to plot"

[tolerance.dtype.float32]
rtol = 1e-6
atol = 1e-7

[budgets]
p95_ms = 0.05
"""
CONSOLE_PATTERNS = re.compile(r"CONSOLE|Uncaught|Content Security Policy|Refused to|Failed to load", re.IGNORECASE)
FAIL_RGB, PASS_RGB = (0xC6, 0x28, 0x28), (0x2E, 0x7D, 0x32)
SECTIONS = ("<h2>Matrix</h2>", "<h2>Failing cells</h2>", "<h2>Latency</h2>", "<h2>Memory</h2>", "<h2>Placement</h2>")


def make_run(work: Path) -> tuple[object, Path]:
    """Run the two cases on cpu and cpu-fp16-tight; returns (record, record folder)."""
    from harness.api import MatrixOptions, run_matrix
    root, profiles = work / "cases", work / "profiles"
    profiles.mkdir(parents=True)
    (profiles / "cpu-fp16-tight.toml").write_text(TIGHT_PROFILE, encoding="utf-8")
    for name in ("mlp", HOSTILE):
        shutil.copytree(REPO / "reference_outputs" / "mlp", root / name)
    options = MatrixOptions(out=work / "results", root=root, profile_dirs=[profiles], time_cap_s=0.3)
    record = run_matrix([], ["cpu", "cpu-fp16-tight"], options)
    return record, record.location.parent


def screenshot(chromium: str, page: Path, png: Path) -> tuple[int, str]:
    """Chromium's exit code and its log (stderr, where --enable-logging puts console messages)."""
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
               "--enable-logging=stderr", "--v=0", "--window-size=1400,3200", "--virtual-time-budget=5000",
               f"--screenshot={png}", page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, done.stdout + done.stderr


def console_check_works(chromium: str, work: Path) -> bool:
    """The console check can fail: a page with an uncaught error must show up in Chromium's log as we read it."""
    probe = work / "probe.html"
    probe.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>", encoding="utf-8")
    _, log = screenshot(chromium, probe, work / "probe.png")
    return any(CONSOLE_PATTERNS.search(line) and "undefinedFunction" in line for line in log.splitlines())


def colour_pixels(png: Path, rgb: tuple[int, int, int], slack: int = 12) -> int:
    """Pixels within ``slack`` of ``rgb`` in each channel."""
    import numpy as np
    from PIL import Image
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    return int((np.abs(pixels - np.array(rgb, dtype=np.int16)) <= slack).all(axis=-1).sum())


def check_html(text: str) -> dict[str, bool]:
    return {"every section": all(s in text for s in SECTIONS),
            "plots embedded (>= 5 SVG images)": text.count('src="data:image/svg+xml;base64,') >= 5,
            "no raw hostile markup": "<img src=x" not in text and "onerror=alert(1)>" not in text,
            "hostile name shown escaped": "mlp&lt;img src=x onerror=alert(1)&gt;" in text,
            "no script, no network": "<script" not in text and "http://" not in text.replace(
                "http://www.w3.org", "") and "https://" not in text}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="keep the run, report and screenshot here (default: a temp dir)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = parser.parse_args()
    if not args.chromium:
        print("html_report: chromium is not installed (apt-get install -y chromium); nothing was checked")
        return 2
    from harness.report.html import write_html
    work = args.out or Path(tempfile.mkdtemp(prefix="html-report-"))
    record, folder = make_run(work)
    page = write_html([(record, folder)], work / "report.html")
    png = work / "report.png"
    code, log = screenshot(args.chromium, page, png)
    text = page.read_text(encoding="utf-8")
    console = [line for line in log.splitlines() if CONSOLE_PATTERNS.search(line)]
    verdicts = {f"{c.case}|{c.profile}": c.verdict for c in record.cells}
    checks = {"run has a failing cell": "FAIL" in verdicts.values(), "chromium exit 0": code == 0,
              "console check catches an uncaught error (probe page)": console_check_works(args.chromium, work),
              "no console errors": not console, "screenshot written": png.is_file(), **check_html(text)}
    if png.is_file():
        red, green = colour_pixels(png, FAIL_RGB), colour_pixels(png, PASS_RGB)
        checks["FAIL red visible (> 2000 px)"] = red > 2000
        checks["PASS green visible (> 2000 px)"] = green > 2000
    summary = {"verdicts": verdicts, "html": str(page), "html_bytes": len(text), "screenshot": str(png),
               "console_lines": console[:10], "checks": checks}
    if png.is_file():
        summary["pixels"] = {"fail_red": red, "pass_green": green}
    print(json.dumps(summary, indent=1))
    failed = [name for name, ok in checks.items() if not ok]
    print("html_report: " + ("all checks hold" if not failed else f"FAILED: {', '.join(failed)}"))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
