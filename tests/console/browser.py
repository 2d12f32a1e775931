"""The console as people use it, in a real headless Chromium (Debian's
chromium and chromium-driver, driven by selenium): run by
tests/tests/it/console_browser.rs against the real API, PostgreSQL and Redis.

    python3 tests/console/browser.py <base-url> <operator-jwt> <viewer-jwt> <admin-jwt> <screenshot-dir>

The app holds one dead system.noop job and one queued one (made by the
Rust side before this runs).

Each step saves a screenshot. On every page: no console errors, and axe-core
(from npm, tests/console/node_modules) finds no serious or critical
accessibility violation. Exits non-zero with the reason on the first failure.
"""

import pathlib
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE, OPERATOR, VIEWER, ADMIN = sys.argv[1:5]
SHOTS = pathlib.Path(sys.argv[5])
AXE = (pathlib.Path(__file__).parent / "node_modules/axe-core/axe.min.js").read_text()


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def check_page(driver, name):
    """Screenshot, console errors and accessibility of the current page."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"{name}: console errors {errors}"
    # axe runs as a script of the test (WebDriver's own channel), which the
    # page's CSP does not govern.
    driver.execute_script(AXE)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document).then(r => done(r.violations.map(v => [v.id, v.impact, v.nodes.length])));"
    )
    serious = [v for v in result if v[1] in ("serious", "critical")]
    assert not serious, f"{name}: accessibility violations {serious}"


def log_in(driver, credential):
    driver.get(f"{BASE}/ui/")
    WebDriverWait(driver, 10).until(ec.url_contains("/ui/login"))
    field = driver.find_element(By.ID, "credential")
    assert driver.find_element(By.CSS_SELECTOR, "label[for=credential]").text == "API key or JWT"
    field.send_keys(credential)
    field.submit()
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "queues")))


def main():
    driver = browser()
    try:
        # The login page, a refused credential naming the field.
        driver.get(f"{BASE}/ui/login")
        check_page(driver, "login")
        driver.find_element(By.ID, "credential").send_keys("hangar_not_a_key")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        alert = WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, "[role=alert]")))
        assert alert.text.startswith("credential:"), alert.text
        # The refusal is a 401 by design, which Chromium logs as a failed load.
        refused = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert all("/ui/login" in e["message"] and "401" in e["message"] for e in refused), refused
        check_page(driver, "login-refused")

        # An operator logs in and sees every queue.
        log_in(driver, OPERATOR)
        rows = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "section[aria-labelledby=queues] tbody th")]
        assert rows == ["inference", "reports", "sync"], rows
        assert "jwt:browser-operator (operator)" in driver.find_element(By.CSS_SELECTOR, ".who").text
        check_page(driver, "overview")

        # Sync now: started, then (its jobs still open: no worker runs in
        # this test) "already running", with the open jobs linked.
        driver.find_element(By.XPATH, "//button[normalize-space()='Sync now: workspaces']").click()
        notice = WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".notice")))
        assert "started" in notice.text, notice.text
        check_page(driver, "sync-started")
        driver.find_element(By.XPATH, "//button[normalize-space()='Sync now: workspaces']").click()
        WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice"), "already running"))
        check_page(driver, "sync-already-running")
        links = driver.find_elements(By.CSS_SELECTOR, "section[aria-labelledby=syncs] tbody a")
        assert len(links) == 2, [a.text for a in links]
        links[0].click()
        WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Job "))
        assert driver.find_element(By.CSS_SELECTOR, "dd.state").text == "queued"
        check_page(driver, "job")
        driver.find_element(By.LINK_TEXT, "Overview").click()
        WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "queues")))

        # Keyboard: Tab reaches the navigation and the logout button.
        focusable = driver.execute_script(
            "return [...document.querySelectorAll('a[href], button')].map(e => e.textContent.trim())"
        )
        assert "Log out" in focusable and "Overview" in focusable, focusable

        # Logging out ends the session: the back button shows nothing.
        driver.find_element(By.XPATH, "//button[normalize-space()='Log out']").click()
        WebDriverWait(driver, 10).until(ec.url_contains("/ui/login"))
        driver.get(f"{BASE}/ui/")
        WebDriverWait(driver, 10).until(ec.url_contains("/ui/login"))
        assert not driver.get_cookies(), driver.get_cookies()

        # A viewer sees the same pages and no write controls beyond logout.
        log_in(driver, VIEWER)
        buttons = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "button, input[type=submit]")]
        assert buttons == ["Log out"], buttons
        check_page(driver, "overview-viewer")
        driver.find_element(By.XPATH, "//button[normalize-space()='Log out']").click()
        WebDriverWait(driver, 10).until(ec.url_contains("/ui/login"))

        # An admin finds the dead job through the filter and retries it,
        # then cancels the queued one.
        log_in(driver, ADMIN)
        driver.find_element(By.LINK_TEXT, "Jobs").click()
        Select(WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "state")))).select_by_value("dead")
        driver.find_element(By.XPATH, "//button[normalize-space()='Filter']").click()
        WebDriverWait(driver, 10).until(ec.url_contains("state=dead"))
        rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(rows) == 1, [r.text for r in rows]
        check_page(driver, "jobs-dead")
        rows[0].find_element(By.TAG_NAME, "a").click()
        WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dd.state"), "dead"))
        assert "simulated bad credentials" in driver.find_element(By.CSS_SELECTOR, "pre.error").text
        check_page(driver, "job-dead")
        driver.find_element(By.XPATH, "//button[normalize-space()='Retry']").click()
        WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dd.state"), "queued"))

        driver.get(f"{BASE}/ui/jobs?kind=system.noop&state=queued")
        rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr a")
        assert len(rows) == 2, [r.text for r in rows]
        rows[-1].click()
        driver.find_element(By.XPATH, "//button[normalize-space()='Cancel']").click()
        WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dd.state"), "cancelled"))
        check_page(driver, "job-cancelled")
    finally:
        driver.quit()
    print("console browser test: ok")


if __name__ == "__main__":
    main()
