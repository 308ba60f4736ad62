"""The backtest report in a real browser: Debian's headless Chromium driven by Selenium through Debian's
chromedriver (no browser or driver download: the driver path is given, so Selenium Manager never runs), with
every host unresolvable so that the page must work offline."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.unit.backtest.test_report import make_inputs
from tradepipe.backtest.report import write_report
from tradepipe.core.metrics import performance_metrics

pytestmark = pytest.mark.browser
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FIGURES = ["fig-equity", "fig-drawdowns", "fig-rolling_sharpe", "fig-monthly", "fig-weights", "fig-costs"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    returns, weights, costs = make_inputs(700)
    returns = {**returns, "half": returns["strategy"] * 0.5}
    metrics = {name: performance_metrics(r) for name, r in returns.items()}
    return write_report(tmp_path_factory.mktemp("browser") / "report.html", returns=returns, metrics=metrics,
                        weights=weights, costs=costs, title="browser check")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
        pytest.skip("apt-get install chromium chromium-driver to run the browser test")

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,1000", "--host-resolver-rules=MAP * ~NOTFOUND"):  # offline: no host resolves
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_selenium_manager_is_not_used(caplog: pytest.LogCaptureFixture) -> None:
    if not CHROMEDRIVER.exists():
        pytest.skip("no chromedriver")

    caplog.set_level(logging.DEBUG, logger="selenium")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.add_argument("--headless=new")
    options.add_argument("--no-sandbox")
    webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options).quit()
    assert "Skipping Selenium Manager; path to chrome driver specified" in caplog.text
    assert "Selenium Manager binary found" not in caplog.text and "selenium-manager" not in caplog.text


def test_every_chart_renders_and_the_console_stays_clean(report: Path, browser: WebDriver) -> None:
    driver = browser
    driver.get(report.as_uri())
    WebDriverWait(driver, 60).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) == len(FIGURES))
    for fig_id in FIGURES:
        div = driver.find_element(By.ID, fig_id)
        assert "js-plotly-plot" in div.get_attribute("class").split(), fig_id
        assert div.find_elements(By.CSS_SELECTOR, "svg.main-svg"), fig_id
        drawn = driver.execute_script(
            "var d = document.getElementById(arguments[0]);"
            "return [d._fullData.length, d.querySelectorAll('.trace, .hm, image').length,"
            " d.getBoundingClientRect().height];", fig_id)
        assert drawn[0] > 0 and drawn[1] > 0 and drawn[2] > 100, (fig_id, drawn)
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_a_legend_click_hides_a_series_and_the_table_sorts(report: Path, browser: WebDriver) -> None:
    driver = browser
    driver.get(report.as_uri())
    WebDriverWait(driver, 60).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#fig-equity .legend .traces")) == 3)
    toggle = driver.find_elements(By.CSS_SELECTOR, "#fig-equity .legend .traces .legendtoggle")[1]
    toggle.click()
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return document.getElementById('fig-equity')._fullData[1].visible")
        == "legendonly")

    sharpe = driver.find_element(By.CSS_SELECTOR, 'table.sortable th[title="sharpe"]')
    col = driver.execute_script("return arguments[0].cellIndex", sharpe)

    def column() -> list[float]:
        cells = driver.find_elements(By.CSS_SELECTOR, f"table.sortable tbody td:nth-child({col + 1})")
        return [float(c.get_attribute("data-v")) for c in cells]

    sharpe.click()
    assert sharpe.get_attribute("aria-sort") == "descending" and column() == sorted(column(), reverse=True)
    sharpe.click()
    assert sharpe.get_attribute("aria-sort") == "ascending" and column() == sorted(column())
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
