"""What the console's browser tests share: a headless Chromium (Debian's
chromium and chromedriver, through selenium), the per-page checks (a
screenshot, no console errors, no serious axe-core violation) and logging in.
"""

import pathlib

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

AXE = (pathlib.Path(__file__).parent / "node_modules/axe-core/axe.min.js").read_text()


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def check_page(driver, shots, name, refused=None):
    """Screenshot, console errors and accessibility of the current page.
    `refused` is a status this page was answered with by design (a form
    sent back with the API's message): Chromium logs that load as an
    error, and only that one is allowed."""
    shots.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(shots / f"{name}.png"))
    errors = [
        e
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and not (refused and e["source"] == "network" and f"status of {refused} " in e["message"])
    ]
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


def log_in(driver, base, credential):
    driver.get(f"{base}/ui/")
    WebDriverWait(driver, 10).until(ec.url_contains("/ui/login"))
    field = driver.find_element(By.ID, "credential")
    assert driver.find_element(By.CSS_SELECTOR, "label[for=credential]").text == "API key or JWT"
    field.send_keys(credential)
    go(driver, driver.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "queues")))


def go(driver, element):
    """Clicks a link or a form's button and waits until the next page has
    replaced this one, so later lookups never touch the old, detaching
    document (Chromium then fails them with "Node ... does not belong to
    the document", which no wait condition retries)."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def replaced(_):
        try:
            page.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            # Chromium's words for a node of a document being torn down.
            if "does not belong to the document" in str(e):
                return True
            raise

    WebDriverWait(driver, 10).until(replaced)
