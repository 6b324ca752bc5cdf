"""A headless-browser smoke test of the Dagster UI against `payment-platform up`: Debian's Chromium driven by
Playwright (`executable_path`, nothing downloaded). It opens the lineage, an asset's overview (schema,
owner), a Checks tab and a run page, fails on any error the page shows (a JavaScript exception, an error panel), and
saves a screenshot of each page (folder: $UI_SCREENSHOTS_DIR, default a temporary one; UI_SCREENSHOTS_DIR=
docs/screenshots refreshes the pictures of docs/ui.md).

Chromium missing is a failure with the command that installs it, never a skip."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from payment_platform_tests.test_ui.conftest import DagsterUI
from payment_platform_tests.waiting import wait_until

# the module's first test also pays for `up` and a batch ingested: minutes on a loaded 2-core machine
pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1500)]

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
INSTALL = ("Chromium is needed for the Dagster UI smoke test: as root run `apt-get update && apt-get install -y "
           "chromium` (Debian/Ubuntu; .ci/run does this), or set CHROMIUM_PATH to a Chrome/Chromium binary.")
ERROR_TEXTS = ("Unexpected GraphQL error", "Something went wrong", "PythonError", "Application error",
               "Error loading")
VIEWPORT = {"width": 1280, "height": 760}


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or next(filter(None, map(shutil.which, CHROMIUM_CANDIDATES)), None)
    if not path or not Path(path).exists():
        pytest.fail(INSTALL)
    return path


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the `playwright` Python package is missing: `make install` installs the test extra "
                    "(playwright is pinned there)")
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def screenshots() -> Path:
    folder = Path(os.environ.get("UI_SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="payment-platform-ui-shots-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def loaded_ui(dagster_ui: DagsterUI) -> dict:
    """A batch materialized and ingested, its range checks evaluated: the pages below show real data."""
    dagster_ui.query("mutation { setNuxSeen }")  # what "Skip" on the first visit's welcome dialog sends
    run_id = dagster_ui.launched_run("__ASSET_JOB", assets=[["generation", "payment_batch"]], run_config={
        "ops": {"generation__payment_batch": {"config": {"count": 200, "seed": 21}}}})
    assert dagster_ui.wait_for_run(run_id)["status"] == "SUCCESS"
    wait_until(lambda: (executions := dagster_ui.check_executions(["hbase", "payments"], "ingested_ranges_consistency"))
               and executions[0]["status"] == "SUCCEEDED", 300, "the sensor ingesting the batch and checking its range",
               every_s=2)
    return {"batch_run": run_id}


class PageErrors:
    """JavaScript exceptions and error panels seen on a page."""

    def __init__(self, page):
        self.page, self.exceptions = page, []
        page.on("pageerror", lambda error: self.exceptions.append(str(error)))

    def assert_none(self, where: str) -> None:
        text = self.page.inner_text("body")
        shown = [marker for marker in ERROR_TEXTS if marker in text]
        assert not self.exceptions and not shown, f"{where}: exceptions {self.exceptions}, errors shown {shown}"


def open_page(browser, url: str, wait_for_text: str, timeout_ms: int = 60_000):
    page = browser.new_page(viewport=VIEWPORT)
    errors = PageErrors(page)
    page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
    page.get_by_text(wait_for_text, exact=False).first.wait_for(timeout=timeout_ms)
    page.wait_for_load_state("networkidle", timeout=timeout_ms)
    return page, errors


def shows(browser, url: str, first_text: str, texts: tuple, screenshot: Path, what: str) -> None:
    """Open `url`, wait for each of `texts` (a text is visible; a (text, state) pair waits for that state), save a
    screenshot, and fail on any error the page showed."""
    page, errors = open_page(browser, url, first_text)
    for text in texts:
        text, state = (text, "visible") if isinstance(text, str) else text
        page.get_by_text(text, exact=False).first.wait_for(state=state, timeout=30_000)
    page.screenshot(path=str(screenshot))
    errors.assert_none(what)
    page.close()


def test_lineage_shows_the_flow(browser, dagster_ui, loaded_ui, screenshots):
    shows(browser, f"{dagster_ui.url}/assets/hbase/payments?view=lineage&lineageDepth=3", "payment_batch",
          ("Materialize all", "ingestion", "summaries"), screenshots / "lineage.png", "lineage")


def test_an_asset_page_shows_its_schema_and_latest_figures(browser, dagster_ui, loaded_ui, screenshots):
    # (dagster-webserver 1.13 has no Plots toggle on the Events tab; the Overview shows the schema and figures)
    shows(browser, f"{dagster_ui.url}/assets/postgres/payments?view=overview", "Columns",
          ("hbase_row_key", "kafka_offset", "payments-data"), screenshots / "asset.png", "asset overview")


def test_a_checks_tab_shows_every_verdict(browser, dagster_ui, loaded_ui, screenshots):
    # long names are middle-truncated on screen; the full name is in the page (attached, not visible)
    names = ("cross_store_consistency", "range_no_duplicate_payment_ids", "amounts_valid_for_rail")
    shows(browser, f"{dagster_ui.url}/assets/hbase/payments?view=checks", "ingested_ranges_consistency",
          tuple((name, "attached") for name in names) + ("Execute all",), screenshots / "checks.png", "checks tab")


def test_a_run_page_shows_the_ingestion_run(browser, dagster_ui, loaded_ui, screenshots):
    def landed(run_id: str) -> bool:
        events = dagster_ui.query("""query($id: ID!) { logsForRun(runId: $id, limit: 5000) { ... on EventConnection {
            events { __typename } } } }""", {"id": run_id})["logsForRun"]["events"]
        return any(e["__typename"] == "MaterializationEvent" for e in events)

    def landed_leases() -> list[dict]:  # a lease that landed batches (not one that found none)
        found = dagster_ui.query("""{ runsOrError(filter: {pipelineName: "ingest_partition_lease_job",
            statuses: [SUCCESS]}, limit: 20) { ... on Runs { results { runId } } } }""")["runsOrError"]["results"]
        return [r for r in found if landed(r["runId"])]

    # a lease ends a few seconds after its partition went quiet
    runs = wait_until(landed_leases, 60, "a successful ingestion run that landed payments", every_s=1)
    shows(browser, f"{dagster_ui.url}/runs/{runs[0]['runId']}", "ingest_partition_lease",
          ("ingest_partition_lease_job", "RUN_SUCCESS"),
          screenshots / "run.png", "run page")
