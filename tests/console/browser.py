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

from common import browser, check_page, go, log_in
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE, OPERATOR, VIEWER, ADMIN = sys.argv[1:5]
SHOTS = pathlib.Path(sys.argv[5])


def main():
    driver = browser()
    try:
        # The login page, a refused credential naming the field.
        driver.get(f"{BASE}/ui/login")
        check_page(driver, SHOTS, "login")
        driver.find_element(By.ID, "credential").send_keys("hangar_not_a_key")
        go(driver, driver.find_element(By.CSS_SELECTOR, "button[type=submit]"))
        alert = WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, "[role=alert]")))
        assert alert.text.startswith("credential:"), alert.text
        # The refusal is a 401 by design, which Chromium logs as a failed load.
        refused = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert all("/ui/login" in e["message"] and "401" in e["message"] for e in refused), refused
        check_page(driver, SHOTS, "login-refused")

        # An operator logs in and sees every queue.
        log_in(driver, BASE, OPERATOR)
        rows = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "section[aria-labelledby=queues] tbody th")]
        assert rows == ["inference", "reports", "sync"], rows
        assert "jwt:browser-operator (operator)" in driver.find_element(By.CSS_SELECTOR, ".who").text
        check_page(driver, SHOTS, "overview")

        # Sync now: started, then (its jobs still open: no worker runs in
        # this test) "already running", with the open jobs linked.
        go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Sync now: workspaces']"))
        notice = WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".notice")))
        assert "started" in notice.text, notice.text
        check_page(driver, SHOTS, "sync-started")
        go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Sync now: workspaces']"))
        WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice"), "already running"))
        check_page(driver, SHOTS, "sync-already-running")
        links = driver.find_elements(By.CSS_SELECTOR, "section[aria-labelledby=syncs] tbody a")
        assert len(links) == 2, [a.text for a in links]
        go(driver, links[0])
        WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Job "))
        assert driver.find_element(By.CSS_SELECTOR, "dd.state").text == "queued"
        check_page(driver, SHOTS, "job")
        go(driver, driver.find_element(By.LINK_TEXT, "Overview"))
        WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "queues")))

        # Keyboard: Tab reaches the navigation and the logout button.
        focusable = driver.execute_script(
            "return [...document.querySelectorAll('a[href], button')].map(e => e.textContent.trim())"
        )
        assert "Log out" in focusable and "Overview" in focusable, focusable

        # Logging out ends the session: the back button shows nothing.
        go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Log out']"))
        WebDriverWait(driver, 10).until(ec.url_contains("/ui/login"))
        driver.get(f"{BASE}/ui/")
        WebDriverWait(driver, 10).until(ec.url_contains("/ui/login"))
        assert not driver.get_cookies(), driver.get_cookies()

        # A viewer sees the same pages and no write controls beyond logout.
        log_in(driver, BASE, VIEWER)
        buttons = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "button, input[type=submit]")]
        assert buttons == ["Log out"], buttons
        check_page(driver, SHOTS, "overview-viewer")
        go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Log out']"))
        WebDriverWait(driver, 10).until(ec.url_contains("/ui/login"))

        # An admin finds the dead job through the filter and retries it,
        # then cancels the queued one.
        log_in(driver, BASE, ADMIN)
        go(driver, driver.find_element(By.LINK_TEXT, "Jobs"))
        Select(WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "state")))).select_by_value("dead")
        go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Filter']"))
        WebDriverWait(driver, 10).until(ec.url_contains("state=dead"))
        rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(rows) == 1, [r.text for r in rows]
        check_page(driver, SHOTS, "jobs-dead")
        go(driver, rows[0].find_element(By.TAG_NAME, "a"))
        WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dd.state"), "dead"))
        assert "simulated bad credentials" in driver.find_element(By.CSS_SELECTOR, "pre.error").text
        check_page(driver, SHOTS, "job-dead")
        go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Retry']"))
        WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dd.state"), "queued"))

        driver.get(f"{BASE}/ui/jobs?kind=system.noop&state=queued")
        rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr a")
        assert len(rows) == 2, [r.text for r in rows]
        go(driver, rows[-1])
        go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Cancel']"))
        WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dd.state"), "cancelled"))
        check_page(driver, SHOTS, "job-cancelled")
    finally:
        driver.quit()
    print("console browser test: ok")


if __name__ == "__main__":
    main()
