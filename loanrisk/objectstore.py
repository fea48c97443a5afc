"""The one boto3 S3 client factory of the platform (the local s3proxy, AWS S3, or any S3-compatible store)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from loanrisk.settings import S3Settings


def s3_client(s3: S3Settings, attempts: int = 3) -> Any:
    """A boto3 client for ``s3``: path-style when configured, and checksum headers only when required
    (newer SDKs send CRC checksums by default, which s3proxy rejects as NotImplemented).

    The configured keys (and session token), or with none boto3's default credential chain. Each client gets a
    session of its own: the default session would keep the first credentials it resolved for the whole process.
    """
    import boto3
    from botocore.config import Config
    keys = s3.credentials()
    given = {} if keys is None else {"aws_access_key_id": keys.access_key_id,
                                     "aws_secret_access_key": keys.secret_access_key,
                                     "aws_session_token": keys.session_token}
    return boto3.session.Session().client(
        "s3", endpoint_url=s3.url, region_name=s3.region, **given,
        config=Config(s3={"addressing_style": "path" if s3.path_style else "virtual"},
                      retries={"max_attempts": attempts, "mode": "standard"},
                      connect_timeout=5, read_timeout=30,
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"))


def list_objects(client: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Every object under ``prefix`` (its ListObjectsV2 entry), each once, directory markers left out.

    Pages are chained with StartAfter (the last key seen), not the continuation token: s3proxy returns
    the token of a key holding ``=`` (an Iceberg partition folder) URL-encoded, and given it back it
    serves the same page again, so botocore's paginator stops with "the same next token was received
    twice" on any listing longer than a page.
    """
    after = ""
    while True:
        page = client.list_objects_v2(Bucket=bucket, Prefix=prefix, **({"StartAfter": after} if after else {}))
        contents = page.get("Contents", [])
        for obj in contents:
            if not obj["Key"].endswith("/"):
                yield obj
        if not page.get("IsTruncated") or not contents:
            return
        after = contents[-1]["Key"]
