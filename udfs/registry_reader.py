"""Read-only access to model registry files (no listing): a folder, a file:// URI or s3:// through pyarrow's S3
file system (the AWS SDK: it signs every request, session tokens included, and with no keys given takes the SDK's
default credential chain: environment, AWS_PROFILE, web identity, instance metadata).

Every read is capped: the bytes are read in chunks and the read stops one byte past the cap (an object's size,
as S3 declares it before any byte is sent, or a file size over it is refused before the body is read), so an
oversized or endless object never lands in memory whole. The cap is ``model.max_model_bytes`` for a model file
and ``MAX_DOCUMENT_BYTES`` for the JSON files.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from contracts.registry_layout import (
    DEFAULT_MAX_MODEL_BYTES, METADATA_FILE, MODEL_FILE, challengers_path, champion_history_path, champion_path,
    version_path,
)

_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CHUNK = 1 << 20  # bytes per read of a capped download
MAX_DOCUMENT_BYTES = 1 << 20  # champion.json, challengers.json, champion_history.json, metadata.json: a few KiB each


@dataclass(frozen=True)
class S3Endpoint:
    """An S3-compatible endpoint addressed path-style: ``{endpoint}/{bucket}/{key}``.

    With no keys, requests are signed with whatever the AWS SDK's default credential chain finds.
    """

    endpoint: str
    region: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    session_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.endpoint.startswith(("http://", "https://")):
            raise ValueError(f"S3 endpoint must be an http(s) URL, got {self.endpoint!r}")
        parts = urlsplit(self.endpoint)
        if not parts.netloc or parts.path.strip("/") or parts.query:
            raise ValueError(f"S3 endpoint must be scheme://host[:port] with no path, got {self.endpoint!r}")
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise ValueError("S3 access_key_id and secret_access_key go together: give both, or neither for the "
                             "AWS SDK's default credential chain")
        if self.session_token and not self.secret_access_key:
            raise ValueError("an S3 session_token needs the access_key_id and secret_access_key it belongs to")

    @classmethod
    def from_mapping(cls, conf: Mapping[str, Any]) -> S3Endpoint:
        """From a dict with endpoint, region and optionally access_key_id, secret_access_key, session_token."""
        unknown = set(conf) - {"endpoint", "region", "access_key_id", "secret_access_key", "session_token"}
        if unknown:
            raise ValueError(f"unknown S3 settings: {', '.join(sorted(unknown))}")
        if not conf.get("endpoint"):
            raise ValueError("S3 settings need an endpoint URL")
        return cls(endpoint=str(conf["endpoint"]), region=str(conf.get("region") or "us-east-1"),
                   access_key_id=str(conf.get("access_key_id") or ""),
                   secret_access_key=str(conf.get("secret_access_key") or ""),
                   session_token=conf.get("session_token") or None)


class RegistryReadError(Exception):
    """A registry file could not be read (unreachable store, denied, timed out, malformed pointer)."""


class ObjectNotFound(RegistryReadError):
    """The registry file does not exist."""

    def __init__(self, uri: str, detail: str = "") -> None:
        super().__init__(f"{uri} does not exist" + (f" ({detail})" if detail else ""))
        self.uri = uri


class ObjectTooLarge(RegistryReadError):
    """The registry file is larger than the cap; it was not read past the cap."""

    def __init__(self, uri: str, max_bytes: int, size: int | None = None) -> None:
        self.uri, self.max_bytes, self.size = uri, max_bytes, size
        super().__init__(f"{uri} is larger than the cap of {max_bytes} bytes: {self.told}; not read further")

    @property
    def told(self) -> str:
        """How large the object is, as far as it was read or declared."""
        return f"{self.size} bytes" if self.size is not None else "more than that"


def read_capped(stream: Any, uri: str, max_bytes: int | None) -> bytes:
    """Everything ``stream.read`` gives, up to ``max_bytes`` (ObjectTooLarge as soon as one more byte arrives)."""
    if max_bytes is None:
        return bytes(stream.read())
    chunks: list[bytes] = []
    total = 0
    while total <= max_bytes:
        chunk = stream.read(min(_CHUNK, max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    raise ObjectTooLarge(uri, max_bytes)


def _version_names(values: Any) -> list[str]:
    """The valid version names in a JSON list, in order (anything else is skipped: it could not be loaded)."""
    if not isinstance(values, list):
        return []
    return [v for v in values if isinstance(v, str) and _VERSION_NAME.match(v)]


def earlier_champions(pointer: Mapping[str, Any]) -> list[str]:
    """The champions before the pointer's, oldest first: its ``history``, or ``previous`` in older pointers."""
    if isinstance(pointer.get("history"), list):
        return _version_names(pointer["history"])
    return _version_names([pointer.get("previous")])


def _local_path(uri: str) -> Path:
    """The filesystem path of a plain path or ``file://`` URI."""
    return Path(uri[len("file://"):] if uri.startswith("file://") else uri)


@lru_cache(maxsize=16)
def _filesystem(s3: S3Endpoint, timeout_s: float) -> Any:
    """pyarrow's S3 file system for ``s3``, made once per endpoint and timeout: it keeps its connections and,
    with the default chain, refreshes expiring role credentials by itself.

    One attempt per request, no retry inside a read (the scorer's next poll is the retry), so a read fails
    within about its timeout; bucket creation is off, as the reader never writes. Path-style requests on the
    endpoint given, not through an HTTP proxy (the SDK ignores the proxy variables).
    """
    from pyarrow import fs  # only an s3:// registry needs it

    parts = urlsplit(s3.endpoint)
    keys: dict[str, Any] = {}
    if s3.access_key_id:
        keys = {"access_key": s3.access_key_id, "secret_key": s3.secret_access_key,
                "session_token": s3.session_token or None}
    return fs.S3FileSystem(**keys, region=s3.region, endpoint_override=parts.netloc, scheme=parts.scheme,
                           connect_timeout=timeout_s, request_timeout=timeout_s,
                           retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=1),
                           allow_bucket_creation=False, allow_bucket_deletion=False)


def s3_get(uri: str, s3: S3Endpoint, timeout_s: float = 10.0, max_bytes: int | None = None) -> bytes:
    """The object at ``s3://bucket/key``, read up to ``max_bytes`` (None: no cap).

    Its size comes first (a HEAD request: s3:GetObject is the only permission needed), so an object declared
    over the cap is refused before any GET; the body then comes in chunks, each a ranged GET the SDK writes into
    a buffer of the requested size, so a server sending more than asked fails the read instead of filling memory.
    """
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or not key:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    try:
        with _filesystem(s3, float(timeout_s)).open_input_file(f"{bucket}/{key}") as f:
            size = f.size()
            if max_bytes is not None and size > max_bytes:
                raise ObjectTooLarge(uri, max_bytes, size)
            return read_capped(f, uri, max_bytes)
    except FileNotFoundError:
        # S3 answers a HEAD without a body, so a missing key and a missing bucket look alike.
        raise ObjectNotFound(uri, "NoSuchKey or NoSuchBucket") from None
    except OSError as exc:
        message = " ".join(str(exc).split())
        if "NETWORK_CONNECTION" in message:  # the SDK's error type for refused, reset and timed-out connections
            raise RegistryReadError(f"GET {uri}: cannot reach {s3.endpoint} within {timeout_s:g}s: {message}") from None
        raise RegistryReadError(f"GET {uri} via {s3.endpoint}: {message}") from None


def read_bytes(uri: str, *, s3: S3Endpoint | None = None, timeout_s: float = 10.0,
               max_bytes: int | None = None) -> bytes:
    """The bytes at a local path, ``file://`` URI or ``s3://bucket/key`` (ObjectNotFound when absent).

    ``max_bytes``: refuse (ObjectTooLarge) an object larger than this without reading more than one byte past it.
    """
    if uri.startswith("s3://"):
        if s3 is None:
            raise ValueError(f"{uri} needs S3 settings (endpoint, region, and keys unless the default chain applies)")
        return s3_get(uri, s3, timeout_s, max_bytes)
    path = _local_path(uri)
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size  # 0 for a pipe or device: the chunked read still stops at the cap
            if max_bytes is not None and size > max_bytes:
                raise ObjectTooLarge(uri, max_bytes, size)
            return read_capped(f, uri, max_bytes)
    except FileNotFoundError:
        raise ObjectNotFound(uri) from None
    except OSError as exc:
        raise RegistryReadError(f"cannot read {uri}: {type(exc).__name__}: {exc}") from None


class RegistryReader:
    """The champion pointer, the champion history and a version's files under one registry root."""

    def __init__(self, root: str, *, s3: S3Endpoint | Mapping[str, Any] | None = None, timeout_s: float = 10.0,
                 max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES) -> None:
        if not root:
            raise ValueError("the registry root is empty")
        if max_model_bytes < 1:
            raise ValueError(f"the model size cap must be positive, got {max_model_bytes}")
        self.root = root.rstrip("/")
        self.s3 = S3Endpoint.from_mapping(s3) if isinstance(s3, Mapping) else s3
        if self.root.startswith("s3://") and self.s3 is None:
            raise ValueError(f"registry {self.root} needs S3 settings (endpoint, region, and keys unless the default "
                             "chain applies)")
        self.timeout_s = timeout_s
        self.max_model_bytes = int(max_model_bytes)

    def read(self, uri: str, max_bytes: int = MAX_DOCUMENT_BYTES) -> bytes:
        """The bytes of the registry file at ``uri`` (ObjectTooLarge past ``max_bytes``)."""
        return read_bytes(uri, s3=self.s3, timeout_s=self.timeout_s, max_bytes=max_bytes)

    def _json(self, uri: str) -> Any:
        """The parsed registry file at ``uri`` (RegistryReadError when it is not JSON)."""
        try:
            return json.loads(self.read(uri))
        except ValueError as exc:
            raise RegistryReadError(f"{uri} is not JSON: {exc}") from None

    def champion(self) -> dict[str, Any]:
        """The parsed champion pointer (ObjectNotFound before the first promotion)."""
        uri = champion_path(self.root)
        pointer = self._json(uri)
        version = pointer.get("version") if isinstance(pointer, dict) else None
        if not isinstance(version, str) or not _VERSION_NAME.match(version):
            raise RegistryReadError(f"{uri} has no valid version: {version!r}")
        return pointer

    def champion_history(self) -> list[str]:
        """champion_history.json's champions, oldest first (the last was champion when it was written)."""
        uri = champion_history_path(self.root)
        doc = self._json(uri)
        if not isinstance(doc, dict) or not isinstance(doc.get("champions"), list):
            raise RegistryReadError(f"{uri} has no champions list")
        return _version_names(doc["champions"])

    def challengers(self) -> list[dict[str, Any]]:
        """challengers.json's entries, in order (ObjectNotFound before the first challenger was set)."""
        uri = challengers_path(self.root)
        doc = self._json(uri)
        entries = doc.get("challengers") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise RegistryReadError(f"{uri} has no challengers list")
        bad = [e for e in entries if not isinstance(e, dict) or not isinstance(e.get("version"), str)
               or not _VERSION_NAME.match(e["version"])]
        if bad:
            raise RegistryReadError(f"{uri} has entries without a valid version: {bad[:2]!r}")
        return entries

    def champion_version(self) -> str:
        """The champion's version name."""
        return str(self.champion()["version"])

    def version_file(self, version: str, name: str) -> bytes:
        """One file of a version (``MODEL_FILE``, read up to ``max_model_bytes``, or ``METADATA_FILE``)."""
        if not _VERSION_NAME.match(version):
            raise ValueError(f"invalid version name {version!r}")
        cap = self.max_model_bytes if name == MODEL_FILE else MAX_DOCUMENT_BYTES
        return self.read(version_path(self.root, version, name), cap)

    def model_files(self, version: str) -> tuple[bytes, bytes]:
        """(model.onnx bytes, metadata.json bytes) of ``version``."""
        return self.version_file(version, MODEL_FILE), self.version_file(version, METADATA_FILE)
