"""The HTML report of a real small sweep, opened in headless Chromium: every plot renders, every table is there."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from conftest import snakemake

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Category -> the report items in it (their "name" label) and what each shows.
EXPECTED = {
    "Comparison": {
        "configurations over seeds": "table",
        "best configuration": "config file",
        "learning curves": "figure",
        "test accuracy per sweep value": "figure",
        "confusion matrix of the best configuration": "figure",
        "current pass against its baseline": "table",
        "each configuration before and after": "figure",
    },
    "Runs": {"every run": "table", "runs left out": "table"},
    "Resources": {"asked for and used, per run": "table", "time and throughput per run": "figure"},
    "Provenance": {"code, packages and machine of each run": "table"},
}


@pytest.fixture(scope="module")
def browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        if os.environ.get("MLPIPE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required but missing: {', '.join(missing)}")
        pytest.skip(f"needs Debian's chromium and chromium-driver (CI installs them): missing {', '.join(missing)}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError("the report did not show what was expected in time")


def open_category(driver, report, category: str) -> dict:
    from selenium.webdriver.common.by import By

    driver.get(report.as_uri())
    link = wait_for(
        lambda: next((a for a in driver.find_elements(By.TAG_NAME, "a") if a.text.strip() == category), None)
    )
    link.click()
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "tr")) > 1)
    return {
        row.find_element(By.TAG_NAME, "td").text.strip(): row for row in driver.find_elements(By.CSS_SELECTOR, "tr")[1:]
    }


def rendered_image(driver) -> bool:
    """The main panel shows a PNG that the browser decoded (a broken image has naturalWidth 0)."""
    from selenium.webdriver.common.by import By

    for image in driver.find_elements(By.CSS_SELECTOR, "img[src^='data:image/png']"):
        complete, width = driver.execute_script("return [arguments[0].complete, arguments[0].naturalWidth]", image)
        if complete and width > 100:
            return True
    return False


def shown_table_text(driver) -> str | None:
    """Text of the table page shown in the main panel's frame, if there is one."""
    from selenium.webdriver.common.by import By

    frames = driver.find_elements(By.TAG_NAME, "iframe")
    if not frames:
        return None
    driver.switch_to.frame(frames[0])
    try:
        return driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.switch_to.default_content()


@pytest.fixture(scope="module")
def report(finished_workflow, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("report") / "study"
    shutil.copytree(finished_workflow, workdir, symlinks=True)
    snakemake(workdir, "--report", "results/report.html")
    return workdir / "results" / "report.html"


@pytest.mark.parametrize("category", list(EXPECTED))
def test_every_report_item_renders(browser, report, category):
    from selenium.webdriver.common.by import By

    rows = open_category(browser, report, category)
    assert set(rows) == set(EXPECTED[category])
    for name, row in rows.items():
        kind = EXPECTED[category][name]
        eye = row.find_element(By.CSS_SELECTOR, "a[iconname=eye]")
        if kind == "config file":  # offered as a download
            assert eye.get_attribute("download") == "best_config.yaml"
            assert eye.get_attribute("href").startswith("data:")
            continue
        eye.click()
        if kind == "figure":
            assert wait_for(lambda: rendered_image(browser)), name
        elif kind == "table":  # an HTML page in a frame
            text = wait_for(lambda: shown_table_text(browser))
            if name == "runs left out":
                assert "None: every run's files were complete and readable." in text
            else:
                assert "lr-0.05_seed-0" in text or "lr=0.05" in text, name
    screenshot = report.parent / f"report-{category}.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000


def test_comparison_table_in_the_report_has_the_seed_statistics(browser, report):
    from selenium.webdriver.common.by import By

    rows = open_category(browser, report, "Comparison")
    rows["configurations over seeds"].find_element(By.CSS_SELECTOR, "a[iconname=eye]").click()
    text = wait_for(lambda: shown_table_text(browser))
    for column in ("best_val_acc_mean", "best_val_acc_ci95_low", "test_acc_std", "test_acc_n", "seeds"):
        assert column in text
    assert "lr=0.05" in text and "lr=0.1" in text
