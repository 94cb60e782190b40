"""`pbatch console`: a local web console on 127.0.0.1 (stdlib wsgiref, one thread per
request). It lists, describes and creates batch inference jobs through `service.py`,
the same functions as the CLI and the SDK.

Being local is not enough to be safe from other web pages open in the same browser:
requests must carry our own Host (defeats DNS rebinding), a form post must carry the
server's random token and, when the browser sends one, our Origin (defeats cross-site
posts). Pages forbid scripts and framing (Content-Security-Policy).
"""

from __future__ import annotations

import datetime as dt
import secrets
import socketserver
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .. import io as pio
from .. import service
from ..batch import new_job_name
from ..errors import PbatchError
from ..jobs import JobStore
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
            if path == "/" and method in ("GET", "HEAD"):
                now = dt.datetime.now(dt.timezone.utc)
                return "200 OK", pages.jobs_page(store.records(limit=500), now), []
            if path.startswith("/jobs/") and method in ("GET", "HEAD"):
                return self._job(store, unquote(path[len("/jobs/") :]))
            if path == "/create" and method in ("GET", "HEAD"):
                values = {"jobName": new_job_name(), "numResults": "25"}
                return "200 OK", self._form(store, values, None), []
            if path == "/create" and method == "POST":
                return self._create(store, environ)
            return "404 Not Found", pages.message_page("Not found", f"No page {path}."), []
        finally:
            store.close()

    def _job(self, store: JobStore, name: str) -> tuple[str, str, list[tuple[str, str]]]:
        try:
            record = store.get(name)
        except PbatchError as exc:
            return "404 Not Found", pages.message_page("Job not found", str(exc)), []
        previews = [preview(url) for url in (record.get("outputs") or [])[:PREVIEW_FILES]]
        now = dt.datetime.now(dt.timezone.utc)
        return "200 OK", pages.job_page(record, previews, now), []

    def _form(self, store: JobStore, values: dict[str, str], error: str | None) -> str:
        seen = dict.fromkeys(r.get("solutionPath", "") for r in store.records(limit=200))
        return pages.create_page(values, self.token, error, [s for s in seen if s][:20])

    def _create(
        self, store: JobStore, environ: dict[str, Any]
    ) -> tuple[str, str, list[tuple[str, str]]]:
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and origin not in {f"http://{h}" for h in self._hosts()}:
            return "403 Forbidden", pages.message_page("Refused", "Cross-site form post."), []
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_FORM_BYTES:
            return "413 Content Too Large", pages.message_page("Refused", "Form too large."), []
        form = parse_qs(environ["wsgi.input"].read(length).decode("utf-8", "replace"))
        values = {key: form.get(key, [""])[0].strip() for key, *_ in pages.FIELDS}
        if not secrets.compare_digest(form.get("token", [""])[0], self.token):
            return (
                "403 Forbidden",
                pages.message_page("Refused", "Stale or missing form token; reload the form."),
                [],
            )
        try:
            arn = create_from_form(store, values)
        except PbatchError as exc:
            return "400 Bad Request", self._form(store, values, str(exc)), []
        name = arn.rsplit("/", 1)[1]
        return "303 See Other", "", [("Location", pages.job_url(name))]


FORM_LABELS = {key: label for key, label, *_ in pages.FIELDS}


def create_from_form(store: JobStore, values: dict[str, str]) -> str:
    """Check the form's fields (messages name the form's labels), then create the job."""
    missing = [FORM_LABELS[k] for k in ("jobName", "solution", "input", "output") if not values[k]]
    if missing:
        raise PbatchError(f"{' and '.join(missing)}: required.")
    number = values["numResults"] or "25"
    if not number.isdigit() or not 1 <= int(number) <= 500:
        raise PbatchError(f"Number of results must be a whole number 1–500, not {number!r}.")
    response = service.create_batch_inference_job(
        store,
        jobName=values["jobName"],
        solutionVersionArn=values["solution"],
        jobInput={"s3DataSource": {"path": values["input"]}},
        jobOutput={"s3DataDestination": {"path": values["output"]}},
        numResults=int(number),
        filterArn=values["filter"] or None,
    )
    return response["batchInferenceJobArn"]


def preview(url: str) -> tuple[str, list[str], str | None]:
    """The first lines of an output file (local or S3), cut to a readable length."""
    lines: list[str] = []
    try:
        stream = pio.open_input(url)
        try:
            for raw, _ in pio.iter_lines(stream, PREVIEW_CHARS * 4):
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
