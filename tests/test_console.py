"""The web console over plain HTTP (the browser test is test_console_browser.py): it
listens on 127.0.0.1 only, refuses foreign Hosts and cross-site posts, escapes all it
shows, and a bad form shows a message and creates no job."""

from __future__ import annotations

import html
import http.client
import re
import threading
import time
from urllib.parse import urlencode

import pytest
from conftest import EXAMPLES

from personalize_batch.console import make_console
from personalize_batch.job.params import JobParams
from personalize_batch.job.run import run_job, start_job
from personalize_batch.job.store import FAILED, JobStore
from personalize_batch.service.control import wait_batch_inference_job_active

EVIL = "<script>alert('x')</script>"


@pytest.fixture
def console():
    server = make_console(0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def request(server, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
    data = urlencode(body) if body is not None else None
    hdrs = {"Host": f"127.0.0.1:{server.server_port}"}
    if data is not None:
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    hdrs.update(headers or {})
    conn.request(method, path, body=data, headers=hdrs)
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read().decode()


def token(server) -> str:
    _, _, body = request(server, "GET", "/create")
    return re.search(r'name="token" value="([^"]+)"', body).group(1)


def test_binds_127_0_0_1_only_and_sends_a_strict_policy(console):
    assert console.server_address[0] == "127.0.0.1"
    status, headers, body = request(console, "GET", "/")
    assert status == 200
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert "No batch inference jobs yet" in body
    assert "<script" not in body


def test_foreign_host_and_cross_site_posts_are_refused(console, solutions, tmp_path):
    status, _, _ = request(console, "GET", "/", headers={"Host": "attacker.example:80"})
    assert status == 400
    form = {
        "jobName": "csrf",
        "solution": str(solutions["popularity-count"]),
        "input": str(EXAMPLES / "popularity.json"),
        "output": str(tmp_path),
    }
    assert request(console, "POST", "/create", form)[0] == 403  # no token
    assert request(console, "POST", "/create", {**form, "token": "guess"})[0] == 403
    status, _, _ = request(
        console,
        "POST",
        "/create",
        {**form, "token": token(console)},
        headers={"Origin": "https://attacker.example"},
    )
    assert status == 403
    assert JobStore().records() == []


def test_bad_form_input_shows_a_message_and_creates_no_job(console, solutions, tmp_path):
    up = str(solutions["user-personalization"])
    good = {
        "jobName": "good",
        "solution": up,
        "input": str(EXAMPLES / "users.json"),
        "output": str(tmp_path),
        "numResults": "5",
        "filter": "",
    }
    (tmp_path / "bad-filter.txt").write_text("INCLUDE ItemID WHERE")
    cases = [
        ({"solution": ""}, "Solution: required."),
        ({"solution": "", "input": ""}, "Solution and Input data: required."),
        ({"solution": str(tmp_path / "none.npz")}, "solution version not found"),
        (
            {"input": str(EXAMPLES / "items.json")},
            "the input does not fit the user-personalization solution: none of the 12 lines",
        ),
        ({"jobName": "bad name!"}, "invalid job name &#x27;bad name!&#x27;"),
        ({"numResults": "lots"}, "Number of results must be a whole number 1–500"),
        ({"numResults": "501"}, "Number of results must be a whole number 1–500"),
        ({"filter": "arn:pbatch:local:filter/no-such-file"}, "filter not found"),
        ({"filter": str(tmp_path / "bad-filter.txt")}, "expected"),
    ]
    for change, message in cases:
        status, _, body = request(
            console, "POST", "/create", {**good, **change, "token": token(console)}
        )
        assert status == 400, change
        alert = re.search(
            r'<div class="error" role="alert" id="error">(.*?)</div>', body, re.S
        ).group(1)
        assert message in alert, (change, alert)
        for key, value in {**good, **change}.items():  # the form keeps what was typed
            kind = "number" if key == "numResults" else "text"
            assert f'name="{key}" type="{kind}" value="{html.escape(value)}"' in body
    assert JobStore().records() == []
    status, headers, _ = request(console, "POST", "/create", {**good, "token": token(console)})
    assert (status, headers["Location"]) == (303, "/jobs/good")
    record = wait_batch_inference_job_active(JobStore(), batchInferenceJobArn="good", delay=0.1)
    assert record["numResults"] == 5


def test_everything_shown_is_escaped(console, solutions, tmp_path):
    store = JobStore()
    start_job(JobParams(solution=str(tmp_path / "s.npz"), input="in.json", job_name="evil"), store)
    store.update("evil", status=FAILED, failureReason=EVIL)
    hostile = tmp_path / "hostile.json"
    hostile.write_text('{"userId": "653", "note": "<img src=x onerror=alert(1)>"}\n')
    run_job(
        JobParams(
            solution=str(solutions["user-personalization"]),
            input=str(hostile),
            output=str(tmp_path),
            job_name="hostile-data",
        ),
        store,
    )
    pages = [
        request(console, "GET", "/")[2],
        request(console, "GET", "/jobs/evil")[2],
        request(console, "GET", "/jobs/hostile-data")[2],
        request(console, "GET", "/jobs/%3Cb%3Enope")[2],
    ]
    for body in pages:
        assert "<script" not in body and "<img" not in body and "<b>nope" not in body
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in pages[1]
    assert "Failure reason:" in pages[1]
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[2]  # the output preview
    assert "&lt;b&gt;nope" in pages[3]


def test_every_form_problem_is_shown_at_once(console, solutions, tmp_path):
    """They came one post at a time, and a bad job name and numResults=0 were missed
    while another field was wrong."""
    form = {
        "jobName": "bad name!",
        "solution": str(solutions["sims"]),
        "input": str(EXAMPLES / "users.json"),
        "output": "",
        "numResults": "0",
        "filter": "",
        "token": token(console),
    }
    status, _, body = request(console, "POST", "/create", form)
    assert status == 400
    items = re.findall(r"<li>(.*?)</li>", body)
    assert [html.unescape(i) for i in items] == [
        "Output location: required.",
        "invalid job name 'bad name!': 1-63 letters, digits, '-' or '_', starting with a "
        "letter or digit",
        "Number of results must be a whole number 1–500, not '0'.",
        "the input does not fit the sims solution: none of the 20 lines of "
        f'{EXAMPLES / "users.json"} has "itemId" (line 1: sims needs "itemId")',
    ]
    assert "4 problems; no job was created." in body
    for field in ("jobName", "numResults", "output", "input"):
        assert f'id="{field}" name="{field}"' in body
        assert f'aria-describedby="problem-{field}"' in body
    assert JobStore().records() == []


def test_delete_asks_first_and_refuses_a_running_job(console, solutions, tmp_path):
    store = JobStore()
    store.create({"jobName": "running", "solutionVersionArn": "x"})
    store.create({"jobName": "done", "solutionVersionArn": "x"})
    store.update("done", status="ACTIVE")
    status, _, body = request(console, "GET", "/jobs/done/delete")
    assert status == 200 and 'id="confirm-delete"' in body
    assert JobStore().exists("done")  # asking deletes nothing
    assert request(console, "POST", "/jobs/done/delete", {})[0] == 403  # no token
    status, headers, _ = request(console, "POST", "/jobs/done/delete", {"token": token(console)})
    assert (status, headers["Location"]) == (303, "/?deleted=done")
    assert not JobStore().exists("done")
    assert "Job done was deleted." in request(console, "GET", "/?deleted=done")[2]
    status, _, body = request(console, "POST", "/jobs/running/delete", {"token": token(console)})
    assert status == 409 and "only a finished job can be deleted" in body
    assert 'id="delete"' not in request(console, "GET", "/jobs/running")[2]


def test_segment_jobs_have_their_list_page_and_form(
    console, segment_solutions, solutions, tmp_path
):
    """The segment form creates a batch segment job (numResults above 500 allowed, blank
    for the solution's default), refuses a solution of the other kind, and each list
    shows its own kind."""
    from personalize_batch.service.control import describe_batch_segment_job

    items = tmp_path / "items.json"
    items.write_text("".join(f'{{"itemId": "{i}"}}\n' for i in segment_solutions["items"][:4]))
    status, _, body = request(console, "GET", "/create-segment-job")
    assert status == 200 and "Batch segment job name" in body and 'name="filter"' in body
    assert 'name="numResults" type="number" value=""' in body
    good = {
        "jobName": "segment",
        "solution": str(segment_solutions["item-affinity"]),
        "input": str(items),
        "output": str(tmp_path / "out"),
        "numResults": "",
    }
    (tmp_path / "items.filter").write_text('EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")')
    cases = [
        ({"numResults": "5000001"}, "Number of results must be a whole number 1–5,000,000"),
        ({"solution": str(solutions["sims"])}, "a batch segment job needs a USER_SEGMENTATION"),
        ({"filter": str(tmp_path / "items.filter")}, "an ItemID filter takes items out"),
    ]
    for change, message in cases:
        form = {**good, **change, "token": token(console)}
        status, _, body = request(console, "POST", "/create-segment-job", form)
        assert status == 400 and message in body, (change, body)
    form = {**good, "solution": good["solution"], "token": token(console)}
    status, _, body = request(console, "POST", "/create", {**form, "jobName": "other"})
    assert status == 400 and "a batch inference job needs a solution that answers items" in body
    assert JobStore().records() == []
    unrated = 'EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("rating")'
    (tmp_path / "users.filter").write_text(unrated)
    status, headers, _ = request(
        console,
        "POST",
        "/create-segment-job",
        {**form, "numResults": "600", "filter": str(tmp_path / "users.filter")},
    )
    assert (status, headers["Location"]) == (303, "/jobs/segment")
    for _ in range(300):
        job = describe_batch_segment_job(JobStore(), batchSegmentJobArn="segment")
        if job["batchSegmentJob"]["status"] in ("ACTIVE", "CREATE FAILED"):
            break
        time.sleep(0.1)
    assert job["batchSegmentJob"]["status"] == "ACTIVE"
    assert job["batchSegmentJob"]["numResults"] == 600
    assert job["batchSegmentJob"]["filterExpression"] == unrated
    _, _, body = request(console, "GET", "/segment-jobs")
    assert "Batch segment jobs (1)" in body and 'data-job="segment"' in body
    _, _, body = request(console, "GET", "/")
    assert "Batch inference jobs (0)" in body and "No batch inference jobs yet" in body
    _, _, body = request(console, "GET", "/jobs/segment")
    assert "Job details (describe-batch-segment-job)" in body and "recommendedUsers" in body
    assert '<a href="/segment-jobs">← Batch segment jobs</a>' in body
