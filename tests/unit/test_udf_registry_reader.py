"""udfs registry reader: SigV4 signing, GETs from a folder, file:// and a moto S3 server, and its error cases."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from tests.moto_s3 import free_port, moto_server
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import contracts.registry_layout as contract
from udfs.registry_reader import (
    ObjectNotFound, RegistryReader, RegistryReadError, S3Endpoint, earlier_champions, read_bytes,
)
from udfs.sigv4 import sign

BUCKET = "udf-reader-test"
KEYS = {"access_key_id": "testkey", "secret_access_key": "testsecret"}


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        _client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint


def _client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=KEYS["access_key_id"], aws_secret_access_key=KEYS["secret_access_key"])


def _s3(endpoint: str) -> S3Endpoint:
    return S3Endpoint(endpoint=endpoint, region="us-east-1", **KEYS)


def test_the_reader_reads_the_files_at_the_contract_paths(tmp_path: Path) -> None:
    root = str(tmp_path / "reg")
    for path, body in ((contract.champion_path(root), b'{"version": "v0002"}'),
                       (contract.champion_history_path(root), b'{"champions": ["v0001", "v0002"]}'),
                       (contract.version_path(root, "v0002", contract.MODEL_FILE), b"onnx"),
                       (contract.version_path(root, "v0002", contract.METADATA_FILE), b"{}")):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(body)
    reader = RegistryReader(root)
    assert reader.champion_version() == "v0002" and reader.champion_history() == ["v0001", "v0002"]
    assert reader.model_files("v0002") == (b"onnx", b"{}")


def test_sigv4_reproduces_the_aws_documentation_example() -> None:
    # The GET-object example of the S3 SigV4 header-auth documentation (example credentials).
    headers = sign("GET", "https://examplebucket.s3.amazonaws.com/test.txt", region="us-east-1",
                   access_key_id="AKIAIOSFODNN7EXAMPLE", secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                   headers={"Range": "bytes=0-9"}, now=datetime(2013, 5, 24, tzinfo=timezone.utc))
    assert headers["Authorization"].endswith(
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


@pytest.mark.parametrize("token", [None, "session-token/x+y="])
def test_sigv4_agrees_with_botocore(token: str | None) -> None:
    url = "http://127.0.0.1:9000/my-bucket/models/a%20b/%C3%A9t%C3%A9~v-1_x.json?versionId=a%2Fb&acl"
    ref = AWSRequest(method="GET", url=url, headers={})
    S3SigV4Auth(Credentials("AKID", "SECRET/key", token), "s3", "eu-west-1").add_auth(ref)
    when = datetime.strptime(ref.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    ours = sign("GET", url, region="eu-west-1", access_key_id="AKID", secret_access_key="SECRET/key",
                session_token=token, now=when)
    assert ours["Authorization"] == ref.headers["Authorization"]
    assert ours["Host"] == "127.0.0.1:9000"


def test_s3_get_reads_objects_with_awkward_keys(moto_endpoint: str) -> None:
    prefix = uuid.uuid4().hex
    objects = {f"{prefix}/models/champion.json": b'{"version": "v0001"}',
               f"{prefix}/models/odd name+é~/x.bin": bytes(range(256)) * 40}
    client = _client(moto_endpoint)
    for key, body in objects.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
    for key, body in objects.items():
        assert read_bytes(f"s3://{BUCKET}/{key}", s3=_s3(moto_endpoint)) == body
    reader = RegistryReader(f"s3://{BUCKET}/{prefix}/models", s3={"endpoint": moto_endpoint, **KEYS})
    assert reader.champion_version() == "v0001"


def test_s3_missing_object_and_bucket_raise_object_not_found(moto_endpoint: str) -> None:
    with pytest.raises(ObjectNotFound, match="NoSuchKey") as err:
        read_bytes(f"s3://{BUCKET}/{uuid.uuid4().hex}/champion.json", s3=_s3(moto_endpoint))
    assert err.value.uri.endswith("/champion.json")
    with pytest.raises(ObjectNotFound, match="NoSuchBucket"):
        read_bytes(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/k", s3=_s3(moto_endpoint))


class _Recorder(BaseHTTPRequestHandler):
    """Answers /ok with bytes and anything else with an S3 AccessDenied error; keeps the request headers."""

    seen: list[tuple[str, dict[str, str]]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        ok = self.path.endswith("/ok")
        body = b"payload" if ok else b"<Error><Code>AccessDenied</Code><Message>Denied here</Message></Error>"
        self.send_response(200 if ok else 403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def recorder() -> Iterator[str]:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_what_goes_on_the_wire_is_what_was_signed(recorder: str) -> None:
    assert read_bytes("s3://bkt/dir/a b/ok", s3=_s3(recorder)) == b"payload"
    path, headers = _Recorder.seen[-1]
    assert path == "/bkt/dir/a%20b/ok"
    assert headers["host"] == recorder.removeprefix("http://")
    # botocore recomputes the signature from the request as received (its own clock replaced by the sent date)
    check = AWSRequest(method="GET", url=f"{recorder}{path}",
                       headers={"X-Amz-Date": headers["x-amz-date"],
                                "X-Amz-Content-SHA256": headers["x-amz-content-sha256"]})
    check.context["timestamp"] = headers["x-amz-date"]
    auth = S3SigV4Auth(Credentials(KEYS["access_key_id"], KEYS["secret_access_key"]), "s3", "us-east-1")
    signature = auth.signature(auth.string_to_sign(check, auth.canonical_request(check)), check)
    assert headers["authorization"].endswith(f"Signature={signature}")


def test_http_errors_carry_the_s3_code(recorder: str) -> None:
    with pytest.raises(RegistryReadError, match="HTTP 403 AccessDenied: Denied here") as err:
        read_bytes("s3://bkt/denied", s3=_s3(recorder))
    assert not isinstance(err.value, ObjectNotFound)


def test_unreachable_and_silent_endpoints_fail_within_the_timeout() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RegistryReadError, match="cannot reach"):
        read_bytes("s3://b/k", s3=_s3(closed), timeout_s=2)
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with pytest.raises(RegistryReadError, match="within 0.3s"):
            read_bytes("s3://b/k", s3=_s3(f"http://127.0.0.1:{silent.getsockname()[1]}"), timeout_s=0.3)


@pytest.mark.parametrize("style", ["path", "file-uri"])
def test_local_registry_reads_and_missing_files(tmp_path: Path, style: str) -> None:
    root = tmp_path / "reg"
    (root / "versions" / "v0007").mkdir(parents=True)
    (root / "champion.json").write_text(json.dumps({"version": "v0007", "previous": None}))
    (root / "versions" / "v0007" / "model.onnx").write_bytes(b"\x08\x01onnx")
    (root / "versions" / "v0007" / "metadata.json").write_text('{"version": "v0007"}')
    reader = RegistryReader(str(root) if style == "path" else f"file://{root}/")
    assert reader.champion_version() == "v0007"
    assert reader.model_files("v0007") == (b"\x08\x01onnx", b'{"version": "v0007"}')
    with pytest.raises(ObjectNotFound, match="v0008"):
        reader.model_files("v0008")


@pytest.mark.parametrize("pointer", [b"{not json", b'{"previous": "v0001"}', b'{"version": "../../etc"}', b"[1]"])
def test_malformed_champion_pointer_is_a_read_error(tmp_path: Path, pointer: bytes) -> None:
    (tmp_path / "champion.json").write_bytes(pointer)
    with pytest.raises(RegistryReadError, match="champion.json") as err:
        RegistryReader(str(tmp_path)).champion_version()
    assert not isinstance(err.value, ObjectNotFound)


@pytest.mark.parametrize(("pointer", "earlier"), [
    ({"version": "v0003", "previous": "v0002", "history": ["v0001", "v0002"]}, ["v0001", "v0002"]),
    ({"version": "v0002", "previous": "v0001"}, ["v0001"]),  # written before pointers kept a history
    ({"version": "v0001", "previous": None, "history": []}, []),
    ({"version": "v0004", "history": ["v0001", "../../etc", 7, None, "v0003"]}, ["v0001", "v0003"]),
])
def test_earlier_champions_come_from_the_pointer_history(pointer: dict, earlier: list[str]) -> None:
    assert earlier_champions(pointer) == earlier


def test_champion_history_lists_the_champions_oldest_first(tmp_path: Path) -> None:
    reader = RegistryReader(str(tmp_path))
    with pytest.raises(ObjectNotFound, match=contract.CHAMPION_HISTORY_FILE):
        reader.champion_history()
    (tmp_path / contract.CHAMPION_HISTORY_FILE).write_text(json.dumps({"champions": ["v0001", "x/y", "v0004"]}))
    assert reader.champion_history() == ["v0001", "v0004"]


@pytest.mark.parametrize("history", [b"{not json", b'{"champions": "v0001"}', b'["v0001"]', b"\xff\xfe"])
def test_malformed_champion_history_is_a_read_error(tmp_path: Path, history: bytes) -> None:
    (tmp_path / contract.CHAMPION_HISTORY_FILE).write_bytes(history)
    with pytest.raises(RegistryReadError, match=contract.CHAMPION_HISTORY_FILE) as err:
        RegistryReader(str(tmp_path)).champion_history()
    assert not isinstance(err.value, ObjectNotFound)


def test_s3_settings_are_required_and_checked() -> None:
    with pytest.raises(ValueError, match="needs S3 settings"):
        RegistryReader("s3://bucket/models")
    with pytest.raises(ValueError, match="http"):
        S3Endpoint(endpoint="127.0.0.1:9000", **KEYS)
    with pytest.raises(ValueError, match="access_key_id"):
        S3Endpoint.from_mapping({"endpoint": "http://127.0.0.1:9000", "region": "us-east-1"})
    with pytest.raises(ValueError, match="unknown S3 settings: secret"):
        S3Endpoint.from_mapping({"endpoint": "http://127.0.0.1:9000", "secret": "x", **KEYS})
