"""Batch segment jobs as Personalize's control plane has them (A.17): the SDK's
create_batch_segment_job / describe_batch_segment_job / list_batch_segment_jobs and its
paginator, the aws-shaped commands, and the job store's two kinds. botocore's service
model is the oracle for shapes, as in test_sdk: a real boto3 client replays pbatch's
answers through its Stubber, which validates each response against the operation's
output shape."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import boto3
import orjson
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from botocore.stub import Stubber
from click.testing import CliRunner
from test_sdk import MODELS, ROLE, check_max

import personalize_batch
from personalize_batch.arns import SEGMENT
from personalize_batch.cli import main
from personalize_batch.job.params import JobParams
from personalize_batch.job.run import start_job
from personalize_batch.job.store import JobStore


def pbatch(*args: Any):
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="pbatch")


def items_file(segment_solutions, folder, n: int = 12) -> str:
    path = folder / "items.json"
    path.write_text(
        "".join(json.dumps({"itemId": i}) + "\n" for i in segment_solutions["items"][:n])
    )
    return str(path)


def until_done(personalize, arn: str, sleep) -> dict:
    while True:
        job = personalize.describe_batch_segment_job(batchSegmentJobArn=arn)["batchSegmentJob"]
        if job["status"] in ("ACTIVE", "CREATE FAILED"):
            return job
        sleep(0.1)


def script(personalize, *, model: str, wrong: str, items: str, out: str, sleep) -> dict:
    """A segment mailing as written for boto3 against Amazon Personalize."""
    arn = personalize.create_batch_segment_job(
        jobName="mailing",
        solutionVersionArn=model,
        jobInput={"s3DataSource": {"path": items}},
        jobOutput={"s3DataDestination": {"path": out}},
        numResults=600,
        roleArn=ROLE,
    )["batchSegmentJobArn"]
    refused = {}
    for name, solution in (("mailing", model), ("other", wrong)):
        try:
            personalize.create_batch_segment_job(
                jobName=name,
                solutionVersionArn=solution,
                jobInput={"s3DataSource": {"path": items}},
                jobOutput={"s3DataDestination": {"path": out + "-again"}},
                roleArn=ROLE,
            )
            refused[name] = "created"
        except ClientError as exc:
            refused[name] = exc.response["Error"]["Code"]
    job = until_done(personalize, arn, sleep)
    listed = personalize.list_batch_segment_jobs(solutionVersionArn=job["solutionVersionArn"])
    try:
        personalize.describe_batch_segment_job(batchSegmentJobArn=arn + "-gone")
        missing = "found"
    except ClientError as exc:
        missing = exc.response["Error"]["Code"]
    return {
        "arn": arn,
        "final": (job["status"], job["numResults"], job["jobOutput"], job["roleArn"]),
        "refused": refused,
        "listed": [j["jobName"] for j in listed["batchSegmentJobs"]],
        "missing": missing,
    }


class Recorder:
    """A pbatch client that records each call and its answer or error, for replay."""

    def __init__(self, client: Any, calls: list[tuple]) -> None:
        self._client, self._calls = client, calls

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            try:
                response = method(**kwargs)
            except ClientError as exc:
                self._calls.append((name, kwargs, None, exc))
                raise
            self._calls.append((name, kwargs, response, None))
            return response

        return call


def test_a_segment_job_through_the_sdk_replays_on_boto3(segment_solutions, solutions, tmp_path):
    model, wrong = str(segment_solutions["item-affinity"]), str(solutions["user-personalization"])
    items, out = items_file(segment_solutions, tmp_path), str(tmp_path / "out")
    calls: list[tuple] = []
    mine = script(
        Recorder(personalize_batch.client("personalize"), calls),
        model=model,
        wrong=wrong,
        items=items,
        out=out,
        sleep=time.sleep,
    )
    assert mine["arn"] == "arn:pbatch:local:batch-segment-job/mailing"
    assert mine["final"] == ("ACTIVE", 600, {"s3DataDestination": {"path": out}}, ROLE)
    assert mine["refused"] == {
        "mailing": "ResourceAlreadyExistsException",
        "other": "InvalidInputException",
    }
    assert (mine["listed"], mine["missing"]) == (["mailing"], "ResourceNotFoundException")
    # the same bytes as `pbatch run` of the same input and numResults
    result = pbatch("run", "-s", model, "-i", items, "-o", "-", "-n", "600", "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "items.json.out").read_text() == result.stdout

    boto = boto3.client(
        "personalize",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        endpoint_url="https://personalize.invalid",
    )
    stubber = Stubber(boto)
    for method, kwargs, response, error in calls:
        operation = MODELS["personalize"].operation_model(boto.meta.method_to_api_mapping[method])
        if error is None:
            stubber.add_response(method, response, expected_params=kwargs)
            body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
            check_max(body, operation.output_shape, operation.name)
        else:
            code = error.response["Error"]["Code"]
            assert code in [s.name for s in operation.error_shapes], (operation.name, code)
            stubber.add_client_error(
                method, service_error_code=code, service_message=str(error), expected_params=kwargs
            )
    with stubber:
        theirs = script(boto, model=model, wrong=wrong, items=items, out=out, sleep=lambda s: None)
        stubber.assert_no_pending_responses()
    assert theirs == mine


def test_described_members_are_the_models(segment_solutions, tmp_path):
    """The SDK's segment job and summary hold exactly members of botocore's shapes; the
    record (describe-batch-segment-job) adds pbatch's counts."""
    shapes = MODELS["personalize"]
    job_members = set(shapes.shape_for("BatchSegmentJob").members)
    summary_members = set(shapes.shape_for("BatchSegmentJobSummary").members)
    client = personalize_batch.client("personalize")
    client.create_batch_segment_job(
        jobName="shape",
        solutionVersionArn=str(segment_solutions["item-affinity"]),
        jobInput={"s3DataSource": {"path": items_file(segment_solutions, tmp_path)}},
        jobOutput={"s3DataDestination": {"path": str(tmp_path / "out")}},
        roleArn=ROLE,
        tags=[{"tagKey": "team", "tagValue": "crm"}],
    )
    job = until_done(client, "shape", time.sleep)
    assert set(job) <= job_members
    assert {"jobName", "batchSegmentJobArn", "numResults", "jobInput", "jobOutput"} <= set(job)
    [summary] = client.list_batch_segment_jobs()["batchSegmentJobs"]
    assert set(summary) <= summary_members and summary["status"] == "ACTIVE"
    record = JobStore().get("shape")
    assert record["tags"] == [{"tagKey": "team", "tagValue": "crm"}]
    assert record["linesRead"] == 12 and record["numResults"] == 25  # 1 % of 802 users is 8
    assert "batchInferenceJobArn" not in record and "batchInferenceJobConfig" not in record


def test_refusals_name_the_request_and_create_no_job(segment_solutions, solutions, tmp_path):
    client = personalize_batch.client("personalize")
    model = str(segment_solutions["item-affinity"])
    items = items_file(segment_solutions, tmp_path)
    (tmp_path / "filter.txt").write_text('EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")')
    invalid = client.exceptions.InvalidInputException
    base = {
        "jobName": "j",
        "solutionVersionArn": model,
        "jobInput": {"s3DataSource": {"path": items}},
        "jobOutput": {"s3DataDestination": {"path": str(tmp_path / "o")}},
        "roleArn": ROLE,
    }
    users = str(tmp_path / "users.json")
    (tmp_path / "users.json").write_text('{"userId": "653"}\n')
    cases = [
        ({"numResults": 0}, invalid, r"numResults must be 1-500 \(1-5,000,000 users per line"),
        ({"numResults": 5_000_001}, invalid, "numResults must be 1-500"),
        ({"numResults": "9"}, ParamValidationError, "Invalid type for parameter numResults"),
        ({"solutionVersionArn": str(solutions["sims"])}, invalid, "needs a USER_SEGMENTATION"),
        ({"jobInput": {"s3DataSource": {"path": users}}}, invalid, 'item-affinity needs "itemId"'),
        ({"filterArn": str(tmp_path / "filter.txt")}, invalid, "an ItemID filter takes items"),
        ({"jobName": "a b"}, invalid, "invalid job name"),
        ({"batchInferenceJobConfig": {}}, ParamValidationError, "Unknown parameter"),
    ]
    for overrides, error, message in cases:
        with pytest.raises(error, match=message):
            client.create_batch_segment_job(**{**base, **overrides})
    with pytest.raises(invalid, match="a batch inference job needs a solution that answers items"):
        client.create_batch_inference_job(**base)
    with pytest.raises(ParamValidationError, match="batchSegmentJobArn"):
        client.describe_batch_segment_job()
    assert client.list_batch_segment_jobs()["batchSegmentJobs"] == []
    assert client.list_batch_inference_jobs()["batchInferenceJobs"] == []


def test_each_list_shows_its_own_kind_and_pages(tmp_path):
    store = JobStore()
    for i in range(5):
        start_job(
            JobParams(
                solution=str(tmp_path / "m.npz"),
                input="in.json",
                output=str(tmp_path),
                job_name=f"job-{i}",
                kind=SEGMENT if i % 2 == 0 else None,
            ),
            store,
        )
    client = personalize_batch.client("personalize")
    names = [j["jobName"] for j in client.list_batch_segment_jobs()["batchSegmentJobs"]]
    assert names == ["job-4", "job-2", "job-0"]
    names = [j["jobName"] for j in client.list_batch_inference_jobs()["batchInferenceJobs"]]
    assert names == ["job-3", "job-1"]
    pages, token = [], None
    while True:
        page = client.list_batch_segment_jobs(
            maxResults=2, **({"nextToken": token} if token else {})
        )
        pages.append([j["jobName"] for j in page["batchSegmentJobs"]])
        token = page.get("nextToken")
        if token is None:
            break
    assert pages == [["job-4", "job-2"], ["job-0"]]
    assert client.can_paginate("list_batch_segment_jobs")
    paginator = client.get_paginator("list_batch_segment_jobs")
    first = paginator.paginate(PaginationConfig={"MaxItems": 2, "PageSize": 1}).build_full_result()
    assert [j["jobName"] for j in first["batchSegmentJobs"]] == ["job-4", "job-2"]
    rest = paginator.paginate(PaginationConfig={"StartingToken": first["NextToken"]})
    assert [j["jobName"] for j in rest.build_full_result()["batchSegmentJobs"]] == ["job-0"]
    with pytest.raises(client.exceptions.InvalidNextTokenException):
        client.list_batch_segment_jobs(nextToken="garbage")
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="segment job named"):
        client.describe_batch_segment_job(batchSegmentJobArn="job-1")  # an inference job
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="inference job named"):
        client.describe_batch_inference_job(
            batchInferenceJobArn="arn:pbatch:local:batch-segment-job/job-2"
        )
    with pytest.raises(client.exceptions.ResourceAlreadyExistsException, match="segment job"):
        client.create_batch_inference_job(
            jobName="job-0",
            solutionVersionArn="x.npz",
            jobInput={"s3DataSource": {"path": "in.json"}},
            jobOutput={"s3DataDestination": {"path": "out"}},
            roleArn=ROLE,
        )
    # pbatch jobs: both kinds, each under its own key; --kind one of them
    both = orjson.loads(pbatch("jobs", "list", "--max-results", "3").stdout)
    assert [j["jobName"] for j in both["batchSegmentJobs"]] == ["job-4", "job-2"]
    assert [j["batchInferenceJobArn"] for j in both["batchInferenceJobs"]] == [
        "arn:pbatch:local:batch-inference-job/job-3"
    ]
    assert both["nextToken"] == "3"
    only = orjson.loads(pbatch("jobs", "list", "--kind", "inference").stdout)
    assert set(only) == {"batchInferenceJobs", "nextToken"}
    assert set(orjson.loads(pbatch("jobs", "describe", "job-2").stdout)) == {"batchSegmentJob"}
    assert set(orjson.loads(pbatch("jobs", "describe", "job-1").stdout)) == {"batchInferenceJob"}


def test_aws_shaped_commands_run_a_segment_job_like_pbatch_run(segment_solutions, tmp_path):
    model = str(segment_solutions["item-attribute-affinity"])
    items = tmp_path / "genres.json"
    items.write_text(
        '{"itemAttributes": "ITEMS.genres = \\"Comedy\\""}\n'
        '{"itemAttributes": "ITEMS.genres = \\"Western\\""}\n'
    )
    result = pbatch(
        "create-batch-segment-job",
        "--job-name",
        "genres",
        "--solution-version-arn",
        model,
        "--job-input",
        f"s3DataSource={{path={items}}}",
        "--job-output",
        f"s3DataDestination={{path={tmp_path / 'out'}}}",
        "--num-results",
        "40",
        "--region",
        "us-west-2",
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == {
        "batchSegmentJobArn": "arn:pbatch:local:batch-segment-job/genres"
    }
    deadline = time.monotonic() + 60
    while True:
        result = pbatch("describe-batch-segment-job", "--batch-segment-job-arn", "genres")
        job = orjson.loads(result.stdout)["batchSegmentJob"]
        if job["status"] in ("ACTIVE", "CREATE FAILED") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (job["status"], job["linesRead"], job["linesWithErrors"]) == ("ACTIVE", 2, 1)
    expected = pbatch("run", "-s", model, "-i", items, "-o", "-", "-n", "40", "-q")
    assert expected.exit_code == 3
    assert (tmp_path / "out" / "genres.json.out").read_text() == expected.stdout
    listed = orjson.loads(pbatch("list-batch-segment-jobs", "--max-items", "1").stdout)
    assert listed["NextToken"] == "1"  # pbatch run's segment job is the newest
    assert [j["jobName"] for j in listed["batchSegmentJobs"]] != ["genres"]
    listed = orjson.loads(pbatch("list-batch-segment-jobs", "--starting-token", "1").stdout)
    assert [j["jobName"] for j in listed["batchSegmentJobs"]] == ["genres"]
    assert orjson.loads(pbatch("list-batch-inference-jobs").stdout) == {"batchInferenceJobs": []}
    result = pbatch("describe-batch-inference-job", "--batch-inference-job-arn", "genres")
    assert (result.exit_code, result.stderr) == (
        1,
        "pbatch: error: no batch inference job named 'genres'\n",
    )
    result = pbatch(
        "create-batch-segment-job",
        "--job-name",
        "wrong",
        "--solution-version-arn",
        model,
        "--job-input",
        f"s3DataSource={{path={items}}}",
        "--job-output",
        f"s3DataDestination={{path={tmp_path / 'o2'}}}",
        "--num-results",
        "5000001",
    )
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "pbatch: error: numResults must be 1-500 (1-5,000,000 users per line of a segment "
        "job), not 5000001\n"
    )


def test_a_user_filter_on_create_batch_segment_job_is_pbatch_runs(segment_solutions, tmp_path):
    """--filter-arn names a file of a UserID filter; the background job writes what
    `pbatch run --filter-file` writes, and the record keeps the expression and filterArn."""
    model = str(segment_solutions["item-affinity"])
    items = items_file(segment_solutions, tmp_path)
    text = 'EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("rating")'
    (tmp_path / "unrated.filter").write_text(text + "\n")
    result = pbatch(
        "create-batch-segment-job",
        "--job-name",
        "unrated",
        "--solution-version-arn",
        model,
        "--filter-arn",
        f"arn:pbatch:local:filter/{tmp_path / 'unrated.filter'}",
        "--job-input",
        f"s3DataSource={{path={items}}}",
        "--job-output",
        f"s3DataDestination={{path={tmp_path / 'out'}}}",
        "--num-results",
        "30",
    )
    assert result.exit_code == 0, result.output
    deadline = time.monotonic() + 60
    while True:
        result = pbatch("describe-batch-segment-job", "--batch-segment-job-arn", "unrated")
        job = orjson.loads(result.stdout)["batchSegmentJob"]
        if job["status"] in ("ACTIVE", "CREATE FAILED") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert job["status"] == "ACTIVE" and job["filterExpression"] == text
    assert job["filterArn"] == f"arn:pbatch:local:filter/{tmp_path / 'unrated.filter'}"
    expected = pbatch(
        "run", "-s", model, "-i", items, "-o", "-", "-n", "30", "-q",
        "--filter-file", tmp_path / "unrated.filter",
    )  # fmt: skip
    assert expected.exit_code == 0
    assert (tmp_path / "out" / "items.json.out").read_text() == expected.stdout


def test_a_store_made_before_segment_jobs_opens_with_its_jobs_as_inference_jobs(tmp_path):
    home = tmp_path / "old"
    home.mkdir()
    db = sqlite3.connect(home / "jobs.db")
    db.executescript(
        "CREATE TABLE jobs (name TEXT PRIMARY KEY, solution TEXT NOT NULL, status TEXT NOT "
        "NULL, created TEXT NOT NULL, pid INTEGER, pid_start TEXT, host TEXT, record TEXT NOT "
        "NULL);"
    )
    record = {
        "jobName": "old",
        "batchInferenceJobArn": "arn:pbatch:local:batch-inference-job/old",
        "solutionVersionArn": "arn:pbatch:local:solution-version/m.npz",
        "status": "ACTIVE",
        "creationDateTime": "2026-01-01T00:00:00.000+00:00",
    }
    db.execute(
        "INSERT INTO jobs VALUES (?, ?, ?, ?, NULL, NULL, NULL, ?)",
        (
            "old",
            record["solutionVersionArn"],
            "ACTIVE",
            record["creationDateTime"],
            json.dumps(record),
        ),
    )
    db.commit()
    db.close()
    stores = [JobStore(home), JobStore(home)]  # the second finds the column added
    listed = stores[1].list(kind=None)
    assert [j["jobName"] for j in listed["batchInferenceJobs"]] == ["old"]
    assert listed["batchSegmentJobs"] == []
    assert stores[0].get("old", "batch-inference-job")["status"] == "ACTIVE"
