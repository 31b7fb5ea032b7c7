"""/docs and CORS in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven by selenium, against the app on Chalice's local server. Skipped where either is missing."""

from __future__ import annotations

import shutil
import socket

import pytest

from tests.e2e.app_server import serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="no Chromium here: apt-get install chromium chromium-driver"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    # The page's origin is http://localhost:<port>; the API is called as http://127.0.0.1:<port>.
    with serving(port, CRM_CORS_ALLOWED_ORIGINS=f"http://localhost:{port}") as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1400")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit chromedriver: Selenium Manager would try to download one.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()


def test_docs_renders_the_document_and_tries_get_health(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server.url}/docs")
    wait = WebDriverWait(browser, 30)
    title = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title"))
    assert title.text.startswith("CRM API")
    health = wait.until(lambda b: b.find_element(By.ID, "operations-health-health"))
    health.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    wait.until(lambda b: health.find_element(By.CSS_SELECTOR, "button.execute")).click()
    live = ".live-responses-table .response"
    status = wait.until(lambda b: health.find_element(By.CSS_SELECTOR, f"{live} .response-col_status"))
    assert status.text == "200"
    assert (
        '"status": "ok"' in health.find_element(By.CSS_SELECTOR, f"{live} .response-col_description pre").text
    )
    assert health.find_element(By.CSS_SELECTOR, ".request-url pre").text == f"{server.url}/health"
    # No script or style refused by the Content-Security-Policy, no file refused by its integrity.
    problems = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert problems == []


def test_a_page_on_an_allowed_origin_reads_every_header_the_api_exposes(server, browser):
    browser.get(f"http://localhost:{server.port}/health")
    answer = browser.execute_async_script(
        """
        const [url, done] = arguments;
        fetch(url, {
          method: "POST",
          headers: {"Authorization": "Bearer not.a.jwt", "Content-Type": "application/json",
                    "Idempotency-Key": "k-1"},
          body: JSON.stringify({name: "Åsa"}),
        }).then(r => done({status: r.status, auth: r.headers.get("WWW-Authenticate"),
                           type: r.headers.get("Content-Type")}))
          .catch(error => done({error: String(error)}));
        """,
        f"{server.url}/customers",
    )
    # A preflighted request went through, and the script may read why it was refused.
    assert answer == {"status": 401, "auth": 'Bearer realm="crm"', "type": "application/problem+json"}
