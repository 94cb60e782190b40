"""Security: nothing a user feeds pbatch runs code, writes outside the output folder or
shows credentials (no pickle, no eval, no shell; safe output names; no secret in job
records, messages or logs)."""

from __future__ import annotations

import ast
import os
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import PBATCH
from hypothesis import given, settings
from hypothesis import strategies as st
from s3server import ACCESS_KEY, SECRET_KEY

from personalize_batch import storage as pio
from personalize_batch.errors import StorageError

PACKAGE = Path(pio.__file__).resolve().parent.parent
ROOT = PACKAGE.parent
USERS = (ROOT / "examples" / "users.json").read_bytes()


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.rglob("*.py"))]


# The one place that starts a process: the detached worker of an asynchronous job,
# `python -m personalize_batch.service.worker NAME` as an argument list (no shell).
SUBPROCESS_ALLOWED = {"personalize_batch/service/control.py"}


def test_no_pickle_eval_exec_or_shell_anywhere() -> None:
    found = []
    for path, tree in _modules():
        banned_modules = {"pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
        if str(path.relative_to(ROOT)) not in SUBPROCESS_ALLOWED:
            banned_modules.add("subprocess")
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names.append(getattr(node, "module", None) or "")
                if any(n.split(".")[0] in banned_modules for n in names):
                    found.append(f"{where} imports {names}")
            if isinstance(node, ast.Call):
                func = node.func
                called = ast.unparse(func)
                shells = ("os.system", "os.popen", "os.exec", "os.spawn")
                if "subprocess" in banned_modules:
                    shells += ("subprocess.",)
                if called in ("eval", "exec", "compile", "__import__") or called.startswith(shells):
                    found.append(f"{where} calls {called}")
                for kw in node.keywords:
                    if kw.arg == "shell" and not (
                        isinstance(kw.value, ast.Constant) and kw.value.value is False
                    ):
                        found.append(f"{where} passes shell=")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("loads", "load")
                and (isinstance(node.value, ast.Name) and node.value.id in banned_modules)
            ):
                found.append(f"{where} uses {node.value.id}.{node.attr}")
    assert found == []


def test_every_numpy_read_refuses_pickle() -> None:
    """np.load / read_array calls pass allow_pickle=False explicitly; nothing saves with
    allow_pickle=True."""
    calls = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            kws = {kw.arg: kw.value for kw in node.keywords}
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if name in ("read_array", "load") and "np" in ast.unparse(node.func).split(".")[0]:
                value = kws.get("allow_pickle")
                calls.append(where)
                assert isinstance(value, ast.Constant) and value.value is False, where
            if "allow_pickle" in kws:
                value = kws["allow_pickle"]
                assert isinstance(value, ast.Constant) and value.value is False, where
    assert calls, "the solution loader reads arrays somewhere"


# --- output names derived from S3 keys ---------------------------------------------------


class _ListingOnly:
    """A stand-in S3 client that lists the given keys the way AWS would (SeaweedFS
    refuses `.` and `..` segments and collapses `//`, so it cannot serve these)."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def head_object(self, **kw: Any) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "404"}}, "HeadObject")

    def get_paginator(self, name: str) -> Any:
        keys = self.keys

        class Paginator:
            def paginate(self, Bucket: str, Prefix: str) -> list[dict]:  # noqa: N803
                return [{"Contents": [{"Key": k} for k in keys if k.startswith(Prefix)]}]

        return Paginator()


def _inputs(monkeypatch: pytest.MonkeyPatch, keys: list[str], url: str) -> list[pio.InputRef]:
    import botocore.exceptions  # noqa: F401  (storage maps botocore errors once it is imported)

    monkeypatch.setattr(pio.s3, "s3_client", lambda endpoint_url=None: _ListingOnly(keys))
    return pio.list_inputs(url)


HOSTILE_KEYS = [
    "in/../../x.json",
    "in/../etc/passwd",
    "in//etc/shadow.json",
    "in/./a.json",
    "in/a/../../../../tmp/evil.json",
    "in/..\\..\\win.json",
    "in/.../dots.json",
    "in/ /space.json",
    "in/\u2024\u2024/one-dot-leaders.json",
]


def _inside(folder: Path, url: str) -> bool:
    real = os.path.realpath(url)
    return os.path.commonpath([real, os.path.realpath(folder)]) == os.path.realpath(folder)


def test_hostile_keys_stay_inside_the_output_folder(monkeypatch, tmp_path) -> None:
    refs = _inputs(monkeypatch, HOSTILE_KEYS, "s3://bkt/in/")
    out = tmp_path / "out"
    urls = [pio.output_url(str(out), ref.name, None) for ref in refs]
    # a `.`-segment makes a key hidden (skipped, as `.x` files are); three remain
    assert sorted(ref.name for ref in refs) == [
        " /space.json",
        "etc/shadow.json",
        "․․/one-dot-leaders.json",
    ]
    assert all(_inside(out, u) for u in urls), urls
    assert len(set(urls)) == len(urls)


def test_keys_that_would_share_an_output_name_are_refused(monkeypatch) -> None:
    """`in/a\\b.json` and `in/a/b.json` (or `in//b.json` and `in/b.json`) gave the same
    output name: the second output silently replaced the first, and its lines were lost."""
    for keys, name in (
        (["in/a\\b.json", "in/a/b.json"], "a/b.json"),
        (["in//b.json", "in/b.json"], "b.json"),
    ):
        with pytest.raises(StorageError, match=f"same output.*{name}"):
            _inputs(monkeypatch, keys, "s3://bkt/in/")


segment = st.one_of(
    st.sampled_from(["", ".", "..", "...", "\\..", "..\\", " ", "~", "a", "b.json"]),
    st.text(st.sampled_from("./\\ab~"), max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(names=st.lists(st.lists(segment, min_size=1, max_size=6), min_size=1, max_size=6))
def test_any_key_maps_inside_the_output_folder_or_is_refused(names) -> None:
    keys = sorted({"in/" + "/".join(parts) for parts in names})
    folder = Path("/srv/out")
    with pytest.MonkeyPatch.context() as mp:
        try:
            refs = _inputs(mp, keys, "s3://bkt/in/")
        except StorageError as exc:
            assert any(w in str(exc) for w in ("same output", "no objects", "cannot derive"))
            return
    urls = [pio.output_url(str(folder), ref.name, None) for ref in refs]
    assert all(_inside(folder, u) for u in urls), urls
    assert len(set(urls)) == len(urls)


def test_odd_keys_end_to_end(s3_env, s3_client, s3_bucket, solutions, tmp_path) -> None:
    """What a real server accepts: every output lands inside the output folder."""
    keys = ["in/a..b/w.json", "in/%2e%2e/q.json", "in/sub/é+ü.json", "in/ x.json", "in/.../h"]
    for key in keys:
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=USERS)
    out = tmp_path / "work" / "out"
    out.mkdir(parents=True)
    before = set(tmp_path.rglob("*"))
    proc = subprocess.run(
        [*PBATCH, "run", "-q", "-s", solutions["user-personalization"], "-i"]
        + [f"s3://{s3_bucket}/in/", "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    created = {p for p in set(tmp_path.rglob("*")) - before if p.is_file()}
    assert created and all(_inside(out, str(p)) for p in created)
    assert sorted(str(p.relative_to(out)) for p in created) == sorted(
        k.removeprefix("in/") + ".out"
        for k in keys[:-1]  # `.../h` is hidden
    )


# --- credentials ------------------------------------------------------------------------


WRONG_SECRET = "wr0ng-s3cret-d1e5b7"


def test_credentials_never_reach_records_messages_or_the_store(
    s3_env, s3_client, s3_bucket, solutions, tmp_path, pbatch_home
) -> None:
    """Successful and failing S3 jobs: the secret key (right or wrong) appears nowhere –
    not on stdout or stderr, not in `jobs list`/`describe`, not in the job store's bytes.
    (Every wrong setting of benchmarks/reliability.py checks its messages too.)"""
    s3_client.put_object(Bucket=s3_bucket, Key="in/users.json", Body=USERS)
    sol = str(solutions["user-personalization"])
    env = {**os.environ, "PBATCH_HOME": str(pbatch_home)}
    runs = {
        "ok": ([f"s3://{s3_bucket}/in/users.json", "-o", f"s3://{s3_bucket}/out/"], {}),
        "bad-secret": (
            [f"s3://{s3_bucket}/in/users.json"],
            {"AWS_SECRET_ACCESS_KEY": WRONG_SECRET},
        ),
        "bad-secret-output": (
            [str(ROOT / "examples" / "users.json"), "-o", f"s3://{s3_bucket}/o2/"],
            {"AWS_SECRET_ACCESS_KEY": WRONG_SECRET},
        ),
    }
    seen = []
    for name, (args, changes) in runs.items():
        proc = subprocess.run(
            [*PBATCH, "run", "-s", sol, "--job-name", name, "-i", *args],
            env={**env, **changes},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == (0 if name == "ok" else 1), (name, proc.stderr)
        seen += [proc.stdout, proc.stderr]
    for cmd in (["jobs", "list"], *(["jobs", "describe", n] for n in runs)):
        proc = subprocess.run([*PBATCH, *cmd], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        seen.append(proc.stdout)
    records = [orjson.loads(s) for s in seen[-len(runs) :]]
    assert [r["batchInferenceJob"]["status"] for r in records].count("ACTIVE") == 1
    with sqlite3.connect(pbatch_home / "jobs.db") as db:
        db.execute("PRAGMA wal_checkpoint(FULL)")
    seen += [p.read_bytes().decode("latin-1") for p in pbatch_home.iterdir() if p.is_file()]
    for text in seen:
        for secret in (SECRET_KEY, WRONG_SECRET):
            assert secret not in text
    assert ACCESS_KEY not in "".join(seen[: 2 * len(runs)])  # not even the key id


def test_boto3_and_botocore_are_pinned_together_and_installed() -> None:
    """pyproject pins both (see its comment: aiobotocore, pulled in by s3fs, would
    otherwise downgrade botocore under boto3), and the pinned versions are what runs."""
    from importlib.metadata import version

    text = (ROOT / "pyproject.toml").read_text()
    pins = dict(re.findall(r'"(boto3|botocore)==([0-9.]+)"', text))
    assert set(pins) == {"boto3", "botocore"} and pins["boto3"] == pins["botocore"], pins
    for name, pinned in pins.items():
        assert version(name) == pinned, f"{name} {version(name)} installed; reinstall: {pinned}"


@pytest.mark.parametrize("where", ["input", "output"])
def test_credentials_in_an_s3_url_are_refused_without_showing_them(
    where, solutions, tmp_path, pbatch_home
) -> None:
    """smart_open accepts `s3://KEY:SECRET@bucket/key`; pbatch stored that URL in the job
    record and printed it (over two lines) in the failure reason."""
    secret = "url-s3cr3t-9f2d"
    url = f"s3://AKIAEXAMPLE:{secret}@bucket/in/"
    args = ["-i", url] if where == "input" else ["-i", str(ROOT / "examples" / "users.json")]
    args += ["-o", url if where == "output" else str(tmp_path)]
    env = {**os.environ, "PBATCH_HOME": str(pbatch_home), "AWS_EC2_METADATA_DISABLED": "true"}
    proc = subprocess.run(
        [*PBATCH, "run", "-s", str(solutions["popularity-count"]), "--job-name", "u", *args]
        + ["--endpoint-url", "http://127.0.0.1:9"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "credentials in s3:// URLs" in proc.stderr
    described = subprocess.run([*PBATCH, "jobs", "describe", "u"], env=env, capture_output=True)
    for text in (proc.stdout, proc.stderr, described.stdout.decode()):
        assert secret not in text and "AKIAEXAMPLE" not in text


def test_s3_messages_are_one_line(monkeypatch) -> None:
    """botocore's parameter errors span lines; `pbatch: error:` promises one."""
    from botocore.exceptions import ParamValidationError

    exc = ParamValidationError(report='Invalid bucket name "a b":\nmust match "^x$"')
    assert "\n" not in pio.describe_s3_error(exc)
