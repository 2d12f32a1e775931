"""Sync now, watched live: run by worker/tests/it/console.rs against the
real API, the real hangar-worker binary and the AWS emulator.

    python3 tests/console/live.py <base-url> <operator-jwt> <screenshot-dir>

Presses Sync now twice while no worker runs (the second says "already
running"), prints "pressed" and waits for a line on stdin (the test then
starts the worker), and watches every open job on the overview reach
succeeded without the page being reloaded.
"""

import pathlib
import sys

from common import browser, check_page, go, log_in
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

BASE, OPERATOR, SHOTS = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])


def states(driver):
    return [s.text for s in driver.find_elements(By.CSS_SELECTOR, "section[aria-labelledby=syncs] [data-field=state]")]


def main():
    driver = browser()
    try:
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
    finally:
        driver.quit()
    print("live console test: ok", flush=True)


if __name__ == "__main__":
    main()
