"""Quick checks that the SeaweedFS fixtures in s3server.py give a working S3."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
import smart_open
from botocore.exceptions import ClientError
from s3server import ACCESS_KEY, REGION, WeedServer


def test_put_and_get_with_smart_open(s3_client: Any, s3_bucket: str) -> None:
    uri = f"s3://{s3_bucket}/dir/hello.jsonl"
    params = {"client": s3_client}
    with smart_open.open(uri, "w", transport_params=params) as fout:
        fout.write('{"a": 1}\n{"a": 2}\n')
    with smart_open.open(uri, "r", transport_params=params) as fin:
        assert fin.read() == '{"a": 1}\n{"a": 2}\n'
    listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="dir/")
    assert [obj["Key"] for obj in listed["Contents"]] == ["dir/hello.jsonl"]


def test_multipart_upload_writes_one_object(s3_client: Any, s3_bucket: str) -> None:
    part = 5 * 1024 * 1024
    data = bytes(range(256)) * (3 * part // 256 + 1)  # ~15 MiB -> 3 parts + a tail
    uri = f"s3://{s3_bucket}/big.bin"
    params = {"client": s3_client, "min_part_size": part}
    with smart_open.open(uri, "wb", transport_params=params) as fout:
        fout.write(data)
    head = s3_client.head_object(Bucket=s3_bucket, Key="big.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-4")  # a completed 4-part upload
    listed = s3_client.list_objects_v2(Bucket=s3_bucket)
    assert [obj["Key"] for obj in listed["Contents"]] == ["big.bin"]
    with smart_open.open(uri, "rb", transport_params={"client": s3_client}) as fin:
        assert fin.read() == data


def test_wrong_secret_is_rejected(s3_server: WeedServer, s3_bucket: str) -> None:
    bad = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key="not-the-secret",
        region_name=REGION,
    )
    with pytest.raises(ClientError) as info:
        bad.put_object(Bucket=s3_bucket, Key="x", Body=b"x")
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_s3_env_reaches_server_with_default_credentials(
    s3_env: dict[str, str], s3_bucket: str
) -> None:
    client = boto3.client("s3")  # credentials, region and endpoint from the environment
    client.put_object(Bucket=s3_bucket, Key="env.txt", Body=b"ok")
    assert client.get_object(Bucket=s3_bucket, Key="env.txt")["Body"].read() == b"ok"
