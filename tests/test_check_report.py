"""The demo run's Snakemake report, opened in a real browser (Debian's headless chromium).

One demo run, one `snakemake --report`; the browser then clicks through every page of the
demo dataset as a reader would, and the figures it shows are compared with the run's own
records (commit.json, validation.json).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile

import pytest
from conftest import commit_record, run_workflow, validation, workflow_command

pytestmark = pytest.mark.e2e

DEMO = {
    "datasets": {"demo": {"demo": True, "sources": ["resources/demo/*.nc"], "concat_dim": "time"}}
}
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Headless and offline: nothing a test machine lacks (GPU, sandbox, network) is asked for.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DECODE_ALL_IMAGES = """async () => {
  const out = {};
  for (const [path, r] of Object.entries(results)) {
    if (!r.mime_type.startsWith("image/")) continue;
    const img = new Image();
    img.src = r.data_uri;
    try { await img.decode(); out[path] = [img.naturalWidth, img.naturalHeight]; }
    catch (e) { out[path] = String(e); }
  }
  return out;
}"""

SHOWN_IMAGES = """[...document.images].map(i =>
  [(i.src.match(/filename=([^;]+)/) || [null, i.src.slice(0, 30)])[1], i.naturalWidth])"""


def _browser() -> str:
    found = os.environ.get("CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    if found:
        return found
    if os.environ.get("NC2ICE_REQUIRE_BROWSER"):
        pytest.fail("no chromium found: apt-get install chromium (or set CHROMIUM=/path)")
    pytest.skip("no chromium on this machine (apt-get install chromium); CI requires it")


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("report")
    run_workflow(workdir, DEMO)
    for name in ("report.html", "report.zip"):
        cmd = workflow_command(workdir, DEMO, "--report", str(workdir / name))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir


@pytest.fixture(scope="module")
def page(demo_report):
    from playwright.sync_api import sync_playwright

    executable = _browser()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.problems = []
        page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
        page.on("pageerror", lambda e: page.problems.append(str(e)))
        page.goto((demo_report / "report.html").as_uri())
        page.get_by_text("Results", exact=True).first.click()
        yield page
        browser.close()


def _show(page, row: str):
    """Click a result's eye in the demo category; the frame or image it shows."""
    page.locator("tr", has_text=row).first.locator("a[iconname=eye]").click()
    page.wait_for_timeout(300)


def _frame_with(page, selector: str):
    for frame in page.frames:
        if frame.locator(selector).count():
            return frame
    raise AssertionError(f"no page in the report shows {selector}")


def test_the_summary_shows_what_the_records_say(demo_report, page):
    commit, checked = commit_record(demo_report, "demo"), validation(demo_report, "demo")
    _show(page, "summary")
    frame = _frame_with(page, "[data-figure]")
    shown = {
        cell.get_attribute("data-figure"): cell.inner_text()
        for cell in frame.locator("[data-figure]").all()
    }
    report = commit["report"]
    expected = {
        "snapshot": commit["snapshot"],
        "tag": commit["tag"],
        "files": len(commit["files"]),
        "skipped files": len(commit["skipped"]),
        "variables": report["arrays"],
        "chunk references": report["chunk_references"],
        "bytes copied into the store": report["copied_bytes"],
        "validation": "passed" if checked["passed"] else "FAILED",
        "files compared (new or changed)": len(checked["files_compared"]),
        "files compared again (a sample)": len(checked["files_rechecked"]),
        "files taken on trust": checked["trusted"]["files"],
        "validation jobs": checked["parts"],
        "variables compared": len(checked["variables_checked"]),
        "chunks compared": checked["chunks_checked"],
        "values compared": checked["values_compared"],
        "mismatches": len(checked["mismatches"]),
        "local files": len(commit["files"]),  # the demo's files are all on this machine
    }
    for key, value in expected.items():
        want = f"{value:,}" if isinstance(value, int) else value
        assert shown.get(key) == want, (key, shown.get(key), want)
    assert shown["validation"] == "passed"
    assert int(shown["bytes referenced as stored"].replace(",", "")) > 0
    # the code that opens the store without nc2ice, as commit.json records it
    assert frame.locator("#read-with").inner_text().strip() == commit["read_with"].strip()


def test_every_page_opens_and_every_image_decodes(page):
    decoded = page.evaluate(DECODE_ALL_IMAGES)
    assert "results/demo/report/coverage.png" in decoded
    assert "results/demo/report/quicklook/tas.png" in decoded
    for path, size in decoded.items():
        assert isinstance(size, list) and min(size) > 100, (path, size)
    for row, name in (("coverage", "coverage.png"), ("quicklook", "tas.png")):
        _show(page, row)
        shown = dict(page.evaluate(SHOWN_IMAGES))
        assert all(shown.values()), (row, shown)  # every image on the page decoded
        assert shown.get(name, 0) > 100, (row, shown)
    _show(page, "what the commit did")
    tables = _frame_with(page, "h2").locator("body").inner_text()
    assert "Files partly copied into the store (1)" in tables
    assert "tas_Amon_demo_200401-200403" in tables and "common grid" in tables
    assert not page.problems, page.problems


def test_a_zip_report_for_big_runs_holds_the_same_pages(demo_report):
    names = zipfile.ZipFile(demo_report / "report.zip").namelist()
    for page in ("summary.html", "tables.html", "coverage.png", "tas.png"):
        assert any(n.endswith(page) for n in names), (page, names[:20])
