"""The shared S3 fixture is a real HTTP server: boto3 round-trips an object through it."""

from __future__ import annotations

import boto3


def test_s3_server_round_trip(s3_endpoint: str) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="roundtrip")
    s3.put_object(Bucket="roundtrip", Key="a/b.txt", Body=b"bars")
    assert s3.get_object(Bucket="roundtrip", Key="a/b.txt")["Body"].read() == b"bars"
    assert s3_endpoint.startswith("http://127.0.0.1:")
