"""Bars and other files from S3 or an S3-compatible store (MinIO) via boto3's standard credential chain."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from tradepipe.config import FormatParams, S3Params
from tradepipe.data.files import SUFFIXES, read_bars_path
from tradepipe.data.reader import BarsFileError


def client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A boto3 S3 client; credentials come from the environment, config files or instance role."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region)


def download(s3: Any, bucket: str, keys: list[str], folder: Path, prefix: str = "") -> dict[str, str]:
    """Download ``keys`` under ``folder``, keeping their paths below ``prefix``; return local path -> s3:// URL."""
    urls: dict[str, str] = {}
    for key in keys:
        target = folder / key[len(prefix):].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
        urls[str(target)] = f"s3://{bucket}/{key}"
    return urls


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Every .csv/.parquet key under ``prefix``, sorted."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", []) if Path(o["Key"]).suffix.lower() in SUFFIXES]
    return sorted(keys)


def read_s3_bars(cfg: S3Params, fmt: FormatParams) -> pd.DataFrame:
    """Read every bars file under s3://bucket/prefix as canonical bars (same formats as local files)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if not cfg.bucket:
        raise ValueError("data.source 's3' needs data.s3.bucket")
    s3 = client(cfg.endpoint_url, cfg.region)
    try:
        keys = list_keys(s3, cfg.bucket, cfg.prefix)
        if not keys:
            raise ValueError(f"s3://{cfg.bucket}/{cfg.prefix}: no .csv or .parquet object")
        with tempfile.TemporaryDirectory(prefix="tradepipe-s3-") as tmp:
            urls = download(s3, cfg.bucket, keys, Path(tmp), cfg.prefix)
            try:
                return read_bars_path(tmp, fmt)
            except BarsFileError as exc:  # name the object, not the temporary copy
                message = str(exc)
                for local, url in sorted(urls.items(), key=lambda item: -len(item[0])):
                    message = message.replace(local, url)
                raise BarsFileError(message) from exc
    except (BotoCoreError, ClientError) as exc:
        raise ValueError(f"s3://{cfg.bucket}/{cfg.prefix}: {exc}") from exc


def read_s3_object(url: str, endpoint_url: str | None, folder: Path) -> Path:
    """Download one ``s3://bucket/key`` object into ``folder``; return its local path."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = url.removeprefix("s3://").partition("/")
    target = folder / Path(key).name
    try:
        client(endpoint_url).download_file(bucket, key, str(target))
    except (BotoCoreError, ClientError) as exc:
        raise ValueError(f"{url}: {exc}") from exc
    return target
