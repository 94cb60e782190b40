"""The console's HTML: server-rendered pages, no JavaScript. Every value that comes from
a record, a form or a file goes through `h()` (HTML-escaped, quotes included)."""

from __future__ import annotations

import datetime as dt
import html
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from ..arns import INFERENCE, SEGMENT
from ..job.store import ACTIVE, FAILED, IN_PROGRESS, PENDING, kind_of

RUNNING = (PENDING, IN_PROGRESS)


@dataclass(frozen=True)
class Kind:
    """How the console names one kind of job, and where its pages are."""

    plural: str  # "Batch inference jobs"
    one: str  # "batch inference job"
    list_url: str
    create_url: str
    describe: str  # the aws-shaped command whose record a job's page shows
    results_hint: str  # the create form's numResults hint


KINDS = {
    INFERENCE: Kind(
        "Batch inference jobs",
        "batch inference job",
        "/",
        "/create",
        "describe-batch-inference-job",
        "1–500 items per line (default 25)",
    ),
    SEGMENT: Kind(
        "Batch segment jobs",
        "batch segment job",
        "/segment-jobs",
        "/create-segment-job",
        "describe-batch-segment-job",
        "1–5,000,000 users per line (default: the top 1 % of the solution's users, at least 25)",
    ),
}
BADGE = {PENDING: "pending", IN_PROGRESS: "running", ACTIVE: "active", FAILED: "failed"}

CSS = """
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 color:#16191f;background:#f2f3f3}
header{background:#232f3e;color:#fff;padding:10px 24px;display:flex;gap:28px;
 align-items:center}
header b{font-size:16px}header a{color:#d5dbdb;text-decoration:none}
header a:hover,header a.here{color:#fff;text-decoration:underline}
main{max-width:1180px;margin:22px auto;padding:0 24px}
h1{font-size:22px;margin:0 0 14px}h2{font-size:17px;margin:26px 0 10px}
.panel{background:#fff;border:1px solid #d5dbdb;border-radius:8px;padding:16px 20px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:8px 10px;border-bottom:1px solid #eaeded;vertical-align:top}
td.when,td.num,.when{white-space:nowrap}td.path{overflow-wrap:anywhere}
th{font-weight:600;color:#545b64;background:#fafafa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
a{color:#0073bb}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;font-weight:600;
 white-space:nowrap}
.active{background:#e9f6ec;color:#1d8102}.failed{background:#fde8e8;color:#d13212}
.running{background:#e6f2fb;color:#0073bb}.pending{background:#eaeded;color:#545b64}
.error{background:#fde8e8;border:1px solid #d13212;color:#8b1a0a;border-radius:8px;
 padding:10px 14px;margin:0 0 16px;overflow-wrap:anywhere}
.error ul{margin:6px 0 0;padding-left:20px}
.notice{background:#e9f6ec;border:1px solid #1d8102;border-radius:8px;padding:10px 14px;
 margin:0 0 16px}
form .problem{display:block;color:#d13212;font-size:12px;margin-top:3px}
form input[aria-invalid=true]{border-color:#d13212}
.pager{display:flex;gap:18px;align-items:center;margin-top:12px}
.button.danger{background:#fff;color:#d13212;border:1px solid #d13212}
.note{color:#687078;font-size:12px}
.bar{display:flex;justify-content:space-between;align-items:center;margin-bottom:14px}
.button{background:#ec7211;color:#fff;border:0;border-radius:6px;padding:8px 18px;
 font-weight:600;font-size:14px;text-decoration:none;cursor:pointer}
form label{display:block;font-weight:600;margin:14px 0 4px}
form input{width:100%;max-width:640px;box-sizing:border-box;padding:7px 9px;
 border:1px solid #aab7b8;border-radius:4px;font:inherit}
form .hint{color:#687078;font-size:12px;font-weight:400}
pre{background:#fafafa;border:1px solid #eaeded;border-radius:4px;padding:8px 10px;
 overflow-x:auto;margin:4px 0;font-size:12px;white-space:pre}
pre.line{white-space:pre-wrap;word-break:break-all}
dl{display:grid;grid-template-columns:220px minmax(0,1fr);gap:6px 16px;margin:0}
dt{color:#545b64;font-weight:600}dd{margin:0;min-width:0;overflow-wrap:anywhere}
h3{font-size:14px;overflow-wrap:anywhere}
"""


def h(value: Any) -> str:
    """HTML-escape anything (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def job_url(name: str) -> str:
    return "/jobs/" + quote(name, safe="")


def page(title: str, body: str, *, here: str = "", refresh: int | None = None) -> str:
    """A whole page: header with navigation, then `body` (already escaped)."""
    meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    links = [(f"jobs-{k}", v.list_url, v.plural) for k, v in KINDS.items()]
    links += [(f"create-{k}", v.create_url, f"Create {v.one}") for k, v in KINDS.items()]
    nav = "".join(
        f'<a href="{href}"{" class=here" if key == here else ""}>{label}</a>'
        for key, href, label in links
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}'
        f"<title>{h(title)} – pbatch console</title><style>{CSS}</style></head>"
        f"<body><header><b>pbatch console</b>{nav}</header><main>{body}</main></body></html>"
    )


def badge(status: str) -> str:
    return f'<span class="badge {BADGE.get(status, "pending")}">{h(status)}</span>'


def when(iso: str | None) -> str:
    """An ISO timestamp as `YYYY-mm-dd HH:MM:SS UTC`."""
    if not iso:
        return ""
    return (
        dt.datetime.fromisoformat(iso).astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    )


def seconds(value: float) -> str:
    if value < 60:
        return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"
    minutes, secs = divmod(int(value), 60)
    return f"{minutes} min {secs} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def duration(record: dict[str, Any], now: dt.datetime) -> str:
    """The finished job's duration, or the time since creation of a running one."""
    if record.get("durationSeconds") is not None:
        return seconds(record["durationSeconds"])
    if record["status"] in RUNNING:
        start = dt.datetime.fromisoformat(record["creationDateTime"])
        return seconds(max(0.0, (now - start).total_seconds())) + " so far"
    return ""


def progress(record: dict[str, Any]) -> str:
    lines = record.get("linesRead")
    if lines is None:
        return "–" if record["status"] != IN_PROGRESS else "starting"
    text = f"{lines:,} lines"
    return text + " so far" if record["status"] in RUNNING else text


def jobs_page(
    records: list[dict[str, Any]],
    now: dt.datetime,
    paging: tuple[int, int, int] | None = None,
    deleted: str | None = None,
    kind: str = INFERENCE,
) -> str:
    """A page of the list of jobs of one kind, newest first (`paging`: its number, the
    number of pages and of jobs); it refreshes itself (faster while jobs run)."""
    k = KINDS[kind]
    number, pages_count, total = paging or (1, 1, len(records))
    running = any(r["status"] in RUNNING for r in records)
    refresh = 2 if running else 10
    rows = []
    for r in records:
        solution = os.path.basename(r.get("solutionPath", "")) or r.get("solutionVersionArn", "")
        errors = r.get("linesWithErrors")
        rows.append(
            f'<tr data-job="{h(r["jobName"])}"><td><a href="{h(job_url(r["jobName"]))}">'
            f"{h(r['jobName'])}</a></td><td>{badge(r['status'])}</td>"
            f'<td class="num">{h(progress(r))}</td>'
            f'<td class="num">{"" if errors is None else h(f"{errors:,}")}</td>'
            f'<td class="path">{h(solution)}</td>'
            f'<td class="when">{h(when(r.get("creationDateTime")))}</td>'
            f'<td class="num">{h(duration(r, now))}</td></tr>'
        )
    table = (
        "<table><thead><tr><th>Job name</th><th>Status</th><th>Progress</th>"
        "<th>Error lines</th><th>Solution</th><th>Created</th><th>Duration</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else f'<p>No {k.one}s yet. <a href="{k.create_url}">Create one</a>.</p>'
    )
    links = []
    if number > 1:
        links.append(f'<a href="{k.list_url}?page={number - 1}" id="newer">← Newer jobs</a>')
    if pages_count > 1:
        links.append(f'<span class="note">Page {number} of {pages_count}</span>')
    if number < pages_count:
        links.append(f'<a href="{k.list_url}?page={number + 1}" id="older">Older jobs →</a>')
    pager = f'<div class="pager">{"".join(links)}</div>' if links else ""
    notice = (
        f'<div class="notice" role="status" id="notice">Job {h(deleted)} was deleted.</div>'
        if deleted
        else ""
    )
    body = (
        f'{notice}<div class="bar"><h1>{k.plural} ({total:,})</h1>'
        f'<a class="button" href="{k.create_url}">Create {k.one}</a></div>'
        f'<div class="panel">{table}{pager}</div>'
        f'<p class="note">This page refreshes itself every {refresh} s.</p>'
    )
    return page(k.plural, body, here=f"jobs-{kind}", refresh=refresh)


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return h(orjson.dumps(value).decode())
    if isinstance(value, dict | list):
        return f"<pre>{h(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())}</pre>"
    if isinstance(value, int) and not isinstance(value, bool):
        return h(f"{value:,}")
    return h(value)


def settings_text(tuning: dict[str, Any]) -> str:
    """How the solution's settings were chosen, in a line."""
    if not tuning.get("searched"):
        return f"the defaults: {tuning.get('reason') or 'nothing searched'}"
    chosen = ", ".join(f"{k}={v}" for k, v in tuning["chosen"].items()) or "the defaults"
    return (
        f"chosen by pbatch train on a {tuning['validation']} validation split: {chosen} "
        f"({tuning['metricName']} {tuning['chosenValue']:.4f}, the defaults "
        f"{tuning['defaultsValue']:.4f})"
    )


def job_page(
    record: dict[str, Any], previews: list[tuple[str, list[str], str | None]], now: dt.datetime
) -> str:
    """Everything `describe` shows, the failure reason, and the first output lines."""
    name, status = record["jobName"], record["status"]
    kind = kind_of(record)
    k = KINDS[kind]
    failure = ""
    if status == FAILED:
        failure = (
            '<div class="error" role="alert"><b>Failure reason:</b> '
            f"{h(record.get('failureReason') or 'unknown')}</div>"
        )
    facts = [
        ("Status", badge(status)),
        ("Progress", h(progress(record))),
        ("Created", f'<span class="when">{h(when(record.get("creationDateTime")))}</span>'),
        ("Last updated", f'<span class="when">{h(when(record.get("lastUpdatedDateTime")))}</span>'),
        ("Duration", h(duration(record, now))),
    ]
    if record.get("solutionTuning"):
        facts.append(("Solution settings", h(settings_text(record["solutionTuning"]))))
    rows = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in facts)
    described = "".join(f"<dt>{h(k)}</dt><dd>{_value(v)}</dd>" for k, v in record.items())
    out = []
    for url, lines, problem in previews:
        shown = "".join(f'<pre class="line">{h(line)}</pre>' for line in lines)
        if problem:
            shown += f'<p class="note">{h(problem)}</p>'
        out.append(f"<h3>{h(url)}</h3>{shown}")
    outputs = "".join(out) or '<p class="note">No output yet.</p>'
    refresh = 2 if status in RUNNING else None
    delete = (
        f'<p><a class="button danger" id="delete" href="{h(job_url(name))}/delete">'
        "Delete job</a></p>"
        if status not in RUNNING
        else ""
    )
    body = (
        f'<p><a href="{k.list_url}">← {k.plural}</a></p><h1>{h(name)} {badge(status)}</h1>'
        f'{failure}<div class="panel"><dl>{rows}</dl></div>{delete}'
        f'<h2>First output lines</h2><div class="panel" id="outputs">{outputs}</div>'
        f'<h2>Job details ({k.describe})</h2><div class="panel"><dl>'
        f"{described}</dl></div>"
    )
    return page(f"Job {name}", body, here=f"jobs-{kind}", refresh=refresh)


FIELDS = (
    ("jobName", "Batch inference job name", "1–63 letters, digits, - or _", True),
    ("solution", "Solution", "a .npz file made by `pbatch train`, or its arn:pbatch:… ARN", True),
    ("input", "Input data", "a JSON Lines file, a folder, or s3://bucket/key or prefix", True),
    ("output", "Output location", "a folder or s3://bucket/prefix/ for NAME.out files", True),
    ("numResults", "Number of results", "1–500 items per line (default 25)", False),
    (
        "filter",
        "Filter",
        "a filter file: arn:pbatch:local:filter/PATH or PATH (one filter expression)",
        False,
    ),
)


def fields(kind: str) -> list[tuple[str, str, str, bool]]:
    """The create form's fields for a kind of job (a segment job's filter selects users)."""
    k = KINDS[kind]
    out = []
    for key, label, hint, needed in FIELDS:
        if key == "filter" and kind == SEGMENT:
            hint = "a file of a user filter (INCLUDE|EXCLUDE UserID …): PATH or arn:…/PATH"
        label = f"{k.one[0].upper()}{k.one[1:]} name" if key == "jobName" else label
        hint = k.results_hint if key == "numResults" else hint
        out.append((key, label, hint, needed))
    return out


def create_page(
    values: dict[str, str],
    token: str,
    problems: list[tuple[str, str]] | None,
    solutions: list[str],
    kind: str = INFERENCE,
) -> str:
    """The "Create batch inference job" (or segment job) form, with the values kept and
    every problem found, listed at the top and under its field."""
    k = KINDS[kind]
    title = f"Create {k.one}"
    problems = problems or []
    parts = []
    for key, label, hint, needed in fields(kind):
        extra = ' list="solutions"' if key == "solution" else ""
        kind = "number" if key == "numResults" else "text"
        mine = [m for field, m in problems if field == key]
        if mine:
            extra += f' aria-invalid="true" aria-describedby="problem-{key}"'
        said = "".join(f'<span class="problem" id="problem-{key}">{h(m)}</span>' for m in mine[:1])
        parts.append(
            f'<label for="{key}">{h(label)}{"" if needed else " (optional)"} '
            f'<span class="hint">– {h(hint)}</span></label>'
            f'<input id="{key}" name="{key}" type="{kind}" value="{h(values.get(key, ""))}"'
            f"{extra}>{said}"
        )
    options = "".join(f'<option value="{h(s)}">' for s in solutions)
    alert = ""
    if len(problems) == 1:
        alert = f'<div class="error" role="alert" id="error">{h(problems[0][1])}</div>'
    elif problems:
        items = "".join(f"<li>{h(m)}</li>" for _, m in problems)
        alert = (
            f'<div class="error" role="alert" id="error"><b>{len(problems)} problems; no job '
            f"was created.</b><ul>{items}</ul></div>"
        )
    body = (
        f"<h1>{title}</h1>{alert}"
        f'<div class="panel"><form method="post" action="{k.create_url}" novalidate>'
        f'<input type="hidden" name="token" value="{h(token)}">{"".join(parts)}'
        f'<datalist id="solutions">{options}</datalist>'
        f'<p><button class="button" type="submit" id="create">{title}'
        f"</button></p></form></div>"
        '<p class="note">The job starts at once and runs in the background; its page shows '
        "its progress.</p>"
    )
    return page(title, body, here=f"create-{kind}")


def delete_page(record: dict[str, Any], kept: list[str], token: str) -> str:
    """Ask before deleting a job: what goes with it, what stays."""
    name, status = record["jobName"], record["status"]
    if status in RUNNING:
        return message_page(
            "Not deleted", f"Job {name} is {status}: only a finished job can be deleted."
        )
    also = "".join(f"<li>{h(k)}</li>" for k in kept) or "<li>nothing else</li>"
    body = (
        f'<p><a href="{h(job_url(name))}">← {h(name)}</a></p>'
        f"<h1>Delete job {h(name)} {badge(status)}?</h1>"
        '<div class="panel"><p>This removes the job\'s record and what it keeps:</p>'
        f"<ul>{also}</ul><p>Its outputs stay where they are. A deleted job cannot be "
        "resumed, and its name is free again.</p>"
        f'<form method="post" action="{h(job_url(name))}/delete">'
        f'<input type="hidden" name="token" value="{h(token)}">'
        '<button class="button danger" type="submit" id="confirm-delete">Delete job'
        f'</button> <a href="{h(job_url(name))}">Cancel</a></form></div>'
    )
    return page(f"Delete job {name}", body, here=f"jobs-{kind_of(record)}")


def message_page(title: str, message: str) -> str:
    """A small page for 404 and refused requests."""
    body = f'<h1>{h(title)}</h1><div class="error" role="alert">{h(message)}</div>'
    return page(title, body + '<p><a href="/">← Batch inference jobs</a></p>')
