"""The boto3-shaped SDK (A.15): one pipeline script runs against pbatch's client and
against real boto3 clients whose responses are pbatch's, replayed through botocore's
Stubber. botocore's service model is the oracle, offline: boto3 validates every request
the script makes, and the Stubber validates every response pbatch gave against the
operation's output shape (types, required and unknown members). The model's `max`
bounds, which botocore does not check, are checked here too; its ARN patterns are not
(pbatch's ARNs are `arn:pbatch:local:…`, which Personalize's patterns do not match).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from botocore.loaders import Loader
from botocore.model import ServiceModel, Shape
from botocore.stub import Stubber
from botocore.validate import ParamValidator
from conftest import EXAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st

import personalize_batch
from personalize_batch.job.params import JobParams
from personalize_batch.job.run import run_job, start_job
from personalize_batch.job.store import JobStore
from personalize_batch.service.sdk import Paginator

ROLE = "arn:aws:iam::123456789012:role/PersonalizeBatch"
USERS = (EXAMPLES / "users.json").read_bytes()


def service_model(name: str) -> ServiceModel:
    return ServiceModel(Loader().load_service_model(name, "service-2"), name)


MODELS = {name: service_model(name) for name in ("personalize", "personalize-runtime")}


def check_max(value: Any, shape: Shape, where: str = "") -> None:
    """The model's `max` bounds and enums, which botocore's validator leaves out."""
    meta = shape.metadata
    if shape.type_name == "structure":
        for key, member in value.items():
            check_max(member, shape.members[key], f"{where}.{key}")
    elif shape.type_name == "list":
        assert len(value) <= meta.get("max", len(value)), where
        for i, item in enumerate(value):
            check_max(item, shape.member, f"{where}[{i}]")
    elif shape.type_name == "map":
        for key, item in value.items():
            check_max(item, shape.value, f"{where}[{key}]")
    elif shape.type_name == "string":
        assert len(value) <= meta.get("max", len(value)), (where, len(value))
        if shape.enum:
            assert value in shape.enum, (where, value)
    elif shape.type_name in ("integer", "long", "double"):
        assert value <= meta.get("max", value), where


class Recorder:
    """A pbatch client that records each call, its answer or its error, for replay."""

    def __init__(self, client: Any, service: str, calls: list[tuple]) -> None:
        self._client, self._service, self._calls = client, service, calls
        self.exceptions = client.exceptions

    def get_paginator(self, operation: str) -> Paginator:
        assert self._client.can_paginate(operation)
        return Paginator(self.list_batch_inference_jobs)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            try:
                response = method(**kwargs)
            except ClientError as exc:
                self._calls.append((self._service, name, kwargs, None, exc))
                raise
            self._calls.append((self._service, name, kwargs, response, None))
            return response

        return call


def pipeline(personalize: Any, runtime: Any, *, up: str, ranking: str, bucket: str, sleep) -> dict:
    """A nightly pipeline as written for boto3 against Amazon Personalize."""
    arns = []
    for name in ("nightly-a", "nightly-b"):
        response = personalize.create_batch_inference_job(
            jobName=name,
            solutionVersionArn=up,
            jobInput={"s3DataSource": {"path": f"s3://{bucket}/in/users.json"}},
            jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/{name}/"}},
            numResults=5,
            roleArn=ROLE,
            batchInferenceJobConfig={"itemExplorationConfig": {"explorationWeight": "0.3"}},
        )
        arns.append(response["batchInferenceJobArn"])
    try:
        personalize.create_batch_inference_job(
            jobName="nightly-a",
            solutionVersionArn=up,
            jobInput={"s3DataSource": {"path": f"s3://{bucket}/in/users.json"}},
            jobOutput={"s3DataDestination": {"path": f"s3://{bucket}/again/"}},
            roleArn=ROLE,
        )
        duplicate = "created twice"
    except personalize.exceptions.ResourceAlreadyExistsException as exc:
        duplicate = exc.response["Error"]["Code"]
    final = {}
    for arn in arns:
        while True:
            job = personalize.describe_batch_inference_job(batchInferenceJobArn=arn)
            job = job["batchInferenceJob"]
            if job["status"] in ("ACTIVE", "CREATE FAILED"):
                final[job["jobName"]] = (job["status"], job["jobOutput"], job["roleArn"])
                break
            sleep(0.2)
    pages = personalize.get_paginator("list_batch_inference_jobs").paginate(
        solutionVersionArn=job["solutionVersionArn"], PaginationConfig={"PageSize": 1}
    )
    listed = [[j["jobName"] for j in page["batchInferenceJobs"]] for page in pages]
    try:
        personalize.describe_batch_inference_job(batchInferenceJobArn=arns[0] + "-gone")
        missing = "found"
    except ClientError as exc:
        missing = exc.response["Error"]["Code"]
    recs = runtime.get_recommendations(campaignArn=up, userId="653", numResults=3)
    ranked = runtime.get_personalized_ranking(
        campaignArn=ranking, userId="8", inputList=["1300854", "0770828", "unknown"]
    )
    return {
        "final": final,
        "duplicate": duplicate,
        "listed": listed,
        "missing": missing,
        "recs": [i["itemId"] for i in recs["itemList"]],
        "ranked": [i["itemId"] for i in ranked["personalizedRanking"]],
        "created": job["creationDateTime"].year,
    }


def test_one_script_runs_on_pbatch_and_on_boto3(solutions, s3_env, s3_client, s3_bucket, tmp_path):
    s3_client.put_object(Bucket=s3_bucket, Key="in/users.json", Body=USERS)
    up, ranking = str(solutions["user-personalization"]), str(solutions["personalized-ranking"])
    calls: list[tuple] = []
    mine = pipeline(
        Recorder(personalize_batch.client("personalize"), "personalize", calls),
        Recorder(personalize_batch.client("personalize-runtime"), "personalize-runtime", calls),
        up=up,
        ranking=ranking,
        bucket=s3_bucket,
        sleep=time.sleep,
    )
    assert mine["duplicate"] == "ResourceAlreadyExistsException"
    assert mine["missing"] == "ResourceNotFoundException"
    for name in ("nightly-a", "nightly-b"):
        path = f"s3://{s3_bucket}/{name}/"
        assert mine["final"][name] == ("ACTIVE", {"s3DataDestination": {"path": path}}, ROLE)
    assert mine["listed"] == [["nightly-b"], ["nightly-a"]]  # newest first, one per page
    assert mine["recs"] == ["1670345", "1300854", "1535108"]
    assert mine["ranked"][-1] == "unknown"

    # the same bytes as a synchronous local run of the same job
    run_job(
        JobParams(
            solution=up,
            input=str(EXAMPLES / "users.json"),
            output=str(tmp_path),
            num_results=5,
            job_name="local",
        ),
        JobStore(),
    )
    local = (tmp_path / "users.json.out").read_bytes()
    got = s3_client.get_object(Bucket=s3_bucket, Key="nightly-a/users.json.out")["Body"].read()
    assert got == local

    # replay: real boto3 clients, pbatch's answers; botocore validates both directions
    clients = {
        name: boto3.client(
            name,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="y",
            endpoint_url="https://personalize.invalid",
        )
        for name in MODELS
    }
    stubbers = {name: Stubber(c) for name, c in clients.items()}
    for service, method, kwargs, response, error in calls:
        operation = MODELS[service].operation_model(
            clients[service].meta.method_to_api_mapping[method]
        )
        if error is None:
            stubbers[service].add_response(method, response, expected_params=kwargs)
            body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
            check_max(body, operation.output_shape, operation.name)
        else:
            code = error.response["Error"]["Code"]
            assert code in [s.name for s in operation.error_shapes], (operation.name, code)
            stubbers[service].add_client_error(
                method, service_error_code=code, service_message=str(error), expected_params=kwargs
            )
    with stubbers["personalize"], stubbers["personalize-runtime"]:
        theirs = pipeline(
            clients["personalize"],
            clients["personalize-runtime"],
            up=up,
            ranking=ranking,
            bucket=s3_bucket,
            sleep=lambda s: None,
        )
        for stubber in stubbers.values():
            stubber.assert_no_pending_responses()
    assert theirs == mine


def test_the_oracle_can_fail():
    """A response with a pbatch-only key, or a null where boto3 leaves a key out, is refused."""
    stubber = Stubber(
        boto3.client(
            "personalize", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
        )
    )
    with pytest.raises(ParamValidationError, match="linesRead"):
        stubber.add_response(
            "describe_batch_inference_job",
            {"batchInferenceJob": {"jobName": "a", "linesRead": 3}},
        )
    with pytest.raises(ParamValidationError, match="nextToken"):
        stubber.add_response(
            "list_batch_inference_jobs", {"batchInferenceJobs": [], "nextToken": None}
        )


def _create(client: Any, **overrides: Any) -> dict:
    request = {
        "jobName": "j",
        "solutionVersionArn": overrides.pop("solution", ""),
        "jobInput": {"s3DataSource": {"path": str(EXAMPLES / "users.json")}},
        "jobOutput": {"s3DataDestination": {"path": overrides.pop("out", "/tmp")}},
        "roleArn": ROLE,
    }
    request.update(overrides)
    return client.create_batch_inference_job(**request)


def test_older_shapes_are_accepted_and_role_recorded(solutions, tmp_path):
    client = personalize_batch.client("personalize", home=tmp_path / "home")
    up = str(solutions["user-personalization"])
    shapes = {
        "old-sdk": ({"S3InputPath": str(EXAMPLES / "users.json")}, {"S3OutputPath": "a"}),
        "old-cli": ({"s3DataSource": str(EXAMPLES / "users.json")}, {"s3DataSource": "b"}),
    }
    for name, (job_input, job_output) in shapes.items():
        out = tmp_path / job_output.popitem()[1]
        job_output = {"S3OutputPath": str(out)} if name == "old-sdk" else {"s3DataSource": str(out)}
        arn = client.create_batch_inference_job(
            jobName=name,
            solutionVersionArn=up,
            jobInput=job_input,
            jobOutput=job_output,
            roleArn=ROLE,
        )["batchInferenceJobArn"]
        assert arn == f"arn:pbatch:local:batch-inference-job/{name}"
        job = client.describe_batch_inference_job(batchInferenceJobArn=arn)["batchInferenceJob"]
        assert job["jobInput"] == {"s3DataSource": {"path": str(EXAMPLES / "users.json")}}
        assert job["jobOutput"] == {"s3DataDestination": {"path": str(out)}}
        assert job["roleArn"] == ROLE
        assert job["status"] in ("PENDING", "IN PROGRESS", "ACTIVE")
    from personalize_batch.service.control import wait_batch_inference_job_active

    store = JobStore(tmp_path / "home")
    for name in shapes:
        record = wait_batch_inference_job_active(store, batchInferenceJobArn=name, delay=0.1)
        assert Path(record["outputs"][0]).read_bytes().count(b"\n") == 20


def test_refused_requests_raise_boto3_names_and_create_no_job(solutions, tmp_path):
    client = personalize_batch.client("personalize")
    up = str(solutions["user-personalization"])
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(b"not a solution")
    other_sha = "0" * 64
    invalid, missing = (
        client.exceptions.InvalidInputException,
        client.exceptions.ResourceNotFoundException,
    )
    cases = [
        ({"jobName": "-x"}, invalid, "invalid job name"),
        ({"solution": str(tmp_path / "nope.npz")}, missing, "solution version not found"),
        ({"solution": str(damaged)}, invalid, "damaged.npz"),
        (
            {"solution": f"arn:pbatch:local:solution-version/{up}@sha256:{other_sha}"},
            missing,
            "the file was replaced",
        ),
        (
            {"solution": "arn:aws:personalize:us-east-1:1:solution/x"},
            invalid,
            "not a pbatch solution",
        ),
        (
            {"jobInput": {"s3DataSource": {"path": str(EXAMPLES / "items.json")}}},
            invalid,
            "does not fit the user-personalization solution: none of the 12 lines of "
            '.*items.json has "userId" \\(line 1: user-personalization needs "userId"\\)',
        ),
        (
            {"jobInput": {"s3DataSource": {"path": str(tmp_path / "none.json")}}},
            invalid,
            "input not found",
        ),
        ({"jobInput": {"s3DataSource": {"path": "-"}}}, invalid, "use `pbatch run`"),
        ({"jobInput": {"bucket": "x"}}, invalid, "jobInput has no 'bucket'"),
        ({"numResults": 0}, invalid, "numResults must be 1-500"),
        ({"numResults": True}, invalid, "numResults must be an integer"),
        ({"filterArn": "arn:pbatch:local:filter/no-such-file"}, missing, "filter not found"),
        ({"filterArn": "arn:aws:personalize:us-east-1:1:filter/f"}, invalid, "expected arn:"),
        (
            {"batchInferenceJobConfig": {"rankingInfluence": {"POPULARITY": 0.5}}},
            invalid,
            "rankingInfluence is not supported",
        ),
        (
            {"batchInferenceJobConfig": {"itemExplorationConfig": {"explorationWeight": 0.3}}},
            invalid,
            "values are strings",
        ),
        (
            {"batchInferenceJobConfig": {"itemExplorationConfig": {"explorationWeight": "2"}}},
            invalid,
            "explorationWeight must be 0.0-1.0",
        ),
        ({"batchInferenceJobMode": "THEME_GENERATION"}, invalid, "not supported"),
    ]
    for overrides, error, message in cases:
        overrides.setdefault("solution", up)
        with pytest.raises(error, match=message) as info:
            _create(client, **overrides)
        assert isinstance(info.value, ClientError)
        assert info.value.operation_name == "CreateBatchInferenceJob"
    with pytest.raises(ParamValidationError, match='Unknown parameter in input: "jobname"'):
        _create(client, solution=up, jobname="lower-case")
    assert client.list_batch_inference_jobs()["batchInferenceJobs"] == []


def test_list_pages_tokens_and_solution_filter(tmp_path):
    store = JobStore()
    for i in range(5):
        solution = str(tmp_path / ("even.npz" if i % 2 == 0 else "odd.npz"))
        start_job(
            JobParams(
                solution=solution, input="in.json", output=str(tmp_path), job_name=f"job-{i}"
            ),
            store,
        )
    client = personalize_batch.client("personalize")
    pages, token = [], None
    while True:
        kwargs = {"maxResults": 2} | ({"nextToken": token} if token else {})
        page = client.list_batch_inference_jobs(**kwargs)
        pages.append([j["jobName"] for j in page["batchInferenceJobs"]])
        token = page.get("nextToken")
        if token is None:
            break
    assert pages == [["job-4", "job-3"], ["job-2", "job-1"], ["job-0"]]
    paginator = client.get_paginator("list_batch_inference_jobs")
    first = paginator.paginate(PaginationConfig={"MaxItems": 3, "PageSize": 2}).build_full_result()
    assert [j["jobName"] for j in first["batchInferenceJobs"]] == ["job-4", "job-3", "job-2"]
    rest = paginator.paginate(PaginationConfig={"StartingToken": first["NextToken"]})
    assert [j["jobName"] for j in rest.build_full_result()["batchInferenceJobs"]] == [
        "job-1",
        "job-0",
    ]
    whole = paginator.paginate(PaginationConfig={"MaxItems": 5}).build_full_result()
    assert len(whole["batchInferenceJobs"]) == 5 and "NextToken" not in whole
    even = str(tmp_path / "even.npz")
    for ref in (even, f"arn:pbatch:local:solution-version/{even}"):
        page = client.list_batch_inference_jobs(solutionVersionArn=ref)
        assert [j["jobName"] for j in page["batchInferenceJobs"]] == ["job-4", "job-2", "job-0"]
        assert "nextToken" not in page
    with pytest.raises(client.exceptions.InvalidNextTokenException):
        client.list_batch_inference_jobs(nextToken="garbage")
    with pytest.raises(client.exceptions.InvalidInputException, match="1-100"):
        client.list_batch_inference_jobs(maxResults=101)


def test_exceptions_are_boto3_like():
    from personalize_batch import ResourceNotFoundException

    client = personalize_batch.client("personalize", region_name="eu-west-1")
    assert client.exceptions.ResourceNotFoundException is ResourceNotFoundException
    assert issubclass(ResourceNotFoundException, ClientError)
    with pytest.raises(ClientError) as info:
        client.describe_batch_inference_job(
            batchInferenceJobArn="arn:pbatch:local:batch-inference-job/x"
        )
    assert str(info.value) == (
        "An error occurred (ResourceNotFoundException) when calling the "
        "DescribeBatchInferenceJob operation: no batch inference job named 'x'"
    )
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ValueError, match="no 's3' client"):
        personalize_batch.client("s3")


def test_runtime_client(solutions, tmp_path):
    runtime = personalize_batch.client("personalize-runtime")
    up, sims = str(solutions["user-personalization"]), str(solutions["sims"])
    by_path = runtime.get_recommendations(campaignArn=up, userId="653", numResults=2)
    by_arn = runtime.get_recommendations(
        recommenderArn=f"arn:pbatch:local:campaign/{up}", userId="653", numResults=2
    )
    assert (
        by_path["itemList"]
        == by_arn["itemList"]
        == [
            {"itemId": "1670345", "score": 0.75687},
            {"itemId": "1300854", "score": 0.0637315},
        ]
    )
    assert by_path["recommendationId"] == by_arn["recommendationId"]
    similar = runtime.get_recommendations(solution=sims, itemId="1300854", numResults=3)
    assert [i["itemId"] for i in similar["itemList"]] == ["1951261", "2302755", "1623205"]
    invalid = runtime.exceptions.InvalidInputException
    with pytest.raises(invalid, match="give one of campaignArn"):
        runtime.get_recommendations(userId="653")
    with pytest.raises(runtime.exceptions.ResourceNotFoundException):
        runtime.get_recommendations(campaignArn=str(tmp_path / "gone.npz"), userId="653")
    with pytest.raises(invalid, match="needs a personalized-ranking solution"):
        runtime.get_personalized_ranking(campaignArn=up, userId="653", inputList=["1"])
    with pytest.raises(runtime.exceptions.ResourceNotFoundException, match="filter not found"):
        runtime.get_recommendations(campaignArn=up, userId="653", filterArn="f")
    with pytest.raises(invalid, match='needs "userId"'):
        runtime.get_recommendations(campaignArn=up, itemId="1300854")
    # a replaced solution file is reloaded, not served from the cache
    path = tmp_path / "model.npz"
    path.write_bytes(Path(up).read_bytes())
    runtime.get_recommendations(campaignArn=str(path), userId="653")
    path.write_bytes(Path(sims).read_bytes())
    again = runtime.get_recommendations(campaignArn=str(path), itemId="1300854", numResults=3)
    assert again["itemList"] == similar["itemList"]


def test_filter_arn_names_a_filter_file(solutions, tmp_path):
    """filterArn points at a file holding one filter expression; the job and the runtime
    answers apply it as `--filter` does."""
    import personalize_batch

    expression = tmp_path / "not-iron-man.txt"
    # only items the user rated, and popularity-count leaves those out: nothing is left
    expression.write_text('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("rating")\n')
    runtime = personalize_batch.client("personalize-runtime")
    answer = runtime.get_recommendations(
        solution=str(solutions["popularity-count"]),
        userId="653",
        numResults=3,
        filterArn="arn:pbatch:local:filter/" + str(expression),
    )
    assert answer["itemList"] == []
    plain = runtime.get_recommendations(
        solution=str(solutions["popularity-count"]), userId="653", numResults=3
    )
    assert len(plain["itemList"]) == 3


BOTO_MODELS = {
    name: ServiceModel(Loader().load_service_model(name, "service-2"), name)
    for name in ("personalize", "personalize-runtime")
}
OPERATIONS = {
    "create_batch_inference_job": ("personalize", "CreateBatchInferenceJob"),
    "describe_batch_inference_job": ("personalize", "DescribeBatchInferenceJob"),
    "list_batch_inference_jobs": ("personalize", "ListBatchInferenceJobs"),
    "create_batch_segment_job": ("personalize", "CreateBatchSegmentJob"),
    "describe_batch_segment_job": ("personalize", "DescribeBatchSegmentJob"),
    "list_batch_segment_jobs": ("personalize", "ListBatchSegmentJobs"),
    "get_recommendations": ("personalize-runtime", "GetRecommendations"),
    "get_personalized_ranking": ("personalize-runtime", "GetPersonalizedRanking"),
}
GOOD = {
    "jobName": "j",
    "solutionVersionArn": "s.npz",
    "jobInput": {"s3DataSource": {"path": "in.json"}},
    "jobOutput": {"s3DataDestination": {"path": "out/"}},
    "roleArn": "arn:aws:iam::1:role/r",
    "numResults": 5,
    "batchInferenceJobArn": "arn:pbatch:local:batch-inference-job/j",
    "batchSegmentJobArn": "arn:pbatch:local:batch-segment-job/j",
    "maxResults": 10,
    "campaignArn": "c.npz",
    "userId": "653",
    "itemId": "1",
    "inputList": ["1"],
    "filterValues": {"G": '"A"'},
    "tags": [],
}
BAD = [None, "x", "", 0, -1, 3, True, 2.5, [], {}, ["1"], {"k": "v"}]


def _top_level(report: str) -> list[str]:
    """The lines of a botocore report about the request's own members (not nested)."""
    lines = []
    for line in report.splitlines():
        if line.startswith(("Missing required parameter in ", "Unknown parameter in ")):
            top = line.split(" in ", 1)[1].startswith("input:")
        else:
            where = line.split(" for parameter ", 1)[1].split(",")[0]
            top = not any(mark in where for mark in (".", "[", " (key"))
        if top:
            lines.append(line)
    return lines


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(sorted(OPERATIONS)),
    keep=st.sets(st.sampled_from(sorted(GOOD))),
    bad=st.dictionaries(
        st.sampled_from([*sorted(GOOD), "jobname", "bogus"]), st.sampled_from(BAD), max_size=3
    ),
)
def test_requests_boto3_refuses_raise_its_param_validation_error(
    method, keep, bad, tmp_path_factory
):
    """Against botocore's validator on Personalize's service model: a request boto3
    refuses for its own members (missing, unknown, wrong type, too short or small) gets
    the same ParamValidationError and report; boto3 raised TypeError for a missing
    jobName and accepted a missing roleArn. Anything else is pbatch's to judge (nested
    members, with the older shapes it accepts too): never a ParamValidationError there,
    never a TypeError."""
    service, operation = OPERATIONS[method]
    shape = BOTO_MODELS[service].operation_model(operation).input_shape
    params = {k: GOOD[k] for k in keep if k in shape.members}
    params.update(bad)
    top = _top_level(ParamValidator().validate(params, shape).generate_report())
    client = personalize_batch.client(service, home=tmp_path_factory.mktemp("home"))
    try:
        getattr(client, method)(**params)
    except ParamValidationError as err:
        assert str(err) == str(ParamValidationError(report="\n".join(top))), params
        return
    except ClientError:
        pass
    assert not top, params


def test_sdk_messages_name_no_cli_option(solutions, tmp_path):
    """An SDK user passes numResults, jobOutput, metadataColumns: a message that says
    --num-results, --job-name or --item-metadata names something they never typed."""
    client = personalize_batch.client("personalize", home=tmp_path / "home")
    runtime = personalize_batch.client("personalize-runtime", home=tmp_path / "home")
    up = str(solutions["user-personalization"])
    (tmp_path / "filter.txt").write_text('INCLUDE ItemID WHERE Items.GENRE IN ("x")')
    (tmp_path / "users.json").write_bytes((EXAMPLES / "users.json").read_bytes())
    (tmp_path / "users.json.out").write_bytes(solutions["sims"].read_bytes())
    _create(client, solution=up, jobName="taken", out=str(tmp_path / "o"))
    messages = []
    for call in (
        lambda: _create(client, solution=up, jobName="taken"),
        lambda: _create(client, solution=up, numResults=501),
        lambda: _create(client, solution=up, filterArn=str(tmp_path / "filter.txt")),
        lambda: _create(
            client,
            solution=str(tmp_path / "users.json.out"),
            jobInput={"s3DataSource": {"path": str(tmp_path / "users.json")}},
            out=str(tmp_path),
        ),
        lambda: _create(
            client,
            solution=up,
            jobInput={"s3DataSource": {"path": str(tmp_path / "users.json")}},
            out=str(tmp_path / "users.json"),
        ),
        lambda: runtime.get_recommendations(
            campaignArn=up, userId="653", metadataColumns={"ITEMS": ["TITLE"]}
        ),
        lambda: runtime.get_recommendations(
            campaignArn=up, userId="653", filterArn=str(tmp_path / "filter.txt")
        ),
        lambda: runtime.get_recommendations(campaignArn=up, userId="653", numResults=501),
    ):
        with pytest.raises(ClientError) as info:
            call()
        messages.append(info.value.response["Error"]["Message"])
    assert "a batch inference job named 'taken' already exists (" in messages[0]
    assert [m for m in messages if re.search(r"--[a-z]", m)] == []
