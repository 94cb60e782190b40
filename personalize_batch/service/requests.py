"""The requests boto3 refuses before sending them: each operation's own members as
botocore's ParamValidator checks them against Personalize's service model (the SDK,
`sdk.py`, runs every request through `check_request` first)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ParamValidationError

# The members of each request as boto3 checks them before sending it (botocore's
# ParamValidator): name -> (type, required, least length or value). Nested members are
# pbatch's to check, as it also takes the older shapes of Personalize's docs.
S, N, D, L = "string", "integer", "structure", "list"
REQUESTS: dict[str, dict[str, tuple[str, bool, int | None]]] = {
    "CreateBatchInferenceJob": {
        "jobName": (S, True, 1),
        "solutionVersionArn": (S, True, None),
        "filterArn": (S, False, None),
        "numResults": (N, False, None),
        "jobInput": (D, True, None),
        "jobOutput": (D, True, None),
        "roleArn": (S, True, None),
        "batchInferenceJobConfig": (D, False, None),
        "tags": (L, False, 0),
        "batchInferenceJobMode": (S, False, None),
        "themeGenerationConfig": (D, False, None),
    },
    "DescribeBatchInferenceJob": {"batchInferenceJobArn": (S, True, None)},
    "ListBatchInferenceJobs": {
        "solutionVersionArn": (S, False, None),
        "nextToken": (S, False, None),
        "maxResults": (N, False, 1),
    },
    "CreateBatchSegmentJob": {
        "jobName": (S, True, 1),
        "solutionVersionArn": (S, True, None),
        "filterArn": (S, False, None),
        "numResults": (N, False, None),
        "jobInput": (D, True, None),
        "jobOutput": (D, True, None),
        "roleArn": (S, True, None),
        "tags": (L, False, 0),
    },
    "DescribeBatchSegmentJob": {"batchSegmentJobArn": (S, True, None)},
    "ListBatchSegmentJobs": {
        "solutionVersionArn": (S, False, None),
        "nextToken": (S, False, None),
        "maxResults": (N, False, 1),
    },
    "GetRecommendations": {
        "campaignArn": (S, False, None),
        "itemId": (S, False, None),
        "userId": (S, False, None),
        "numResults": (N, False, 0),
        "context": ("map", False, None),
        "filterArn": (S, False, None),
        "filterValues": ("map", False, None),
        "recommenderArn": (S, False, None),
        "promotions": (L, False, None),
        "metadataColumns": ("map", False, None),
    },
    "GetPersonalizedRanking": {
        "campaignArn": (S, True, None),
        "inputList": (L, True, None),
        "userId": (S, True, None),
        "context": ("map", False, None),
        "filterArn": (S, False, None),
        "filterValues": ("map", False, None),
        "metadataColumns": ("map", False, None),
    },
}
PYTHON_TYPES = {S: (str,), N: (int,), D: (dict,), L: (list, tuple), "map": (dict,)}
# pbatch's own keyword: a solution file instead of a campaign's ARN (runtime methods)
EXTRAS = {"GetRecommendations": ("solution",), "GetPersonalizedRanking": ("solution",)}


def check_request(operation: str, params: dict[str, Any]) -> None:
    """Raise botocore's ParamValidationError, with its report, for a request boto3
    would refuse before sending it: a required member missing, an unknown one, a value
    of the wrong type or under its least length or value."""
    members = REQUESTS[operation]
    extras = EXTRAS.get(operation, ())
    report = []
    for name, (_, required, _) in members.items():
        # pbatch's `solution=` stands for campaignArn
        if required and name not in params and not (name == "campaignArn" and "solution" in params):
            report.append(f'Missing required parameter in input: "{name}"')
    for name in params:
        if name not in members and name not in extras:
            report.append(
                f'Unknown parameter in input: "{name}", must be one of: {", ".join(members)}'
            )
    for name, value in params.items():
        if name not in members:
            continue
        kind, _, least = members[name]
        types = PYTHON_TYPES[kind]
        if not isinstance(value, types):
            report.append(
                f"Invalid type for parameter {name}, value: {value}, type: {type(value)}, "
                f"valid types: {', '.join(str(t) for t in types)}"
            )
        elif least is not None and kind == N and value < least:
            report.append(
                f"Invalid value for parameter {name}, value: {value}, valid min value: {least}"
            )
        elif least is not None and kind in (S, L) and len(value) < least:
            report.append(
                f"Invalid length for parameter {name}, value: {len(value)}, valid min "
                f"length: {least}"
            )
    if report:
        raise ParamValidationError(report="\n".join(report))
