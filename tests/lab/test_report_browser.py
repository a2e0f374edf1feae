"""report.html renders in a real browser: the table and every image show. Keeps a screenshot.

Needs Debian's chromium (`make test` installs it). Outside CI a missing browser skips the
test; under CI (CI=true) it fails, so the check is never silently lost there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ARTIFACTS = Path(os.environ.get("DESCEND_ARTIFACTS", Path(__file__).resolve().parents[2]
                                / ".artifacts"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => i.complete ? i.naturalWidth : -1);
  const alts = [...document.images].map(i => i.alt);
  const rows = document.querySelectorAll('#comparison tbody tr').length;
  const tables = document.querySelectorAll('table').length;
  const pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify({imgs, alts, rows, tables});
  document.body.appendChild(pre);
});
</script>"""


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; `make test` installs Debian's chromium")
        pytest.skip("chromium is not installed (run `make test`, which installs it)")
    return path


def _probe(browser: str, report: Path, tmp_path: Path) -> dict:
    page = tmp_path / "probed.html"
    page.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout)
    assert match, dom.stderr[-2000:]
    return json.loads(match.group(1).replace("&quot;", '"'))


def _screenshot(browser: str, report: Path, tmp_path: Path, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / name
    subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=1200,1600", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 50_000


def test_report_renders_table_and_images_in_chromium(small_run, tmp_path):
    browser = _chromium()
    out, cmp = small_run
    probe = _probe(browser, out / "report.html", tmp_path)
    assert probe["rows"] == len(cmp.rows) == 2
    assert len(probe["imgs"]) >= 5 and all(w >= 400 for w in probe["imgs"]), probe
    # the plots this report must carry, CPU time and the lr used among them
    for title in ("Training loss against steps", "Training loss against training time "
                  "(CPU seconds)", "Validation accuracy", "Learning rate used"):
        assert title in probe["alts"], (title, probe["alts"])
    _screenshot(browser, out / "report.html", tmp_path, "report-screenshot.png")


def test_suite_report_renders_profiles_curves_and_tables(tiny_suite, tmp_path):
    browser = _chromium()
    out, result = tiny_suite
    probe = _probe(browser, out / "report.html", tmp_path)
    assert probe["alts"] == ["Performance profiles", "Validation curves"], probe
    assert all(w >= 750 for w in probe["imgs"]), probe
    assert probe["rows"] == len(result.result.optimizers) == 2
    assert probe["tables"] == 1 + len(result.result.workloads)
    _screenshot(browser, out / "report.html", tmp_path, "suite-report-screenshot.png")
