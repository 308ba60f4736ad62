"""The shared S3 fixture is a real HTTP server: boto3 round-trips an object; headlines are read from it."""

from __future__ import annotations

import boto3
import pandas as pd

from tests import DATA
from tradepipe.config import SentimentParams
from tradepipe.features.sentiment import read_headlines

HEADLINES = DATA / "headlines.csv"


def test_s3_server_round_trip(s3_endpoint: str) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="roundtrip")
    s3.put_object(Bucket="roundtrip", Key="a/b.txt", Body=b"bars")
    assert s3.get_object(Bucket="roundtrip", Key="a/b.txt")["Body"].read() == b"bars"
    assert s3_endpoint.startswith("http://127.0.0.1:")


def test_headlines_from_s3(s3_endpoint: str) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="news")
    s3.upload_file(str(HEADLINES), "news", "2013/headlines.csv")
    remote = read_headlines(SentimentParams(path="s3://news/2013/headlines.csv", endpoint_url=s3_endpoint))
    pd.testing.assert_frame_equal(remote, read_headlines(SentimentParams(path=str(HEADLINES))))
