"""`pbatch console`: a local web console on 127.0.0.1 (stdlib wsgiref, one thread per
request). It lists, describes and creates batch inference jobs and batch segment jobs
through `service.control`, the same functions as the CLI and the SDK.

Being local is not enough to be safe from other web pages open in the same browser:
requests must carry our own Host (defeats DNS rebinding), a form post must carry the
server's random token and, when the browser sends one, our Origin (defeats cross-site
posts). Pages forbid scripts and framing (Content-Security-Policy).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socketserver
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .. import recipes, storage
from ..arns import INFERENCE, SEGMENT, check_solution_hash, new_job_name, parse_solution_ref
from ..errors import PbatchError
from ..job import framing, preflight
from ..job import store as jobs_mod
from ..job.params import JobParams, check_recipe
from ..job.run import check_paths
from ..job.store import JobStore
from ..recipes.protocol import MAX_RESULTS, MAX_SEGMENT_RESULTS
from ..service import control as service
from ..solution import load
from . import pages

HOST = "127.0.0.1"
MAX_FORM_BYTES = 64 * 1024
PREVIEW_LINES, PREVIEW_CHARS, PREVIEW_FILES = 5, 600, 3
HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),  # no-referrer would make form posts send Origin: null
]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Console:
    """The WSGI application."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.home = home
        self.port = 0  # set once the server is bound
        self.token = secrets.token_urlsafe(24)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        status, body, extra = self.respond(environ)
        start_response(status, HEADERS + extra)
        return [body.encode("utf-8")]

    def _hosts(self) -> set[str]:
        return {f"{HOST}:{self.port}", f"localhost:{self.port}"}

    def respond(self, environ: dict[str, Any]) -> tuple[str, str, list[tuple[str, str]]]:
        """(status, HTML, extra headers) for one request."""
        if environ.get("HTTP_HOST", "") not in self._hosts():
            return "400 Bad Request", pages.message_page("Bad request", "Unexpected Host."), []
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        store = JobStore(self.home)
        try:
            query = parse_qs(environ.get("QUERY_STRING", ""))
            if path == "/" and method in ("GET", "HEAD"):
                return self._jobs(store, query, INFERENCE)
            if path == "/segment-jobs" and method in ("GET", "HEAD"):
                return self._jobs(store, query, SEGMENT)
            if path.startswith("/jobs/") and path.endswith("/delete"):
                name = unquote(path[len("/jobs/") : -len("/delete")])
                if method in ("GET", "HEAD"):
                    return self._confirm_delete(store, name)
                if method == "POST":
                    return self._delete(store, name, environ)
            if path.startswith("/jobs/") and method in ("GET", "HEAD"):
                return self._job(store, unquote(path[len("/jobs/") :]))
            for kind, k in pages.KINDS.items():
                if path == k.create_url and method in ("GET", "HEAD"):
                    values = {"jobName": new_job_name(), "numResults": DEFAULT_RESULTS[kind]}
                    return "200 OK", self._form(store, values, None, kind), []
                if path == k.create_url and method == "POST":
                    return self._create(store, environ, kind)
            return "404 Not Found", pages.message_page("Not found", f"No page {path}."), []
        finally:
            store.close()

    def _jobs(
        self, store: JobStore, query: dict[str, list[str]], kind: str
    ) -> tuple[str, str, list[tuple[str, str]]]:
        """The list of one kind's jobs, a page of PAGE_SIZE at a time (newest first)."""
        total = store.count(kind)
        pages_count = max(1, -(-total // PAGE_SIZE))
        try:
            number = min(max(1, int(query.get("page", ["1"])[0])), pages_count)
        except ValueError:
            number = 1
        records = store.records(limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE, kind=kind)
        now = dt.datetime.now(dt.timezone.utc)
        deleted = query.get("deleted", [None])[0]
        body = pages.jobs_page(
            records, now, paging=(number, pages_count, total), deleted=deleted, kind=kind
        )
        return "200 OK", body, []

    def _confirm_delete(self, store: JobStore, name: str) -> tuple[str, str, list[tuple[str, str]]]:
        from ..job.leftovers import kept_by  # noqa: PLC0415

        try:
            record = store.get(name)
        except PbatchError as exc:
            return "404 Not Found", pages.message_page("Job not found", str(exc)), []
        kept = kept_by(record, store.home)
        what = [f"temporary output {t}" for t in kept.temporary_files]
        if kept.upload is not None:
            what.append(f"pending upload of {kept.upload['url']} (aborted)")
        what += [f"{k} {p}" for k, p in (("checkpoint", kept.checkpoint), ("log", kept.log)) if p]
        return "200 OK", pages.delete_page(record, what, self.token), []

    def _delete(
        self, store: JobStore, name: str, environ: dict[str, Any]
    ) -> tuple[str, str, list[tuple[str, str]]]:
        from ..job.leftovers import delete_job  # noqa: PLC0415

        form, refused = self._form_post(environ)
        if refused is not None:
            return refused
        try:
            record, _ = delete_job(store, name)
        except PbatchError as exc:
            return "409 Conflict", pages.message_page("Not deleted", str(exc)), []
        back = pages.KINDS[jobs_mod.kind_of(record)].list_url
        return "303 See Other", "", [("Location", f"{back}?deleted=" + quote(name, safe=""))]

    def _form_post(
        self, environ: dict[str, Any]
    ) -> tuple[dict[str, list[str]], tuple[str, str, list[tuple[str, str]]] | None]:
        """A form post's fields, or the refusal of a cross-site, oversized or tokenless one."""
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and origin not in {f"http://{h}" for h in self._hosts()}:
            return {}, ("403 Forbidden", pages.message_page("Refused", "Cross-site form post."), [])
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_FORM_BYTES:
            return {}, (
                "413 Content Too Large",
                pages.message_page("Refused", "Form too large."),
                [],
            )
        form = parse_qs(environ["wsgi.input"].read(length).decode("utf-8", "replace"))
        if not secrets.compare_digest(form.get("token", [""])[0], self.token):
            return form, (
                "403 Forbidden",
                pages.message_page("Refused", "Stale or missing form token; reload the form."),
                [],
            )
        return form, None

    def _job(self, store: JobStore, name: str) -> tuple[str, str, list[tuple[str, str]]]:
        try:
            record = store.get(name)
        except PbatchError as exc:
            return "404 Not Found", pages.message_page("Job not found", str(exc)), []
        previews = [preview(url) for url in (record.get("outputs") or [])[:PREVIEW_FILES]]
        now = dt.datetime.now(dt.timezone.utc)
        return "200 OK", pages.job_page(record, previews, now), []

    def _form(
        self,
        store: JobStore,
        values: dict[str, str],
        problems: list[tuple[str, str]] | None,
        kind: str,
    ) -> str:
        """The create form, offering the solutions of earlier jobs of its kind."""
        earlier = store.records(limit=200, kind=kind)
        seen = dict.fromkeys(r.get("solutionPath", "") for r in earlier)
        return pages.create_page(values, self.token, problems, [s for s in seen if s][:20], kind)

    def _create(
        self, store: JobStore, environ: dict[str, Any], kind: str
    ) -> tuple[str, str, list[tuple[str, str]]]:
        form, refused = self._form_post(environ)
        if refused is not None:
            return refused
        values = {key: form.get(key, [""])[0].strip() for key, *_ in pages.FIELDS}
        problems = form_problems(store, values, kind)
        if problems:
            return "400 Bad Request", self._form(store, values, problems, kind), []
        try:
            arn = create_from_form(store, values, kind)
        except PbatchError as exc:
            return "400 Bad Request", self._form(store, values, [("", str(exc))], kind), []
        name = arn.rsplit("/", 1)[1]
        return "303 See Other", "", [("Location", pages.job_url(name))]


FORM_LABELS = {key: label for key, label, *_ in pages.FIELDS}
PAGE_SIZE = 50  # jobs on a page of the list
DEFAULT_RESULTS = {INFERENCE: "25", SEGMENT: ""}  # blank: the solution decides
MOST_RESULTS = {INFERENCE: MAX_RESULTS, SEGMENT: MAX_SEGMENT_RESULTS}


def form_problems(
    store: JobStore, values: dict[str, str], kind: str = INFERENCE
) -> list[tuple[str, str]]:
    """Every problem of the create form, each with its field (messages name the form's
    labels or the request's members), so that one post shows them all: what the
    service would refuse one at a time."""
    values = {"filter": "", **values}
    problems: list[tuple[str, str]] = []

    def check(field: str, step: Any) -> Any:
        try:
            return step()
        except PbatchError as exc:
            problems.append((field, str(exc)))
            return None

    missing = [k for k in ("jobName", "solution", "input", "output") if not values[k]]
    if missing:
        labels = " and ".join(FORM_LABELS[k] for k in missing)
        problems.append((missing[0], f"{labels}: required."))
    if values["jobName"]:
        name = check("jobName", lambda: jobs_mod.check_name(values["jobName"]))
        if name is not None and store.exists(name):
            problems.append(("jobName", str(jobs_mod.name_in_use(name, store.get(name), True))))
    number, most = values["numResults"] or DEFAULT_RESULTS[kind] or "1", MOST_RESULTS[kind]
    if not number.isdigit() or not 1 <= int(number) <= most:
        problems.append(
            (
                "numResults",
                f"Number of results must be a whole number 1–{most:,}, not {number!r}.",
            )
        )
    solution = None
    if values["solution"]:
        solution = check("solution", lambda: _solution(values["solution"]))
    if solution is not None:  # a solution of the other kind of job
        declared = recipes.recipe(solution.recipe)
        asked = JobParams(solution="", input="", kind=kind, api=True)
        check("solution", lambda: check_recipe(asked, solution.recipe, declared.recipe_type))
    text, source = check("filter", lambda: service.filter_from_arn(values["filter"] or None)) or (
        None,
        "",
    )
    if text is not None and solution is not None:
        from ..filters import compile_filter  # noqa: PLC0415

        check("filter", lambda: compile_filter(text, solution, source))
    elif text is not None:
        from ..filters.parse import parse_filter  # noqa: PLC0415

        check("filter", lambda: parse_filter(text, source))
    refs = check("input", lambda: storage.list_inputs(values["input"])) if values["input"] else None
    if refs and solution is not None:
        check("input", lambda: preflight.check(refs, solution.recipe))
    if refs and values["output"] and values["solution"] and not problems:
        params = JobParams(
            solution=values["solution"],
            input=values["input"],
            output=values["output"],
            filter_file=service.filter_path(values["filter"]) if values["filter"] else None,
            api=True,
        )
        check("output", lambda: check_paths(params, refs))
    return problems


def _solution(ref: str) -> Any:
    """The solution a form names, loaded and checked as the service checks it."""
    path, sha = parse_solution_ref(ref)
    if not os.path.exists(path):
        raise PbatchError(f"solution version not found: {path}")
    solution = load(path)
    check_solution_hash(path, solution.sha256, sha)
    return solution


def create_from_form(store: JobStore, values: dict[str, str], kind: str = INFERENCE) -> str:
    """Create the job the form describes (checked by form_problems first)."""
    number = values["numResults"] or DEFAULT_RESULTS[kind]
    request = {
        "jobName": values["jobName"],
        "solutionVersionArn": values["solution"],
        "jobInput": {"s3DataSource": {"path": values["input"]}},
        "jobOutput": {"s3DataDestination": {"path": values["output"]}},
        "numResults": int(number) if number else None,
    }
    request["filterArn"] = values.get("filter") or None
    if kind == SEGMENT:
        return service.create_batch_segment_job(store, **request)["batchSegmentJobArn"]
    response = service.create_batch_inference_job(store, **request)
    return response["batchInferenceJobArn"]


def preview(url: str) -> tuple[str, list[str], str | None]:
    """The first lines of an output file (local or S3), cut to a readable length."""
    lines: list[str] = []
    try:
        stream = storage.open_input(url)
        try:
            for raw, _ in framing.iter_lines(stream, PREVIEW_CHARS * 4):
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                lines.append(text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + " …")
                if len(lines) >= PREVIEW_LINES:
                    break
        finally:
            stream.close()
    except (PbatchError, OSError) as exc:
        return url, lines, f"cannot read it: {exc}"
    return url, lines, None


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the console's terminal is not a request log."""


def make_console(port: int = 0, home: str | Path | None = None) -> WSGIServer:
    """A console server bound to 127.0.0.1:port (0: any free port), not yet serving."""
    app = Console(home)
    server = make_server(HOST, port, app, server_class=_Server, handler_class=_Handler)
    app.port = server.server_port
    return server
