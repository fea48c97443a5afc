"""udfs registry reader: reads from a folder, file:// and a moto S3 server (signed by pyarrow's S3 file system), its
error cases, and the size cap that stops a read past it. Temporary and default-chain credentials:
tests/unit/test_s3_credentials.py."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from tests.endless_source import EndlessPipe
from tests.moto_s3 import free_port, moto_server

import contracts.registry_layout as contract
from udfs.registry_reader import (
    MAX_DOCUMENT_BYTES, ObjectNotFound, ObjectTooLarge, RegistryReader, RegistryReadError, S3Endpoint,
    earlier_champions, read_bytes,
)

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
    """Answers /ok with bytes and anything else with an S3 AccessDenied error; keeps each request's method, path and
    headers."""

    seen: list[tuple[str, str, dict[str, str]]] = []

    def _answer(self, with_body: bool) -> None:
        type(self).seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        ok = self.path.endswith("/ok")
        body = b"payload" if ok else b"<Error><Code>AccessDenied</Code><Message>Denied here</Message></Error>"
        self.send_response(200 if ok else 403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def do_GET(self) -> None:
        self._answer(with_body=True)

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


def test_requests_go_path_style_and_signed_with_the_keys_and_the_session_token(recorder: str) -> None:
    token = "session-token/x+y="
    endpoint = S3Endpoint(endpoint=recorder, region="eu-west-1", session_token=token, **KEYS)
    assert read_bytes("s3://bkt/dir/a b/ok", s3=endpoint) == b"payload"
    assert [(method, path) for method, path, _ in _Recorder.seen] == [("HEAD", "/bkt/dir/a%20b/ok"),
                                                                      ("GET", "/bkt/dir/a%20b/ok")]
    for _, _, headers in _Recorder.seen:
        assert headers["host"] == recorder.removeprefix("http://")
        assert headers["x-amz-security-token"] == token
        assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={KEYS['access_key_id']}/")
        assert "/eu-west-1/s3/aws4_request" in headers["authorization"]
        assert "x-amz-security-token" in headers["authorization"].split("SignedHeaders=")[1]


def test_the_object_store_is_reached_directly_not_through_a_proxy(recorder: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert read_bytes("s3://bkt/direct/ok", s3=S3Endpoint(endpoint=recorder, **KEYS), timeout_s=3) == b"payload"


def test_http_errors_name_the_endpoint_and_the_s3_error(recorder: str) -> None:
    # The size is asked first, by HEAD, whose answer has no body: the error is the SDK's name for the status.
    with pytest.raises(RegistryReadError, match=f"GET s3://bkt/denied via {recorder}: .*ACCESS_DENIED") as err:
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
    with pytest.raises(ValueError, match="go together"):
        S3Endpoint.from_mapping({"endpoint": "http://127.0.0.1:9000", "access_key_id": "AKID"})
    with pytest.raises(ValueError, match="session_token needs"):
        S3Endpoint(endpoint="http://127.0.0.1:9000", session_token="t")
    with pytest.raises(ValueError, match="no path"):
        S3Endpoint(endpoint="http://127.0.0.1:9000/prefix", **KEYS)
    # No keys at all: the AWS SDK's default credential chain signs the requests.
    chain = S3Endpoint.from_mapping({"endpoint": "http://127.0.0.1:9000", "region": "us-east-1"})
    assert (chain.access_key_id, chain.secret_access_key, chain.session_token) == ("", "", None)
    assert "testsecret" not in repr(S3Endpoint(endpoint="http://127.0.0.1:9000", **KEYS))
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
    """/endless: declared ``CAP`` bytes, then a GET body with no length that never ends (counted in ``sent``);
    /declared: a 1 GiB Content-Length and no body; anything else: ``CAP`` bytes. Keeps each request's method."""

    sent = 0
    limit = 128 << 20
    methods: list[str] = []

    def do_HEAD(self) -> None:
        type(self).methods.append("HEAD")
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 30 if self.path.endswith("/declared") else CAP))
        self.end_headers()

    def do_GET(self) -> None:
        type(self).methods.append("GET")
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
    _Oversized.methods = []
    yield from _serve(_Oversized)


def test_an_s3_body_with_no_end_is_read_no_further_than_the_cap(oversized: str) -> None:
    assert read_bytes("s3://bkt/models/fits", s3=_s3(oversized), max_bytes=CAP) == b"m" * CAP
    # Each ranged GET lands in a buffer of the size asked for: a body running past it fails the read.
    with pytest.raises(RegistryReadError, match="s3://bkt/models/endless via"):
        read_bytes("s3://bkt/models/endless", s3=_s3(oversized), max_bytes=CAP)
    time.sleep(0.2)  # the server notices the closed connection
    # What the reader took plus what the loopback socket buffers held when it closed the connection.
    assert _Oversized.sent < CAP + (24 << 20), f"the server sent {_Oversized.sent} bytes for a {CAP}-byte cap"


def test_an_s3_object_declared_over_the_cap_is_refused_before_its_body_is_read(oversized: str) -> None:
    started = time.monotonic()
    with pytest.raises(ObjectTooLarge, match=f"{1 << 30} bytes; not read further"):
        read_bytes("s3://bkt/models/declared", s3=_s3(oversized), timeout_s=2, max_bytes=CAP)
    assert time.monotonic() - started < 1.5  # refused on the header, not after waiting for the body
    assert _Oversized.methods == ["HEAD"]  # no GET at all


def test_the_size_cap_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size cap must be positive"):
        RegistryReader(str(tmp_path), max_model_bytes=0)
