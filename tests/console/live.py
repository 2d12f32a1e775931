"""The console with work being done, watched in a real headless Chromium:
run by worker/tests/it/console.rs against the real API, the real
hangar-worker binary, the AWS emulator and a real llama.cpp model server.

    python3 tests/console/live.py <base-url> <operator-jwt> <admin-jwt> <screenshot-dir>

1. Sync now, pressed twice while no worker runs (the second says "already
   running"); prints "pressed" and waits for a line on stdin (the test then
   starts the worker), and watches every open job on the overview reach
   succeeded without the page being reloaded.
2. The inventory the sync brought in: filtered, and a workspace's tabs.
3. As admin: "Retry all matching" on the dead jobs (made by the Rust side)
   runs as a bulk job to succeeded; a running system.sleep job is cancelled.
4. The playground streams an answer from the model, token by token.
"""

import pathlib
import sys

from common import browser, check_page, go, log_in
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE, OPERATOR, ADMIN, SHOTS = sys.argv[1], sys.argv[2], sys.argv[3], pathlib.Path(sys.argv[4])


def states(driver):
    return [s.text for s in driver.find_elements(By.CSS_SELECTOR, "section[aria-labelledby=syncs] [data-field=state]")]


def sync_now_live(driver):
    log_in(driver, BASE, OPERATOR)
    press = "//button[normalize-space()='Sync now: workspaces']"
    go(driver, driver.find_element(By.XPATH, press))
    WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice"), "started"))
    go(driver, driver.find_element(By.XPATH, press))
    WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice"), "already running"))
    WebDriverWait(driver, 10).until(lambda d: states(d) and all(s == "queued" for s in states(d)))
    check_page(driver, SHOTS, "live-queued")
    # A mark a reload would wipe.
    driver.execute_script("window.hangarMark = 1")
    print("pressed", flush=True)
    sys.stdin.readline()
    WebDriverWait(driver, 60).until(lambda d: all(s == "succeeded" for s in states(d)))
    assert driver.execute_script("return window.hangarMark") == 1, "the page was reloaded"
    check_page(driver, SHOTS, "live-succeeded")
    # And the job's own page shows the result it finished with.
    go(driver, driver.find_element(By.CSS_SELECTOR, "section[aria-labelledby=syncs] [data-live-job] a"))
    WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dd.state"), "succeeded"))
    assert "Result" in driver.page_source
    check_page(driver, SHOTS, "live-job")


def inventory(driver):
    """What the sync stored: filtered by state and search, then one
    workspace's tabs."""
    go(driver, driver.find_element(By.LINK_TEXT, "WorkSpaces"))
    rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 12, [r.text for r in rows]
    check_page(driver, SHOTS, "workspaces")
    Select(driver.find_element(By.ID, "state")).select_by_value("STOPPED")
    go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Filter']"))
    rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert rows and all("STOPPED" in r.text for r in rows), [r.text for r in rows]
    stopped = len(rows)
    assert 0 < stopped < 12, stopped
    check_page(driver, SHOTS, "workspaces-stopped")
    go(driver, rows[0].find_element(By.CSS_SELECTOR, "th a"))
    title = driver.find_element(By.TAG_NAME, "h1").text
    assert title.startswith("Workspace ws-"), title
    for tab in ("Connection history", "Tags", "Usage", "Costs", "CloudTrail events", "Overview"):
        go(driver, driver.find_element(By.CSS_SELECTOR, "nav.tabs").find_element(By.LINK_TEXT, tab))
        current = driver.find_element(By.CSS_SELECTOR, "nav.tabs a[aria-current=page]").text
        assert current == tab, (tab, current)
        check_page(driver, SHOTS, "workspace-" + tab.split()[0].lower())
    go(driver, driver.find_element(By.CSS_SELECTOR, "nav.tabs").find_element(By.LINK_TEXT, "Tags"))
    assert driver.find_elements(By.CSS_SELECTOR, "tbody tr"), "the seeded tags are shown"
    go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Log out']"))


def bulk_retry_and_cancel(driver):
    """Retry every dead noop through the filter (a bulk job on the control
    queue, followed to succeeded), then cancel the running sleep job."""
    log_in(driver, BASE, ADMIN)
    driver.get(f"{BASE}/ui/jobs?kind=system.noop&state=dead")
    assert len(driver.find_elements(By.CSS_SELECTOR, "tbody tr")) == 3
    go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Retry all matching…']"))
    assert "Retry 3 dead jobs" in driver.find_element(By.TAG_NAME, "main").text
    go(driver, driver.find_element(By.CSS_SELECTOR, "button.danger"))
    # The bulk job's page follows it, and shows its tally once it ends.
    WebDriverWait(driver, 60).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dd.state"), "succeeded"))
    WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.TAG_NAME, "main"), "Result"))
    assert '"done": 3' in driver.find_element(By.TAG_NAME, "main").text
    check_page(driver, SHOTS, "bulk-retried")
    driver.get(f"{BASE}/ui/jobs?kind=system.noop&state=dead")
    assert "No jobs match" in driver.find_element(By.TAG_NAME, "main").text

    driver.get(f"{BASE}/ui/jobs?kind=system.sleep")
    go(driver, driver.find_element(By.CSS_SELECTOR, "tbody th a"))
    WebDriverWait(driver, 30).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dd.state"), "running"))
    check_page(driver, SHOTS, "job-running")
    go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Cancel']"))
    WebDriverWait(driver, 30).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dd.state"), "cancelled"))
    check_page(driver, SHOTS, "job-cancelled-running")


def playground(driver):
    """A chat answer streamed from the model, token by token."""
    go(driver, driver.find_element(By.LINK_TEXT, "Models"))
    WebDriverWait(driver, 60).until(lambda d: "healthy" in d.find_element(By.CSS_SELECTOR, "section[aria-labelledby=health] tbody").text or d.refresh())
    driver.find_element(By.ID, "message").send_keys("Name three colours.")
    go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Send']"))
    answer = driver.find_element(By.CSS_SELECTOR, "[data-field=answer]")
    stream = driver.find_element(By.CSS_SELECTOR, "[data-stream]")
    WebDriverWait(driver, 120).until(lambda d: stream.get_attribute("data-done") == "true")
    status = driver.find_element(By.CSS_SELECTOR, "[data-field=status]").text
    assert status == "done", status
    assert answer.text.strip(), "an answer"
    # Streamed: the answer arrived as many token events, each appended.
    tokens = int(stream.get_attribute("data-tokens") or 0)
    assert tokens >= 2, f"the answer arrived in {tokens} piece(s)"
    assert "Name three colours." in driver.find_element(By.CSS_SELECTOR, "ol.chat").text
    check_page(driver, SHOTS, "playground")


def main():
    driver = browser()
    try:
        sync_now_live(driver)
        inventory(driver)
        bulk_retry_and_cancel(driver)
        playground(driver)
    except Exception:
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / "live-failure.png"))
        print(f"failed at {driver.current_url}:\n{driver.find_element(By.TAG_NAME, 'body').text[:2000]}", file=sys.stderr)
        raise
    finally:
        driver.quit()
    print("live console test: ok", flush=True)


if __name__ == "__main__":
    main()
