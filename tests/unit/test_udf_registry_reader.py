"""udfs registry reader: SigV4 signing, GETs from a folder, file:// and a moto S3 server, its error cases, and the size
cap that stops a read past it."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from tests.endless_source import EndlessPipe
from tests.moto_s3 import free_port, moto_server
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import contracts.registry_layout as contract
from udfs.registry_reader import (
    MAX_DOCUMENT_BYTES, ObjectNotFound, ObjectTooLarge, RegistryReader, RegistryReadError, S3Endpoint,
    earlier_champions, read_bytes,
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


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a free loopback port for one test; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture()
def recorder() -> Iterator[str]:
    _Recorder.seen = []
    yield from _serve(_Recorder)


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


CAP = 1 << 20  # the size cap of the tests below


def test_a_local_file_up_to_the_cap_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    at_cap, over = tmp_path / "at_cap", tmp_path / "over"
    at_cap.write_bytes(b"m" * CAP)
    over.write_bytes(b"m" * (CAP + 1))
    assert read_bytes(str(at_cap), max_bytes=CAP) == b"m" * CAP
    with pytest.raises(ObjectTooLarge, match=f"is larger than the cap of {CAP} bytes: {CAP + 1} bytes; not read"):
        read_bytes(f"file://{over}", max_bytes=CAP)


def test_the_reader_caps_a_model_at_max_model_bytes_and_the_json_files_at_one_mib(tmp_path: Path) -> None:
    model, metadata = (Path(contract.version_path(str(tmp_path), "v0001", f)) for f in (contract.MODEL_FILE,
                                                                                        contract.METADATA_FILE))
    model.parent.mkdir(parents=True)
    model.write_bytes(b"m" * 2048)
    metadata.write_bytes(b" " * 4096 + b"{}")
    assert RegistryReader(str(tmp_path), max_model_bytes=2048).model_files("v0001") == (b"m" * 2048, b" " * 4096 + b"{}")
    with pytest.raises(ObjectTooLarge, match="model.onnx is larger than the cap of 2047 bytes: 2048 bytes"):
        RegistryReader(str(tmp_path), max_model_bytes=2047).version_file("v0001", contract.MODEL_FILE)
    metadata.write_bytes(b" " * MAX_DOCUMENT_BYTES + b"{}")
    with pytest.raises(ObjectTooLarge, match=f"metadata.json is larger than the cap of {MAX_DOCUMENT_BYTES} bytes"):
        RegistryReader(str(tmp_path)).version_file("v0001", contract.METADATA_FILE)
    Path(contract.champion_path(str(tmp_path))).write_bytes(b" " * MAX_DOCUMENT_BYTES + b'{"version": "v0001"}')
    with pytest.raises(ObjectTooLarge, match="champion.json is larger than the cap"):
        RegistryReader(str(tmp_path)).champion()


def test_a_local_file_with_no_end_is_read_no_further_than_the_cap(tmp_path: Path) -> None:
    with EndlessPipe(tmp_path / "model.onnx") as endless:
        with pytest.raises(ObjectTooLarge, match=f"larger than the cap of {CAP} bytes: more than that; not read further"):
            read_bytes(str(tmp_path / "model.onnx"), max_bytes=CAP)
    # What the reader took, plus what the pipe held when it closed (64 KiB on Linux) and one chunk in flight.
    assert endless.written < CAP + (1 << 20), f"{endless.written} bytes went into the pipe for a {CAP}-byte cap"


class _Oversized(BaseHTTPRequestHandler):
    """/endless: a body with no length that never ends (counted in ``sent``); /declared: a 1 GiB Content-Length and
    no body; anything else: ``CAP`` bytes."""

    sent = 0
    limit = 128 << 20

    def do_GET(self) -> None:
        if self.path.endswith("/declared"):
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 30))
            self.end_headers()
            self.wfile.flush()
            time.sleep(3)  # the body never comes: a reader that waited for it would time out instead
            return
        endless = self.path.endswith("/endless")
        self.send_response(200)
        if not endless:
            self.send_header("Content-Length", str(CAP))
        self.end_headers()  # HTTP/1.0 without a length: the body runs until the server closes the connection
        if not endless:
            self.wfile.write(b"m" * CAP)
            return
        zeros = bytes(64 * 1024)
        try:
            while type(self).sent < self.limit:
                self.wfile.write(zeros)
                type(self).sent += len(zeros)
        except OSError:  # the client closed the connection
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def oversized() -> Iterator[str]:
    _Oversized.sent = 0
    yield from _serve(_Oversized)


def test_an_s3_body_with_no_end_is_read_no_further_than_the_cap(oversized: str) -> None:
    assert read_bytes("s3://bkt/models/fits", s3=_s3(oversized), max_bytes=CAP) == b"m" * CAP
    with pytest.raises(ObjectTooLarge, match="s3://bkt/models/endless is larger than the cap"):
        read_bytes("s3://bkt/models/endless", s3=_s3(oversized), max_bytes=CAP)
    time.sleep(0.2)  # the server notices the closed connection
    # What the reader took plus what the loopback socket buffers held when it closed the connection.
    assert _Oversized.sent < CAP + (24 << 20), f"the server sent {_Oversized.sent} bytes for a {CAP}-byte cap"


def test_an_s3_object_declared_over_the_cap_is_refused_before_its_body_is_read(oversized: str) -> None:
    started = time.monotonic()
    with pytest.raises(ObjectTooLarge, match=f"{1 << 30} bytes; not read further"):
        read_bytes("s3://bkt/models/declared", s3=_s3(oversized), timeout_s=2, max_bytes=CAP)
    assert time.monotonic() - started < 1.5  # refused on the header, not after waiting for the body


def test_the_size_cap_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size cap must be positive"):
        RegistryReader(str(tmp_path), max_model_bytes=0)
