"""The console as people use it, in a real headless Chromium (Debian's
chromium and chromium-driver, driven by selenium): run by
tests/tests/it/console.rs against the real API, PostgreSQL and Redis (no
worker: what needs one runs in live.py).

    python3 tests/console/browser.py <base-url> <operator-jwt> <viewer-jwt> <admin-jwt> <screenshot-dir>

The app holds one dead system.noop job, one queued one, and a week of
costs (made by the Rust side before this runs).

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


def schedules(driver):
    """Create a schedule (a bad cron first: the API's message at the
    field), edit it, and run it now."""
    go(driver, driver.find_element(By.LINK_TEXT, "Schedules"))
    go(driver, driver.find_element(By.LINK_TEXT, "New schedule"))
    driver.find_element(By.ID, "name").send_keys("browser-nightly")
    driver.find_element(By.ID, "cron").send_keys("every night")
    Select(driver.find_element(By.ID, "kind")).select_by_value("system.noop")
    go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Create schedule']"))
    cron = driver.find_element(By.ID, "cron")
    assert cron.get_attribute("aria-invalid") == "true"
    assert driver.find_element(By.ID, "cron-error").text, "the API's message at the field"
    check_page(driver, SHOTS, "schedule-refused", refused=422)
    cron.clear()
    cron.send_keys("0 2 * * *")
    tz = driver.find_element(By.ID, "timezone")
    tz.clear()
    tz.send_keys("Europe/Berlin")
    go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Create schedule']"))
    row = driver.find_element(By.ID, "s-browser-nightly")
    assert len(row.find_elements(By.CSS_SELECTOR, "ol.times li")) == 5, row.text
    assert "01:00 UTC" in row.text, row.text
    go(driver, row.find_element(By.LINK_TEXT, "Edit"))
    cron = driver.find_element(By.ID, "cron")
    cron.clear()
    cron.send_keys("30 3 * * *")
    go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Save changes']"))
    row = driver.find_element(By.ID, "s-browser-nightly")
    assert "30 3 * * *" in row.text, row.text
    go(driver, row.find_element(By.XPATH, ".//button[normalize-space()='Run now']"))
    WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice"), "running now"))
    links = driver.find_elements(By.CSS_SELECTOR, ".notice a[href*='/ui/jobs/']")
    assert len(links) == 1, driver.find_element(By.CSS_SELECTOR, ".notice").text
    check_page(driver, SHOTS, "schedules")


def bulk_preview(driver):
    """Cancel every queued noop: the preview counts them, confirming starts
    a system.bulk_jobs job (it runs in live.py, where a worker serves the
    control queue)."""
    driver.get(f"{BASE}/ui/jobs?kind=system.noop&state=queued")
    go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Cancel all matching…']"))
    text = driver.find_element(By.TAG_NAME, "main").text
    assert "Cancel 2 open jobs" in text, text
    check_page(driver, SHOTS, "bulk-preview")
    go(driver, driver.find_element(By.CSS_SELECTOR, "button.danger"))
    WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.TAG_NAME, "main"), "system.bulk_jobs"))
    check_page(driver, SHOTS, "bulk-job")


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
        assert rows == ["control", "inference", "reports", "sync"], rows
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

        # A viewer sees every page (not Admin) and no write control on any.
        log_in(driver, BASE, VIEWER)
        nav = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "nav[aria-label=Main] a")]
        assert nav == ["Overview", "Jobs", "Schedules", "Workers", "WorkSpaces", "Billing", "Audit", "Reports", "Models"], nav
        for label in nav:
            go(driver, driver.find_element(By.LINK_TEXT, label))
            # Write controls: anything that posts, and the bulk selection.
            writes = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "form[method=post] button, input[name=ids]")]
            assert writes == ["Log out"], (label, writes)
            check_page(driver, SHOTS, f"viewer-{label.lower()}")
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

        schedules(driver)
        bulk_preview(driver)

        # Billing: the week of costs as a chart, month to date.
        go(driver, driver.find_element(By.LINK_TEXT, "Billing"))
        assert driver.find_element(By.CSS_SELECTOR, "figure.chart svg[role=img]")
        assert "Amazon WorkSpaces" in driver.find_element(By.CSS_SELECTOR, "figcaption.legend").text
        check_page(driver, SHOTS, "billing")

        # Admin: an API key is created and its token shown once.
        go(driver, driver.find_element(By.LINK_TEXT, "Admin"))
        driver.find_element(By.ID, "key-name").send_keys("browser-key")
        go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Create key']"))
        token = driver.find_element(By.ID, "new-token").get_attribute("value")
        assert token.startswith("hangar_"), token
        check_page(driver, SHOTS, "admin-key-created")
        driver.get(f"{BASE}/ui/admin")
        assert token not in driver.page_source, "the token is shown once"

        # Hangar's own audit log lists these actions.
        driver.get(f"{BASE}/ui/audit/hangar?actor=jwt%3Abrowser-admin")
        actions = driver.find_element(By.TAG_NAME, "tbody").text
        for action in ("console_create_api_key", "console_create_schedule", "console_run_schedule", "console_retry_job"):
            assert action in actions, (action, actions)
        check_page(driver, SHOTS, "audit-hangar")
        go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Log out']"))
        WebDriverWait(driver, 10).until(ec.url_contains("/ui/login"))
    except Exception:
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / "browser-failure.png"))
        print(f"failed at {driver.current_url}:\n{driver.find_element(By.TAG_NAME, 'body').text[:2000]}", file=sys.stderr)
        raise
    finally:
        driver.quit()
    print("console browser test: ok")


if __name__ == "__main__":
    main()
