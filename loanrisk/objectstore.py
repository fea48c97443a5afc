"""The one boto3 S3 client factory of the platform (the local s3proxy, AWS S3, or any S3-compatible store)."""

from __future__ import annotations

from typing import Any

from loanrisk.settings import S3Settings


def s3_client(s3: S3Settings, attempts: int = 3) -> Any:
    """A boto3 client for ``s3``: path-style when configured, and checksum headers only when required
    (newer SDKs send CRC checksums by default, which s3proxy rejects as NotImplemented)."""
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=s3.url, aws_access_key_id=s3.access_key_id,
                        aws_secret_access_key=s3.secret(), region_name=s3.region,
                        config=Config(s3={"addressing_style": "path" if s3.path_style else "virtual"},
                                      retries={"max_attempts": attempts, "mode": "standard"},
                                      connect_timeout=5, read_timeout=30,
                                      request_checksum_calculation="when_required",
                                      response_checksum_validation="when_required"))
