"""`pbatch` end to end against a real S3 server (SeaweedFS on 127.0.0.1), A.8-A.10.

Every test runs the real CLI in a subprocess with the ``AWS_*`` variables of ``s3_env``
and its own ``PBATCH_HOME``. S3 results are compared byte for byte with a local run of
the same solution on the same input. Failures must give exit 1, one ``pbatch: error:``
line, a ``CREATE FAILED`` job record, no output object, no pending multipart upload and
never the secret key.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import PBATCH_SCRIPT
from s3server import SECRET_KEY

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
USERS = (EXAMPLES / "users.json").read_bytes()  # user-personalization input, 20 lines
POPULARITY = (EXAMPLES / "popularity.json").read_bytes()  # popularity-count input, 5 lines
INPUT_OF = {"user-personalization": USERS, "popularity-count": POPULARITY}
_LINES = USERS.splitlines(keepends=True)
# Inputs of the prefix tests, by leaf name (the same bytes give the same output bytes).
PREFIX_INPUTS = {
    "in/users.json": USERS,
    "in/b.json.gz": gzip.compress(b"".join(reversed(_LINES)), mtime=0),
    # `?` and `#` are plain key characters (a URL parser would cut the key there)
    "in/sub/c é+%20?#1.json": b"".join(_LINES[:5]),
    "in_test/d.json": b"".join(_LINES[5:9]),
}
# What the local reference runs read: {recipe: {file name: bytes}}.
LOCAL_INPUTS = {
    "user-personalization": {k.rsplit("/", 1)[1]: v for k, v in PREFIX_INPUTS.items()},
    "popularity-count": {"popularity.json": POPULARITY},
}
WRONG_SECRET = "wrong-secret-4f1c9a"
# A refused endpoint must fail within this (botocore's retries included).
REFUSED_ENDPOINT_LIMIT_S = 15.0


def pbatch(*args: Any, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real CLI; stdout and stderr are captured separately, as text."""
    return subprocess.run(
        [*PBATCH_SCRIPT, *map(str, args)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def spawn(*args: Any, env: dict[str, str]) -> subprocess.Popen:
    """Start the real CLI without waiting (to run independent set-up steps at once)."""
    return subprocess.Popen(
        [*PBATCH_SCRIPT, *map(str, args)],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def clean_env(home: Path) -> dict[str, str]:
    """os.environ without AWS settings, with a private PBATCH_HOME (for local runs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PBATCH_HOME"] = str(home)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def put(client: Any, bucket: str, key: str, body: bytes) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=body)


def get(client: Any, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def keys(client: Any, bucket: str, prefix: str = "") -> set[str]:
    """Every key under `prefix` (the test buckets are small: one page)."""
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    assert not listed.get("IsTruncated")
    return {obj["Key"] for obj in listed.get("Contents", [])}


def pending_uploads(client: Any, bucket: str) -> list[str]:
    """Keys of multipart uploads started but neither completed nor aborted."""
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def describe(name: str, env: dict[str, str]) -> tuple[dict[str, Any], str]:
    """`pbatch jobs describe NAME` -> (the batchInferenceJob record, the raw stdout)."""
    result = pbatch("jobs", "describe", name, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["batchInferenceJob"], result.stdout


def assert_one_error_line(result: subprocess.CompletedProcess, *secrets: str) -> str:
    """Exit 1, exactly one `pbatch: error:` line on stderr, no traceback, no secret."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pbatch: error: "), result.stderr
    for secret in (SECRET_KEY, *secrets):
        assert secret not in result.stderr
        assert secret not in result.stdout
    return lines[0]


def assert_job_failed(name: str, env: dict[str, str], *secrets: str) -> dict[str, Any]:
    """`jobs describe` shows CREATE FAILED with a failureReason, and no secret."""
    record, raw = describe(name, env)
    assert record["status"] == "CREATE FAILED", record
    assert isinstance(record.get("failureReason"), str) and record["failureReason"].strip()
    for secret in (SECRET_KEY, *secrets):
        assert secret not in raw
    return record


# --- module fixtures: solutions and local reference outputs -------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """popularity-count and user-personalization solutions, trained once by the CLI."""
    folder = tmp_path_factory.mktemp("s3-solutions")
    env = clean_env(folder / "home")
    procs = {}
    for recipe in INPUT_OF:
        out = folder / f"{recipe}.npz"
        procs[recipe] = (
            out,
            spawn(
                "train", "-q", "-r", recipe, "-i", EXAMPLES / "interactions.csv", "-o", out, env=env
            ),
        )
    solutions = {}
    for recipe, (out, proc) in procs.items():
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        solutions[recipe] = out
    return solutions


@pytest.fixture(scope="module")
def expected(
    trained: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, bytes]]:
    """{recipe: {NAME.out: bytes}}: local runs (one per recipe) on LOCAL_INPUTS."""
    procs = {}
    for recipe, files in LOCAL_INPUTS.items():
        folder = tmp_path_factory.mktemp("local-run")
        (folder / "in").mkdir()
        for name, body in files.items():
            (folder / "in" / name).write_bytes(body)
        procs[recipe] = (
            folder / "out",
            spawn(
                "run",
                "-q",
                "-s",
                trained[recipe],
                "-i",
                folder / "in",
                "-o",
                folder / "out",
                env=clean_env(folder / "home"),
            ),
        )
    outputs = {}
    for recipe, (out, proc) in procs.items():
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        outputs[recipe] = {p.name: p.read_bytes() for p in out.iterdir()}
        assert set(outputs[recipe]) == {f"{name}.out" for name in LOCAL_INPUTS[recipe]}
    return outputs


@pytest.fixture
def env(s3_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The subprocess environment: s3_env's AWS_* settings and a private PBATCH_HOME."""
    return {**os.environ, **s3_env, "PBATCH_HOME": str(tmp_path / "pbatch-home")}


# --- successful jobs -------------------------------------------------------------------


REFERENCE_OF = {"user-personalization": "users.json.out", "popularity-count": "popularity.json.out"}


@pytest.mark.parametrize("recipe", sorted(INPUT_OF))
def test_s3_key_to_s3_prefix_equals_local_run(
    recipe, trained, expected, env, s3_client, s3_bucket
) -> None:
    body = INPUT_OF[recipe]
    put(s3_client, s3_bucket, "in/users.json", body)
    put(s3_client, s3_bucket, "out/users.json.out", b"an older output\n")  # replaced
    result = pbatch(
        "run",
        "-s",
        trained[recipe],
        "-i",
        f"s3://{s3_bucket}/in/users.json",
        "-o",
        f"s3://{s3_bucket}/out/",
        "--job-name",
        "to-s3",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    reference = expected[recipe][REFERENCE_OF[recipe]]
    assert get(s3_client, s3_bucket, "out/users.json.out") == reference
    assert keys(s3_client, s3_bucket) == {"in/users.json", "out/users.json.out"}
    assert pending_uploads(s3_client, s3_bucket) == []
    record, _ = describe("to-s3", env)
    assert record["status"] == "ACTIVE"
    assert record["jobInput"]["s3DataSource"]["path"] == f"s3://{s3_bucket}/in/users.json"
    assert record["outputs"] == [f"s3://{s3_bucket}/out/users.json.out"]
    assert record["linesRead"] == record["linesAnswered"] == body.count(b"\n")


def test_train_from_s3_interactions_csv(trained, env, s3_client, s3_bucket, tmp_path) -> None:
    """The same CSV read from S3 gives the same solution arrays as read locally."""
    csv = (EXAMPLES / "interactions.csv").read_bytes()
    url = f"s3://{s3_bucket}/data/interactions.csv"
    put(s3_client, s3_bucket, "data/interactions.csv", csv)
    model = tmp_path / "from-s3.npz"
    result = pbatch("train", "-r", "popularity-count", "-i", url, "-o", model, env=env)
    assert result.returncode == 0, result.stderr
    with (
        np.load(model, allow_pickle=False) as got,
        np.load(trained["popularity-count"], allow_pickle=False) as want,
    ):
        assert sorted(got.files) == sorted(want.files)
        for name in want.files:
            if name != "meta":  # holds the source path and the creation time
                np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        got_training = json.loads(str(got["meta"]))["training"]
        want_training = json.loads(str(want["meta"]))["training"]
    assert got_training["interactions"] == url
    assert got_training["interactionsSha256"] == hashlib.sha256(csv).hexdigest()
    for field in ("interactionsSha256", "rowsRead", "interactionsUsed", "users", "items"):
        assert got_training[field] == want_training[field], field


def _prefix_layout(client: Any, bucket: str) -> None:
    """PREFIX_INPUTS (a plain, a .gz and a nested input under `in/`, and a sibling
    `in_test/` folder) plus a hidden object and old outputs under `in/`."""
    for key, body in PREFIX_INPUTS.items():
        put(client, bucket, key, body)
    put(client, bucket, "in/.x", b"not json, and hidden\n")
    put(client, bucket, "in/old.json.out", b"an output, not an input\n")
    put(client, bucket, "in/old.json.out.gz", b"a compressed output, not an input\n")


def test_prefix_gives_one_out_per_input(trained, expected, env, s3_client, s3_bucket) -> None:
    _prefix_layout(s3_client, s3_bucket)
    result = pbatch(
        "run",
        "-s",
        trained["user-personalization"],
        "-i",
        f"s3://{s3_bucket}/in/",
        "-o",
        f"s3://{s3_bucket}/out/",
        "--job-name",
        "prefix",
        env=env,
    )
    assert result.returncode == 0, result.stderr  # `.x` or an old output read: exit 3
    inputs = [k.removeprefix("in/") for k in PREFIX_INPUTS if k.startswith("in/")]
    assert keys(s3_client, s3_bucket, "out/") == {f"out/{k}.out" for k in inputs}
    reference = expected["user-personalization"]
    for key in inputs:
        leaf = key.rsplit("/", 1)[-1]
        assert get(s3_client, s3_bucket, f"out/{key}.out") == reference[f"{leaf}.out"], key
    record, _ = describe("prefix", env)
    assert record["status"] == "ACTIVE"
    assert record["linesRead"] == 20 + 20 + 5
    assert record["linesWithErrors"] == 0


def test_prefix_without_slash_matches_sibling_keys(
    trained, expected, env, s3_client, s3_bucket
) -> None:
    """Personalize's prefix semantics: `in` also matches `in_test/...`; output names keep
    the keys' paths below the prefix's folder, so `in/` and `in_test/` never collide."""
    _prefix_layout(s3_client, s3_bucket)
    result = pbatch(
        "run",
        "-s",
        trained["user-personalization"],
        "-i",
        f"s3://{s3_bucket}/in",
        "-o",
        f"s3://{s3_bucket}/out/",
        "--job-name",
        "noslash",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert keys(s3_client, s3_bucket, "out/") == {f"out/{k}.out" for k in PREFIX_INPUTS}
    for key in PREFIX_INPUTS:
        leaf = key.rsplit("/", 1)[1]
        reference = expected["user-personalization"][f"{leaf}.out"]
        assert get(s3_client, s3_bucket, f"out/{key}.out") == reference, key
    assert describe("noslash", env)[0]["linesRead"] == 20 + 20 + 5 + 4


@pytest.mark.parametrize(
    ("given", "expected_outputs"),
    [
        ("in/users.json", {"in/users.json.out"}),
        ("in/", {"in/users.json.out", "in/more/two.json.out"}),
    ],
)
def test_default_output_is_beside_the_input(
    given, expected_outputs, trained, expected, env, s3_client, s3_bucket
) -> None:
    put(s3_client, s3_bucket, "in/users.json", USERS)
    put(s3_client, s3_bucket, "in/more/two.json", b"".join(_LINES[:2]))
    before = keys(s3_client, s3_bucket)
    result = pbatch(
        "run",
        "-s",
        trained["user-personalization"],
        "-i",
        f"s3://{s3_bucket}/{given}",
        "--job-name",
        "beside",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert keys(s3_client, s3_bucket) - before == expected_outputs
    reference = expected["user-personalization"]["users.json.out"]
    assert get(s3_client, s3_bucket, "in/users.json.out") == reference
    record, _ = describe("beside", env)
    assert record["jobOutput"]["s3DataDestination"]["path"] == f"s3://{s3_bucket}/in/"


def test_compress_gzip_writes_out_gz(trained, expected, env, s3_client, s3_bucket) -> None:
    put(s3_client, s3_bucket, "in/users.json", USERS)
    result = pbatch(
        "run",
        "-s",
        trained["user-personalization"],
        "-i",
        f"s3://{s3_bucket}/in/users.json",
        "-o",
        f"s3://{s3_bucket}/out/",
        "--compress",
        "gzip",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert keys(s3_client, s3_bucket, "out/") == {"out/users.json.out.gz"}
    body = get(s3_client, s3_bucket, "out/users.json.out.gz")
    assert body[:2] == b"\x1f\x8b"
    assert gzip.decompress(body) == expected["user-personalization"]["users.json.out"]


@pytest.mark.parametrize("env_endpoint", ["unset", "refused"])
def test_endpoint_url_option(
    env_endpoint, trained, expected, env, s3_server, s3_client, s3_bucket
) -> None:
    """--endpoint-url alone reaches the server, and wins over AWS_ENDPOINT_URL."""
    put(s3_client, s3_bucket, "in/users.json", USERS)
    env = {k: v for k, v in env.items() if not k.startswith("AWS_ENDPOINT_URL")}
    if env_endpoint == "refused":
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"
    result = pbatch(
        "run",
        "-s",
        trained["user-personalization"],
        "-i",
        f"s3://{s3_bucket}/in/users.json",
        "-o",
        f"s3://{s3_bucket}/out/",
        "--endpoint-url",
        s3_server.endpoint_url,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    reference = expected["user-personalization"]["users.json.out"]
    assert get(s3_client, s3_bucket, "out/users.json.out") == reference


# --- failures ----------------------------------------------------------------------------

# Each case: (input, extra args, env changes, a word the failureReason must contain).
# `{b}` is the test bucket, `{port}` a port with nothing listening, `{bad}` a bad solution.
FAILURES = {
    "missing-bucket": ("s3://{b}-missing/in/users.json", [], {}, "NoSuchBucket"),
    "missing-key": ("s3://{b}/in/nope.json", [], {}, "nope.json"),
    "empty-prefix": ("s3://{b}/nothing/", [], {}, "nothing/"),
    "wrong-secret-key": (
        "s3://{b}/in/users.json",
        [],
        {"AWS_SECRET_ACCESS_KEY": WRONG_SECRET},
        "S3",
    ),
    "wrong-secret-prefix": (
        "s3://{b}/in/",
        [],
        {"AWS_SECRET_ACCESS_KEY": WRONG_SECRET},
        "SignatureDoesNotMatch",
    ),
    "wrong-access-key": (
        "s3://{b}/in/users.json",
        [],
        {"AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG0"},
        "S3",
    ),
    # a local input and an S3 output that refuses the signature: the upload never starts
    "wrong-secret-output": (
        str(EXAMPLES / "users.json"),
        [],
        {"AWS_SECRET_ACCESS_KEY": WRONG_SECRET},
        "SignatureDoesNotMatch",
    ),
    "refused-endpoint-option": (
        "s3://{b}/in/users.json",
        ["--endpoint-url", "http://127.0.0.1:{port}"],
        {},
        "unreachable",
    ),
    # A local input and an S3 output on a refused endpoint: the multipart upload cannot
    # even start (smart_open used to retry this for 62 s and end in a bare OSError).
    "refused-endpoint-output": (
        str(EXAMPLES / "users.json"),
        ["--endpoint-url", "http://127.0.0.1:{port}"],
        {},
        "unreachable",
    ),
    "bad-solution": ("s3://{b}/in/users.json", ["-s", "{bad}"], {}, "bad.npz"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_failure_is_one_line_and_a_failed_job(
    case, trained, env, s3_client, s3_bucket, tmp_path
) -> None:
    source, extra, env_changes, reason_word = FAILURES[case]
    put(s3_client, s3_bucket, "in/users.json", USERS)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a solution")
    fill = {"b": s3_bucket, "port": str(free_port()), "bad": str(bad)}
    env = {**env, **{k: v.format(**fill) for k, v in env_changes.items()}}
    args = [
        "run",
        "-s",
        trained["user-personalization"],
        "-i",
        source.format(**fill),
        "-o",
        f"s3://{s3_bucket}/out/",
        "--job-name",
        "doomed",
        *(a.format(**fill) for a in extra),
    ]
    started = time.monotonic()
    result = pbatch(*args, env=env)
    elapsed = time.monotonic() - started
    line = assert_one_error_line(result, WRONG_SECRET)
    assert reason_word in line
    record = assert_job_failed("doomed", env, WRONG_SECRET)
    assert reason_word in record["failureReason"]
    assert keys(s3_client, s3_bucket) == {"in/users.json"}  # no output object
    assert pending_uploads(s3_client, s3_bucket) == []
    if "refused" in case:
        assert elapsed < REFUSED_ENDPOINT_LIMIT_S, f"refused endpoint took {elapsed:.1f} s"


@pytest.mark.parametrize(
    ("key", "env_changes", "reason_word"),
    [
        ("data/interactions.csv", {"AWS_SECRET_ACCESS_KEY": WRONG_SECRET}, "SignatureDoesNotMatch"),
        ("data/nope.csv", {}, "NoSuchKey"),
    ],
)
def test_train_from_s3_failure_is_one_line(
    key, env_changes, reason_word, env, s3_client, s3_bucket, tmp_path
) -> None:
    put(s3_client, s3_bucket, "data/interactions.csv", (EXAMPLES / "interactions.csv").read_bytes())
    result = pbatch(
        "train",
        "-r",
        "popularity-count",
        "-i",
        f"s3://{s3_bucket}/{key}",
        "-o",
        tmp_path / "model.npz",
        env={**env, **env_changes},
    )
    line = assert_one_error_line(result, WRONG_SECRET)
    assert reason_word in line
    assert not (tmp_path / "model.npz").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "pbatch-home"] == []


@pytest.mark.parametrize(
    ("size", "compress"), [("small", None), ("over-one-part", None), ("small", "gzip")]
)
def test_failing_run_keeps_existing_s3_output(
    size, compress, trained, expected, env, s3_client, s3_bucket
) -> None:
    """The second input is a corrupt .gz: the job fails midway, its existing `.out` keeps
    its old bytes and the multipart upload is aborted. `over-one-part` answers ~30,000
    lines (18 MB, more than the 16 MiB part size) before the corruption shows, so a part
    has been uploaded when the upload is aborted."""
    if size == "small":
        corrupt = b"\x1f\x8b\x08\x00" + b"this is not deflate data" * 4
    else:
        corrupt = gzip.compress(POPULARITY * 6000, compresslevel=1, mtime=0)[:-20]
    suffix = ".out.gz" if compress else ".out"
    put(s3_client, s3_bucket, "in/a.json", POPULARITY)
    put(s3_client, s3_bucket, "in/b.json.gz", corrupt)
    old = b'{"an":"old output","that":"must survive"}\n'
    put(s3_client, s3_bucket, f"out/b.json.gz{suffix}", old)
    args = ["--compress", compress] if compress else []
    result = pbatch(
        "run",
        "-s",
        trained["popularity-count"],
        "-i",
        f"s3://{s3_bucket}/in/",
        "-o",
        f"s3://{s3_bucket}/out/",
        "--job-name",
        "midway",
        *args,
        env=env,
    )
    line = assert_one_error_line(result)
    assert "b.json.gz" in line
    record = assert_job_failed("midway", env)
    assert "b.json.gz" in record["failureReason"]
    assert get(s3_client, s3_bucket, f"out/b.json.gz{suffix}") == old
    assert pending_uploads(s3_client, s3_bucket) == []
    # the first input's output was complete, so it was written; nothing else appeared
    assert keys(s3_client, s3_bucket, "out/") == {f"out/a.json{suffix}", f"out/b.json.gz{suffix}"}
    written = get(s3_client, s3_bucket, f"out/a.json{suffix}")
    reference = expected["popularity-count"]["popularity.json.out"]  # a.json is the same
    assert (gzip.decompress(written) if compress else written) == reference


def test_aws_endpoint_url_s3_wins_over_aws_endpoint_url(
    trained, expected, env, s3_server, s3_client, s3_bucket
) -> None:
    put(s3_client, s3_bucket, "in/users.json", USERS)
    env = {
        **env,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ENDPOINT_URL_S3": s3_server.endpoint_url,
    }
    result = pbatch(
        "run",
        "-s",
        trained["user-personalization"],
        "-i",
        f"s3://{s3_bucket}/in/users.json",
        "-o",
        f"s3://{s3_bucket}/out/",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    reference = expected["user-personalization"]["users.json.out"]
    assert get(s3_client, s3_bucket, "out/users.json.out") == reference
