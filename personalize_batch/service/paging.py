"""boto3's paginators for the job listings: pages of a list call joined, with
PaginationConfig's PageSize, MaxItems and StartingToken (nextToken is an offset into the
newest-first order, job/store.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


class Paginator:
    """boto3's paginator for ListBatchInferenceJobs (or, with `key` batchSegmentJobs,
    ListBatchSegmentJobs): `paginate(**kwargs)` yields pages; PaginationConfig takes
    PageSize, MaxItems and StartingToken."""

    def __init__(
        self, method: Callable[..., dict[str, Any]], key: str = "batchInferenceJobs"
    ) -> None:
        self._method, self._key = method, key

    def paginate(self, **kwargs: Any) -> PageIterator:
        config = kwargs.pop("PaginationConfig", None) or {}
        return PageIterator(self._method, kwargs, config, self._key)


class PageIterator:
    """The pages of one paginate() call."""

    def __init__(
        self,
        method: Callable[..., dict[str, Any]],
        kwargs: dict[str, Any],
        config: dict,
        key: str = "batchInferenceJobs",
    ) -> None:
        self._method, self._kwargs, self._key = method, dict(kwargs), key
        if config.get("PageSize") is not None:
            self._kwargs["maxResults"] = config["PageSize"]
        if config.get("StartingToken") is not None:
            self._kwargs["nextToken"] = config["StartingToken"]
        self._max_items = config.get("MaxItems")
        self.resume_token: str | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        kwargs, left = dict(self._kwargs), self._max_items
        while True:
            page = self._method(**kwargs)
            if left is not None:
                jobs = page[self._key]
                if len(jobs) >= left:
                    more = len(jobs) > left or page.get("nextToken")
                    token = int(kwargs.get("nextToken") or 0) + left  # an offset (job/store.py)
                    page[self._key] = jobs[:left]
                    self.resume_token = str(token) if more else None
                    page.pop("nextToken", None)
                    yield page
                    return
                left -= len(page[self._key])
            yield page
            if not page.get("nextToken"):
                return
            kwargs["nextToken"] = page["nextToken"]

    def build_full_result(self) -> dict[str, Any]:
        """All pages' jobs in one list (with NextToken when MaxItems cut it short)."""
        jobs: list[dict[str, Any]] = []
        for page in self:
            jobs.extend(page[self._key])
        out: dict[str, Any] = {self._key: jobs}
        if self.resume_token is not None:
            out["NextToken"] = self.resume_token
        return out
