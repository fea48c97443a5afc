"""AWS Signature Version 4 request signing (header form) with the standard library only."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit, parse_qsl

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    """HMAC-SHA256 of ``msg`` under ``key``."""
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The derived key for one day, region and service (``date`` as YYYYMMDD)."""
    k = _hmac(("AWS4" + secret_access_key).encode("utf-8"), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def _encode(value: str) -> str:
    """RFC 3986 encoding as SigV4 wants it (only unreserved characters left as they are)."""
    return quote(value, safe="-_.~")


def canonical_query(query: str) -> str:
    """The query string with keys and values encoded and sorted."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs))


def canonical_request(method: str, path: str, query: str, headers: Mapping[str, str],
                      payload_hash: str) -> tuple[str, str]:
    """(canonical request, signed header list) for already-encoded ``path`` (S3: encoded once, as sent)."""
    lowered = {k.strip().lower(): " ".join(str(v).strip().split()) for k, v in headers.items()}
    names = sorted(lowered)
    canon_headers = "".join(f"{n}:{lowered[n]}\n" for n in names)
    signed = ";".join(names)
    text = "\n".join([method.upper(), path or "/", canonical_query(query), canon_headers, signed, payload_hash])
    return text, signed


def sign(method: str, url: str, *, region: str, access_key_id: str, secret_access_key: str,
         service: str = "s3", headers: Mapping[str, str] | None = None, payload: bytes = b"",
         session_token: str | None = None, now: datetime | None = None) -> dict[str, str]:
    """The headers to send with the request: ``headers`` plus Host, x-amz-date, x-amz-content-sha256, Authorization.

    ``url`` must already be percent-encoded the way it goes on the wire; every given header is signed.
    """
    parts = urlsplit(url)
    when = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    payload_hash = hashlib.sha256(payload).hexdigest() if payload else EMPTY_SHA256
    out = {k: v for k, v in (headers or {}).items() if k.lower() not in ("host", "authorization")}
    out["Host"] = parts.netloc.rpartition("@")[2]
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = payload_hash
    if session_token:
        out["x-amz-security-token"] = session_token
    request, signed = canonical_request(method, parts.path, parts.query, out, payload_hash)
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(request.encode("utf-8")).hexdigest()])
    signature = hmac.new(signing_key(secret_access_key, day, region, service), to_sign.encode("utf-8"),
                         hashlib.sha256).hexdigest()
    out["Authorization"] = (f"{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={signed}, "
                            f"Signature={signature}")
    return out
