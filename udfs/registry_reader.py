"""Read-only access to model registry files by GET (no listing): a folder, a file:// URI or s3:// with SigV4."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from contracts.registry_layout import METADATA_FILE, MODEL_FILE, champion_history_path, champion_path, version_path
from udfs.sigv4 import sign

_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ERROR_FIELD = re.compile(r"<(Code|Message)>([^<]*)</\1>")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the object store is reached directly


@dataclass(frozen=True)
class S3Endpoint:
    """An S3-compatible endpoint addressed path-style: ``{endpoint}/{bucket}/{key}``."""

    endpoint: str
    region: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: str = ""
    session_token: str | None = None

    def __post_init__(self) -> None:
        if not self.endpoint.startswith(("http://", "https://")):
            raise ValueError(f"S3 endpoint must be an http(s) URL, got {self.endpoint!r}")
        if not self.access_key_id or not self.secret_access_key:
            raise ValueError("S3 access_key_id and secret_access_key are required")

    @classmethod
    def from_mapping(cls, conf: Mapping[str, Any]) -> S3Endpoint:
        """From a dict with endpoint, region, access_key_id, secret_access_key (and optional session_token)."""
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


def _s3_error(body: bytes) -> str:
    """``Code: Message`` from an S3 XML error body (or its first bytes)."""
    text = body[:2000].decode("utf-8", "replace")
    fields = dict(_ERROR_FIELD.findall(text))
    if fields:
        return ": ".join(v for v in (fields.get("Code"), fields.get("Message")) if v)
    return " ".join(text.split())[:200]


def s3_get(uri: str, s3: S3Endpoint, timeout_s: float = 10.0) -> bytes:
    """One signed GET of ``s3://bucket/key``."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or not key:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    url = f"{s3.endpoint.rstrip('/')}/{quote(bucket, safe='')}/{quote(key, safe='/')}"
    headers = sign("GET", url, region=s3.region, access_key_id=s3.access_key_id,
                   secret_access_key=s3.secret_access_key, session_token=s3.session_token)
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with _DIRECT.open(request, timeout=timeout_s) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        detail = _s3_error(exc.read() or b"")
        if exc.code == 404:
            raise ObjectNotFound(uri, detail) from None
        raise RegistryReadError(f"GET {uri} via {s3.endpoint}: HTTP {exc.code} {detail}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryReadError(f"GET {uri}: cannot reach {s3.endpoint} within {timeout_s:g}s: {reason}") from None
    except OSError as exc:
        raise RegistryReadError(f"GET {uri} via {s3.endpoint}: {type(exc).__name__}: {exc}") from None


def read_bytes(uri: str, *, s3: S3Endpoint | None = None, timeout_s: float = 10.0) -> bytes:
    """The bytes at a local path, ``file://`` URI or ``s3://bucket/key`` (ObjectNotFound when absent)."""
    if uri.startswith("s3://"):
        if s3 is None:
            raise ValueError(f"{uri} needs S3 settings (endpoint, region, access key, secret)")
        return s3_get(uri, s3, timeout_s)
    path = _local_path(uri)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ObjectNotFound(uri) from None
    except OSError as exc:
        raise RegistryReadError(f"cannot read {uri}: {type(exc).__name__}: {exc}") from None


class RegistryReader:
    """The champion pointer, the champion history and a version's files under one registry root."""

    def __init__(self, root: str, *, s3: S3Endpoint | Mapping[str, Any] | None = None, timeout_s: float = 10.0) -> None:
        if not root:
            raise ValueError("the registry root is empty")
        self.root = root.rstrip("/")
        self.s3 = S3Endpoint.from_mapping(s3) if isinstance(s3, Mapping) else s3
        if self.root.startswith("s3://") and self.s3 is None:
            raise ValueError(f"registry {self.root} needs S3 settings (endpoint, region, access key, secret)")
        self.timeout_s = timeout_s

    def read(self, uri: str) -> bytes:
        """The bytes of the registry file at ``uri``."""
        return read_bytes(uri, s3=self.s3, timeout_s=self.timeout_s)

    def champion(self) -> dict[str, Any]:
        """The parsed champion pointer (ObjectNotFound before the first promotion)."""
        uri = champion_path(self.root)
        try:
            pointer = json.loads(self.read(uri))
        except ValueError as exc:
            raise RegistryReadError(f"{uri} is not JSON: {exc}") from None
        version = pointer.get("version") if isinstance(pointer, dict) else None
        if not isinstance(version, str) or not _VERSION_NAME.match(version):
            raise RegistryReadError(f"{uri} has no valid version: {version!r}")
        return pointer

    def champion_history(self) -> list[str]:
        """champion_history.json's champions, oldest first (the last was champion when it was written)."""
        uri = champion_history_path(self.root)
        try:
            doc = json.loads(self.read(uri))
        except ValueError as exc:
            raise RegistryReadError(f"{uri} is not JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("champions"), list):
            raise RegistryReadError(f"{uri} has no champions list")
        return _version_names(doc["champions"])

    def champion_version(self) -> str:
        """The champion's version name."""
        return str(self.champion()["version"])

    def version_file(self, version: str, name: str) -> bytes:
        """One file of a version (``MODEL_FILE`` or ``METADATA_FILE``)."""
        if not _VERSION_NAME.match(version):
            raise ValueError(f"invalid version name {version!r}")
        return self.read(version_path(self.root, version, name))

    def model_files(self, version: str) -> tuple[bytes, bytes]:
        """(model.onnx bytes, metadata.json bytes) of ``version``."""
        return self.version_file(version, MODEL_FILE), self.version_file(version, METADATA_FILE)
