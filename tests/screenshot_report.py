"""Render a report's HTML to PNG with headless Chromium, to look at it as a person would.

Not a test (pytest collects test_*.py only); run it by hand:

    python tests/screenshot_report.py                       # fixture runs -> /tmp/tinyharden-report.png
    python tests/screenshot_report.py runs/x/report.html out.png [1280,3600]

The page is shot at 1280 px wide (a laptop screen): the table must fit or scroll in its box.

Needs the Debian package `chromium` (apt-get install -y chromium). Chromium is started
with networking features off and a throwaway profile; a self-contained report needs no
network anyway.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def fixture_report(folder: Path) -> Path:
    """Two fixture runs (one full, one metrics-only baseline) plus all published rows, as HTML."""
    from typer.testing import CliRunner

    from test_report import write_attack, write_export, write_metrics
    from tinyharden.cli.app import app

    full, plain = folder / "runs" / "stq-jr", folder / "runs" / "float"
    write_metrics(full, acc=0.95, epochs=12)
    write_export(full)
    write_attack(full, masking_flag=True)
    write_metrics(plain, acc=0.90, quant="float", defense="none", params=5322, epochs=12)
    write_export(plain, keras=90.0, tflite=88.5, flash=24080, arena=8816, params=5322, packed=21288)
    write_attack(plain, robust={"fgsm": [60, 30], "pgd": [50, 12]})
    out = folder / "report" / "report.html"
    r = CliRunner().invoke(app, ["report", str(full), str(plain), "--baseline", str(plain), "--references", "all",
                                 "--format", "html", "--out", str(out)])
    if r.exit_code != 0:
        raise SystemExit(r.output)
    return out


def screenshot(html: Path, png: Path, size: str = "1280,3600") -> Path:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium not found; install it with: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", f"--screenshot={png.resolve()}", f"--window-size={size}",
               html.resolve().as_uri()]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return png


def main(argv: list[str]) -> None:
    if argv:
        html = Path(argv[0])
    else:
        html = fixture_report(Path(tempfile.mkdtemp(prefix="tinyharden-report-")))
    png = Path(argv[1]) if len(argv) > 1 else Path(tempfile.gettempdir()) / "tinyharden-report.png"
    screenshot(html, png, *argv[2:3])
    print(f"{html} -> {png}")


if __name__ == "__main__":
    main(sys.argv[1:])
