"""The web console in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, installed by .ci/run) driven by selenium. A job is created through
the form, the list page shows its progress and then ACTIVE by refreshing itself (the
test never reloads it), and its details page shows the record and the first output
lines. Bad input shows a message and creates no job.

`PBATCH_SCREENSHOTS=docs pytest tests/test_console_browser.py` also saves the README's
screenshots there.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import EXAMPLES, PBATCH_SCRIPT

from personalize_batch.job.store import ACTIVE, FAILED, IN_PROGRESS, JobStore
from personalize_batch.service import control as service

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SHOTS = os.environ.get("PBATCH_SCREENSHOTS")

webdriver = pytest.importorskip("selenium.webdriver") if not os.environ.get("CI") else None
if webdriver is None:  # in CI a missing browser is a failure, not a skip
    from selenium import webdriver
if not os.environ.get("CI") and not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip("chromium and chromium-driver are not installed", allow_module_level=True)

from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def browser():
    profile = tempfile.mkdtemp(prefix="pbatch-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1280,860",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must not look for downloads
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def console(pbatch_home):
    """The real `pbatch console --port 0` in a subprocess; its URL."""
    proc = subprocess.Popen(
        [*PBATCH_SCRIPT, "console", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline()
        assert line.startswith("pbatch console: http://127.0.0.1:"), line
        yield line.split()[2]
    finally:
        proc.terminate()
        proc.wait(10)


def shot(driver, name: str) -> None:
    if SHOTS:
        height, chrome = driver.execute_script(
            "return [Math.ceil(document.querySelector('main').getBoundingClientRect().bottom"
            " + window.scrollY) + 24, window.outerHeight - window.innerHeight]"
        )
        driver.set_window_size(1280, min(height, 1600) + chrome)
        driver.save_screenshot(str(Path(SHOTS) / name))
        driver.set_window_size(1280, 860)


def text_of(driver, css: str) -> str:
    """The text of an element on a page that may be reloading itself ("" meanwhile).
    Chromium may report the reloaded node as one that "does not belong to the document"
    (a WebDriverException, as in _gone) instead of a stale element."""
    try:
        return driver.find_element(By.CSS_SELECTOR, css).text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return ""
        raise


def click_and_load(driver, by: str, value: str) -> None:
    """Click something that loads a new page, and wait until the old page is gone (a
    click may return before the navigation, and the old page would still be searched).
    A page that reloads itself between finding and clicking is tried again."""
    for attempt in range(3):
        try:
            old = driver.find_element(By.TAG_NAME, "html")
            driver.find_element(by, value).click()
            break
        except (NoSuchElementException, StaleElementReferenceException):
            if attempt == 2:
                raise
            time.sleep(0.3)
    WebDriverWait(driver, 30).until(_gone(old))


def _gone(element):
    """staleness_of, also when Chromium, mid-navigation, answers for the old page's node
    with "Node with given id does not belong to the document" (a WebDriverException
    rather than a StaleElementReferenceException)."""
    stale = expected_conditions.staleness_of(element)

    def check(driver) -> bool:
        try:
            return stale(driver)
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise

    return check


def fill(driver, values: dict[str, str]) -> None:
    for key, value in values.items():
        field = driver.find_element(By.ID, key)
        field.clear()
        field.send_keys(value)
    click_and_load(driver, By.ID, "create")


def test_create_watch_and_inspect_a_job_in_chromium(browser, console, solutions, tmp_path):
    up, sims = str(solutions["user-personalization"]), str(solutions["sims"])
    store = JobStore()
    # two finished jobs to list: one ACTIVE, one CREATE FAILED (its gzip input is cut short)
    cut = tmp_path / "cut" / "users.json.gz"
    cut.parent.mkdir()
    whole = gzip.compress((EXAMPLES / "users.json").read_bytes() * 50)
    cut.write_bytes(whole[: len(whole) // 2])
    for name, source in (("nightly-users", EXAMPLES / "users.json"), ("truncated-input", cut)):
        service.create_batch_inference_job(
            store,
            jobName=name,
            solutionVersionArn=up,
            jobInput={"s3DataSource": {"path": str(source)}},
            jobOutput={"s3DataDestination": {"path": str(tmp_path / name)}},
        )
    for name, status in (("nightly-users", ACTIVE), ("truncated-input", FAILED)):
        deadline = time.monotonic() + 60
        while store.get(name)["status"] != status:
            assert time.monotonic() < deadline, store.get(name)
            time.sleep(0.2)

    # bad input: a clear message on the page, and no job
    browser.get(console + "create")
    users = tmp_path / "users.json"  # the screenshots show paths of the test's own folder
    users.write_bytes((EXAMPLES / "users.json").read_bytes())
    form = {
        "jobName": "from-the-form",
        "solution": up,
        "input": str(users),
        "output": str(tmp_path / "web"),
    }
    for change, message in (
        ({"solution": ""}, "Solution: required."),
        ({"solution": sims}, "the input does not fit the sims solution"),
        ({"jobName": "from the form"}, "invalid job name"),
    ):
        fill(browser, {**form, **change})
        assert message in browser.find_element(By.ID, "error").text
        if change.get("solution") == sims:
            shot(browser, "console-create.png")
    assert len(store.records()) == 2

    # a good one, whose input is a pipe we feed, so we can watch it run
    fifo = tmp_path / "users-live.json"
    os.mkfifo(fifo)
    fill(browser, {**form, "input": str(fifo), "numResults": "10"})
    assert browser.current_url == console + "jobs/from-the-form"
    assert "from-the-form" in browser.find_element(By.TAG_NAME, "h1").text

    line = b'{"userId": "653"}\n'
    fed = threading.Event()

    def feed() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(line * 1100)
            pipe.flush()
            time.sleep(2.2)  # the record gets the counts every 2 s
            pipe.write(line * 1100)
            pipe.flush()
            fed.wait(60)
            pipe.write(line * 300)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    click_and_load(browser, By.LINK_TEXT, "Batch inference jobs")
    row = 'tr[data-job="from-the-form"]'
    wait = WebDriverWait(browser, 60, poll_frequency=0.2)
    wait.until(lambda d: "2,200 lines so far" in text_of(d, row))  # all that came
    assert IN_PROGRESS in text_of(browser, row)
    shot(browser, "console-jobs.png")
    fed.set()
    wait.until(lambda d: ACTIVE in text_of(d, row))  # the page refreshed itself
    assert "2,500 lines" in text_of(browser, row)
    assert "CREATE FAILED" in text_of(browser, 'tr[data-job="truncated-input"]')
    feeder.join(10)

    click_and_load(browser, By.LINK_TEXT, "from-the-form")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "ACTIVE" in browser.find_element(By.TAG_NAME, "h1").text
    for fact in ("linesRead", "2,500", "numResults", str(fifo), "First output lines"):
        assert fact in body, fact
    previews = browser.find_elements(By.CSS_SELECTOR, "#outputs pre")
    assert len(previews) == 5 and '"recommendedItems":[' in previews[0].text
    shot(browser, "console-job.png")

    browser.get(console + "jobs/truncated-input")
    reason = browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert reason.startswith("Failure reason:") and "users.json.gz" in reason


def _one_line(driver, css: str) -> list[str]:
    """The texts of the elements that wrap onto more than one line."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].filter(e => {"
        " const range = document.createRange(); range.selectNodeContents(e);"
        " const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));"
        " return tops.size > 1; }).map(e => e.textContent)",
        css,
    )


def _overflowing(driver) -> list[str]:
    """Boxes wider than the panel they are in, and whether the page scrolls sideways."""
    return driver.execute_script(
        "const out = [...document.querySelectorAll('.panel pre, .panel dd, .error')].filter("
        " e => e.getBoundingClientRect().right > e.closest('.panel, main').getBoundingClientRect()"
        ".right + 1).map(e => e.tagName + ': ' + e.textContent.slice(0, 40));"
        "if (document.documentElement.scrollWidth > document.documentElement.clientWidth)"
        " out.push('page scrolls sideways'); return out;"
    )


def test_layout_errors_delete_and_paging_in_chromium(browser, console, solutions, tmp_path):
    """Dates stayed on four lines, a failed job's JSON ran off the page, form problems
    came one post at a time, jobs could not be deleted, and the list stopped at 500."""
    up = str(solutions["user-personalization"])
    store = JobStore()
    deep = tmp_path / ("a-long-folder-name-" * 6) / "and-deeper"
    deep.mkdir(parents=True)
    cut = deep / "users.json.gz"
    whole = gzip.compress((EXAMPLES / "users.json").read_bytes() * 50)
    cut.write_bytes(whole[: len(whole) // 2])
    service.create_batch_inference_job(
        store,
        jobName="failed-with-a-long-path",
        solutionVersionArn=up,
        jobInput={"s3DataSource": {"path": str(cut)}},
        jobOutput={"s3DataDestination": {"path": str(deep / "out")}},
    )
    deadline = time.monotonic() + 60
    while store.get("failed-with-a-long-path")["status"] != FAILED:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    for k in range(55):  # with the failed one: two pages of the list
        name = f"old-{k:02d}"
        long = str(deep / "user-personalization-trained-on-every-interaction-of-2026.npz")
        store.create({"jobName": name, "solutionVersionArn": "arn:x", "solutionPath": long})
        store.update(name, status=ACTIVE, linesRead=k, linesWithErrors=0, durationSeconds=1.0)

    browser.set_window_size(900, 860)
    browser.get(console)
    assert "Batch inference jobs (56)" in browser.find_element(By.TAG_NAME, "h1").text
    rows = browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 50
    assert _one_line(browser, "tbody td:nth-child(6)") == []  # Created
    click_and_load(browser, By.ID, "older")
    listed = browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.get_attribute("data-job") for r in listed] == [
        *(f"old-{k:02d}" for k in range(4, -1, -1)),
        "failed-with-a-long-path",
    ]
    assert "Page 2 of 2" in browser.find_element(By.CLASS_NAME, "pager").text

    browser.get(console + "jobs/failed-with-a-long-path")
    assert _overflowing(browser) == []
    assert _one_line(browser, "dd .when") == []

    click_and_load(browser, By.ID, "delete")
    assert "Delete job failed-with-a-long-path" in browser.find_element(By.TAG_NAME, "h1").text
    click_and_load(browser, By.ID, "confirm-delete")
    assert browser.current_url == console + "?deleted=failed-with-a-long-path"
    assert "was deleted" in browser.find_element(By.ID, "notice").text
    assert not store.exists("failed-with-a-long-path")

    browser.get(console + "create")
    fill(
        browser,
        {"jobName": "bad name!", "solution": up, "input": str(EXAMPLES / "users.json")}
        | {"output": "", "numResults": "0"},
    )
    problems = browser.find_elements(By.CSS_SELECTOR, "#error li")
    assert [p.text for p in problems] == [
        "Output location: required.",
        "invalid job name 'bad name!': 1-63 letters, digits, '-' or '_', starting with a "
        "letter or digit",
        "Number of results must be a whole number 1–500, not '0'.",
    ]
    marked = browser.find_elements(By.CSS_SELECTOR, "input[aria-invalid=true]")
    assert sorted(m.get_attribute("id") for m in marked) == ["jobName", "numResults", "output"]
    assert _overflowing(browser) == []
    assert len(store.records()) == 55


def test_a_segment_job_from_its_form_in_a_browser(browser, console, segment_solutions, tmp_path):
    """The navigation leads to the segment form; the job it creates appears on the
    segment jobs' list (refreshing itself to ACTIVE), not on the inference one, and its
    page shows users for the item."""
    items = tmp_path / "items.json"
    items.write_text("".join(f'{{"itemId": "{i}"}}\n' for i in segment_solutions["items"][:3]))
    browser.get(console)
    click_and_load(browser, By.LINK_TEXT, "Create batch segment job")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Create batch segment job"
    fill(
        browser,
        {
            "jobName": "mailing",
            "solution": str(segment_solutions["item-affinity"]),
            "input": str(items),
            "output": str(tmp_path / "out"),
            "numResults": "600",
        },
    )
    assert browser.current_url == console + "jobs/mailing"
    click_and_load(browser, By.LINK_TEXT, "Batch segment jobs")
    row = 'tr[data-job="mailing"]'
    WebDriverWait(browser, 60, poll_frequency=0.2).until(lambda d: ACTIVE in text_of(d, row))
    assert "3 lines" in text_of(browser, row)
    assert _overflowing(browser) == []
    click_and_load(browser, By.LINK_TEXT, "mailing")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "recommendedUsers" in body and "describe-batch-segment-job" in body
    click_and_load(browser, By.LINK_TEXT, "Batch inference jobs")
    assert "No batch inference jobs yet" in browser.find_element(By.TAG_NAME, "body").text
