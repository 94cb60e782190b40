"""A boto3-shaped Python client (A.15, B.1, B.7):

    import personalize_batch
    personalize = personalize_batch.client("personalize")
    runtime = personalize_batch.client("personalize-runtime")

Methods, keyword names, response shapes (timestamps as datetimes, `ResponseMetadata`,
absent keys left out) and exception names are boto3's. Each method calls the same
function as the CLI (`service/control.py`, `service/runtime.py`); this module only translates shapes
and errors. The exceptions subclass botocore's ClientError, so `except ClientError`
and `err.response["Error"]["Code"]` work as with boto3.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ..errors import AlreadyExists, InvalidNextToken, NotFound, PbatchError, UsageError
from ..job import store as jobs_mod
from ..job.params import AnswerOptions, check_field_count
from . import control as service
from . import runtime
from .paging import PageIterator, Paginator
from .requests import check_request

__all__ = ["PageIterator", "Paginator", "check_request", "client"]

# the members of boto3's BatchInferenceJob / BatchInferenceJobSummary shapes
JOB_KEYS = (
    "jobName",
    "batchInferenceJobArn",
    "filterArn",
    "failureReason",
    "solutionVersionArn",
    "numResults",
    "jobInput",
    "jobOutput",
    "batchInferenceJobConfig",
    "roleArn",
    "batchInferenceJobMode",
    "themeGenerationConfig",
    "status",
    "creationDateTime",
    "lastUpdatedDateTime",
)
SUMMARY_KEYS = jobs_mod.SUMMARY_KEYS
# the members of boto3's BatchSegmentJob / BatchSegmentJobSummary shapes
SEGMENT_JOB_KEYS = (
    "jobName",
    "batchSegmentJobArn",
    "filterArn",
    "failureReason",
    "solutionVersionArn",
    "numResults",
    "jobInput",
    "jobOutput",
    "roleArn",
    "status",
    "creationDateTime",
    "lastUpdatedDateTime",
)
SEGMENT_SUMMARY_KEYS = jobs_mod.SEGMENT_SUMMARY_KEYS
# the list methods that page, with the key of their jobs
PAGED = {
    "list_batch_inference_jobs": "batchInferenceJobs",
    "list_batch_segment_jobs": "batchSegmentJobs",
}
DATE_KEYS = ("creationDateTime", "lastUpdatedDateTime")


class PersonalizeError(ClientError):
    """Base of the service errors, shaped like botocore's modeled exceptions."""

    code = "PersonalizeError"

    def __init__(self, message: str, operation_name: str) -> None:
        super().__init__(
            {"Error": {"Code": self.code, "Message": message}, "ResponseMetadata": _metadata(400)},
            operation_name,
        )


class InvalidInputException(PersonalizeError):
    """A parameter is missing, malformed or refers to something unusable."""

    code = "InvalidInputException"


class ResourceNotFoundException(PersonalizeError):
    """No such job or solution version."""

    code = "ResourceNotFoundException"


class ResourceAlreadyExistsException(PersonalizeError):
    """The job name is taken."""

    code = "ResourceAlreadyExistsException"


class InvalidNextTokenException(PersonalizeError):
    """The nextToken did not come from a listing."""

    code = "InvalidNextTokenException"


class Exceptions:
    """`client.exceptions`, as boto3 has it."""

    ClientError = ClientError
    InvalidInputException = InvalidInputException
    ResourceNotFoundException = ResourceNotFoundException
    ResourceAlreadyExistsException = ResourceAlreadyExistsException
    InvalidNextTokenException = InvalidNextTokenException


def _metadata(status: int = 200) -> dict[str, Any]:
    return {
        "RequestId": str(uuid.uuid4()),
        "HTTPStatusCode": status,
        "HTTPHeaders": {},
        "RetryAttempts": 0,
    }


def _translate(exc: PbatchError, operation: str) -> PersonalizeError:
    if isinstance(exc, NotFound):
        cls: type[PersonalizeError] = ResourceNotFoundException
    elif isinstance(exc, AlreadyExists):
        cls = ResourceAlreadyExistsException
    elif isinstance(exc, InvalidNextToken):
        cls = InvalidNextTokenException
    else:
        cls = InvalidInputException
    return cls(str(exc), operation)


def _shape(record: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The boto3 members of a record; timestamps as aware datetimes, absent keys left out."""
    out = {}
    for key in keys:
        value = record.get(key)
        if value is None:
            continue
        out[key] = dt.datetime.fromisoformat(value) if key in DATE_KEYS else value
    return out


class _BaseClient:
    exceptions = Exceptions

    def __init__(self, home: str | Path | None = None) -> None:
        self._home = home
        self._local = threading.local()

    def _store(self) -> jobs_mod.JobStore:
        store = getattr(self._local, "store", None)
        if store is None:  # sqlite connections stay in their thread
            store = self._local.store = jobs_mod.JobStore(self._home)
        return store

    def _call(
        self, operation: str, fn: Callable[[], dict[str, Any]], params: dict[str, Any] | None
    ) -> dict[str, Any]:
        if params is not None:
            check_request(operation, params)
        try:
            response = fn()
        except PbatchError as exc:
            raise _translate(exc, operation) from None
        response["ResponseMetadata"] = _metadata()
        return response

    def close(self) -> None:
        """Close this thread's job store connection."""
        store = getattr(self._local, "store", None)
        if store is not None:
            store.close()
            self._local.store = None


def _shaped_page(page: dict[str, Any], key: str, keys: Any) -> dict[str, Any]:
    """A List… page as botocore returns it: each summary with the model's members, and
    nextToken only when there are more."""
    out: dict[str, Any] = {key: [_shape(j, keys) for j in page[key]]}
    if page["nextToken"] is not None:
        out["nextToken"] = page["nextToken"]
    return out


class PersonalizeClient(_BaseClient):
    """`client("personalize")`: batch inference jobs and batch segment jobs."""

    def create_batch_inference_job(self, **kwargs: Any) -> dict[str, Any]:
        """CreateBatchInferenceJob: returns `{"batchInferenceJobArn"}` at once; the job runs
        in a detached background process (PENDING -> IN PROGRESS -> ACTIVE/CREATE FAILED)."""
        return self._call(
            "CreateBatchInferenceJob",
            lambda: service.create_batch_inference_job(self._store(), **kwargs),
            kwargs,
        )

    def describe_batch_inference_job(self, **kwargs: Any) -> dict[str, Any]:
        """DescribeBatchInferenceJob(batchInferenceJobArn=...)."""

        def call() -> dict[str, Any]:
            job = service.describe_batch_inference_job(self._store(), **kwargs)
            return {"batchInferenceJob": _shape(job["batchInferenceJob"], JOB_KEYS)}

        return self._call("DescribeBatchInferenceJob", call, kwargs)

    def list_batch_inference_jobs(self, **kwargs: Any) -> dict[str, Any]:
        """ListBatchInferenceJobs(solutionVersionArn=, maxResults=, nextToken=), newest first."""

        def call() -> dict[str, Any]:
            page = service.list_batch_inference_jobs(self._store(), **kwargs)
            return _shaped_page(page, "batchInferenceJobs", SUMMARY_KEYS)

        return self._call("ListBatchInferenceJobs", call, kwargs)

    def create_batch_segment_job(self, **kwargs: Any) -> dict[str, Any]:
        """CreateBatchSegmentJob: returns `{"batchSegmentJobArn"}` at once; the job runs in
        a detached background process, as an inference job does. The solution must be a
        USER_SEGMENTATION one (item-affinity, item-attribute-affinity)."""
        return self._call(
            "CreateBatchSegmentJob",
            lambda: service.create_batch_segment_job(self._store(), **kwargs),
            kwargs,
        )

    def describe_batch_segment_job(self, **kwargs: Any) -> dict[str, Any]:
        """DescribeBatchSegmentJob(batchSegmentJobArn=...)."""

        def call() -> dict[str, Any]:
            job = service.describe_batch_segment_job(self._store(), **kwargs)
            return {"batchSegmentJob": _shape(job["batchSegmentJob"], SEGMENT_JOB_KEYS)}

        return self._call("DescribeBatchSegmentJob", call, kwargs)

    def list_batch_segment_jobs(self, **kwargs: Any) -> dict[str, Any]:
        """ListBatchSegmentJobs(solutionVersionArn=, maxResults=, nextToken=), newest first."""

        def call() -> dict[str, Any]:
            page = service.list_batch_segment_jobs(self._store(), **kwargs)
            return _shaped_page(page, "batchSegmentJobs", SEGMENT_SUMMARY_KEYS)

        return self._call("ListBatchSegmentJobs", call, kwargs)

    def can_paginate(self, operation_name: str) -> bool:
        """list_batch_inference_jobs and list_batch_segment_jobs page here."""
        return operation_name in PAGED

    def get_paginator(self, operation_name: str) -> Paginator:
        """`get_paginator("list_batch_inference_jobs")` or
        `get_paginator("list_batch_segment_jobs")`, as boto3's."""
        if not self.can_paginate(operation_name):
            raise ValueError(f"pbatch has no paginator for {operation_name!r}")
        return Paginator(getattr(self, operation_name), PAGED[operation_name])


def _not_supported(**given: Any) -> None:
    for name, value in given.items():
        if value is not None:
            raise UsageError(f"{name} is not supported by pbatch")


class PersonalizeRuntimeClient(_BaseClient):
    """`client("personalize-runtime")`: one-off answers; solutions stay loaded (cached by
    path, reloaded when the file changes)."""

    def __init__(self, home: str | Path | None = None) -> None:
        super().__init__(home)
        self._cache = runtime.SolutionCache()

    @staticmethod
    def _solution(campaignArn: str | None, recommenderArn: str | None, solution: str | None) -> str:
        given = [v for v in (campaignArn, recommenderArn, solution) if v is not None]
        if len(given) != 1 or not isinstance(given[0], str):
            raise UsageError("give one of campaignArn, recommenderArn or solution")
        return given[0]

    def get_recommendations(self, **params: Any) -> dict[str, Any]:
        """GetRecommendations: `{"itemList": [{"itemId", "score"}], "recommendationId"}`.
        The solution is campaignArn / recommenderArn / solution: a path or arn:pbatch:…;
        `context` is accepted and not used."""
        check_request("GetRecommendations", params)
        return self._get_recommendations(**params)

    def get_personalized_ranking(self, **params: Any) -> dict[str, Any]:
        """GetPersonalizedRanking: `{"personalizedRanking": [...], "recommendationId"}`;
        items unknown to the solution come last with score 0.0."""
        check_request("GetPersonalizedRanking", params)
        return self._get_personalized_ranking(**params)

    def _get_recommendations(
        self,
        *,
        campaignArn: str | None = None,
        recommenderArn: str | None = None,
        solution: str | None = None,
        itemId: str | None = None,
        userId: str | None = None,
        numResults: int = 25,
        context: dict[str, str] | None = None,
        filterArn: str | None = None,
        filterValues: dict[str, str] | None = None,
        metadataColumns: dict[str, list[str]] | None = None,
        promotions: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:

        def call() -> dict[str, Any]:
            _not_supported(promotions=promotions)
            ref = self._solution(campaignArn, recommenderArn, solution)
            text, source = service.filter_from_arn(filterArn)
            if isinstance(numResults, bool) or not isinstance(numResults, int):
                raise UsageError(f"numResults must be an integer, not {numResults!r}")
            return runtime.get_recommendations(
                ref,
                user_id=userId,
                item_id=itemId,
                num_results=numResults,
                filter_values=filterValues,
                cache=self._cache,
                options=_answer_options(text, source, metadataColumns),
            )

        return self._call("GetRecommendations", call, None)

    def _get_personalized_ranking(
        self,
        *,
        userId: str,
        inputList: list[str],
        campaignArn: str | None = None,
        solution: str | None = None,
        context: dict[str, str] | None = None,
        filterArn: str | None = None,
        filterValues: dict[str, str] | None = None,
        metadataColumns: dict[str, list[str]] | None = None,
    ) -> dict[str, Any]:

        def call() -> dict[str, Any]:
            ref = self._solution(campaignArn, None, solution)
            text, source = service.filter_from_arn(filterArn)
            return runtime.get_personalized_ranking(
                ref,
                user_id=userId,
                input_list=inputList,
                filter_values=filterValues,
                cache=self._cache,
                options=_answer_options(text, source, metadataColumns),
            )

        return self._call("GetPersonalizedRanking", call, None)


def _metadata_columns(columns: Any) -> tuple[str, ...]:
    """metadataColumns `{"ITEMS": ["TITLE", ...]}` (B.7) -> the item fields."""
    if columns is None:
        return ()
    if not isinstance(columns, dict) or set(columns) - {"ITEMS"}:
        raise UsageError(
            'metadataColumns must be {"ITEMS": [column names]} (pbatch has items only)'
        )
    names = columns.get("ITEMS") or []
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise UsageError("metadataColumns.ITEMS must be a list of column names")
    return check_field_count(tuple(dict.fromkeys(n.upper() for n in names)), "metadataColumns")


SERVICES: dict[str, type[_BaseClient]] = {
    "personalize": PersonalizeClient,
    "personalize-runtime": PersonalizeRuntimeClient,
}


def client(service_name: str, *, home: str | Path | None = None, **boto3_kwargs: Any) -> Any:
    """`client("personalize")` or `client("personalize-runtime")`, like boto3.client.

    boto3's keyword arguments (region_name, endpoint_url, credentials, config) are
    accepted and not used: there is no Personalize service to call. `home` is the job
    store's folder (default $PBATCH_HOME). S3 inputs and outputs use the usual boto3
    credentials and $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL.
    """
    if service_name not in SERVICES:
        raise ValueError(
            f"pbatch has no {service_name!r} client (only {', '.join(map(repr, SERVICES))})"
        )
    return SERVICES[service_name](home)


def _answer_options(
    text: str | None, source: str, metadata_columns: dict[str, list[str]] | None
) -> AnswerOptions:
    """A runtime request's filter and item metadata, named as the request names them."""
    return AnswerOptions(
        text,
        source,
        item_metadata=_metadata_columns(metadata_columns),
        metadata_source="metadataColumns",
    )
