"""S3 credentials: configured keys with a session token, or none at all and the AWS SDK's default chain, for every
client (the UDF's registry reader, boto3, pyiceberg's FileIO, the job's parameters and Flink's S3 file system).

The object store is a moto server that checks every request's signature and session token (tests/moto_s3.py
``enforced_auth``), so a client that sent no token, a wrong one or unsigned requests would be refused.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from jobs.params import scorer_parameters, sql_params
from loanrisk.objectstore import s3_client
from loanrisk.settings import S3ReaderSettings, S3Settings, Settings, StackSettings
from stack.flink_conf import s3_filesystem_options
from tests.moto_s3 import enforced_auth, moto_server, temporary_credentials
from udfs import registry_reader
from udfs.registry_reader import RegistryReader, RegistryReadError, S3Endpoint, read_bytes
from udfs.scorer import scorer_from_parameters

BUCKET = "credentials-test"
KEY = "models/champion.json"
BODY = b'{"version": "v0001"}'
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store() -> Iterator[tuple[str, dict[str, str]]]:
    """A moto endpoint holding one object, and temporary credentials its STS issued for a role that may read it."""
    import boto3

    with moto_server() as endpoint:
        setup = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                             aws_access_key_id="setup", aws_secret_access_key="setup")
        setup.create_bucket(Bucket=BUCKET)
        setup.put_object(Bucket=BUCKET, Key=KEY, Body=BODY)
        yield endpoint, temporary_credentials(endpoint)


@pytest.fixture()
def enforced(store: tuple[str, dict[str, str]]) -> Iterator[tuple[str, dict[str, str]]]:
    with enforced_auth(store[0]):
        yield store


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing of the machine's own AWS setup (keys, profiles, instance metadata) reaches a test."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    registry_reader._filesystem.cache_clear()  # a file system made in another test keeps its credentials


def settings_for(endpoint: str, keys: dict[str, str] | None) -> S3Settings:
    return S3Settings(endpoint=endpoint, bucket=BUCKET, **(keys or {}))


def set_environment(monkeypatch: pytest.MonkeyPatch, keys: dict[str, str]) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["secret_access_key"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", keys["session_token"])


def read_with_the_registry_reader(s3: S3Settings) -> bytes:
    keys = s3.credentials()
    endpoint = S3Endpoint(s3.url, s3.region, *(keys or ()))
    return read_bytes(f"s3://{BUCKET}/{KEY}", s3=endpoint, timeout_s=5)


def read_with_boto3(s3: S3Settings) -> bytes:
    return bytes(s3_client(s3, attempts=1).get_object(Bucket=BUCKET, Key=KEY)["Body"].read())


def read_with_pyiceberg(s3: S3Settings) -> bytes:
    from pyiceberg.io import load_file_io
    from pyiceberg.io.pyarrow import PyArrowFileIO

    io = load_file_io({"py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO", "s3.endpoint": s3.url,
                       "s3.region": s3.region, **s3.iceberg_credentials()}, location=f"s3://{BUCKET}/lake")
    assert isinstance(io, PyArrowFileIO)
    with io.new_input(f"s3://{BUCKET}/{KEY}").open() as f:
        return bytes(f.read())


# How each client reports a request the endpoint refused (S3 answers a bad token 400 InvalidToken, a HEAD without
# a body, which pyarrow shows as its HTTP status only).
REFUSED = r"HTTP status 40[03]|ACCESS_DENIED|InvalidToken|InvalidAccessKeyId|SignatureDoesNotMatch|\(403\)"
READERS = {"registry reader": read_with_the_registry_reader, "boto3": read_with_boto3,
           "pyiceberg": read_with_pyiceberg}


# -- settings -------------------------------------------------------------------------------------


def test_with_no_secret_key_there_are_no_credentials_and_no_key_properties() -> None:
    s3 = S3Settings(endpoint="https://s3.eu-west-1.amazonaws.com", region="eu-west-1")
    assert s3.credentials() is None and s3.iceberg_credentials() == {}


def test_the_local_object_store_keeps_its_generated_key(tmp_path: Path) -> None:
    settings = Settings(stack=StackSettings(state_dir=tmp_path, install_dir=tmp_path))
    keys = settings.s3.credentials()
    assert keys is not None and keys.access_key_id == "loanrisk" and keys.session_token is None
    assert keys.secret_access_key == (tmp_path / "secrets" / "s3-loanrisk").read_text()
    props = settings.iceberg_catalog_properties()
    assert props["s3.secret-access-key"] == keys.secret_access_key and "s3.session-token" not in props


def test_the_session_token_is_a_secret_read_from_its_file_first(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("token-from-file\n")
    s3 = S3Settings(endpoint="http://127.0.0.1:1", access_key_id="ASIA1", secret_access_key="s",
                    session_token="token-from-value", session_token_file=token_file)
    assert s3.credentials() == ("ASIA1", "s", "token-from-file")
    assert "token-from-value" not in repr(s3)
    only_value = S3Settings(endpoint="http://127.0.0.1:1", secret_access_key="s", session_token="v")
    assert only_value.iceberg_credentials()["s3.session-token"] == "v"


def test_a_session_token_without_a_secret_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="session_token is part of temporary credentials"):
        S3Settings(endpoint="http://127.0.0.1:1", session_token="t")
    with pytest.raises(ValidationError, match="s3.reader.session_token is part of temporary credentials"):
        S3Settings(endpoint="http://127.0.0.1:1", reader=S3ReaderSettings(session_token="t"))


# -- the model registry's readers: a key of their own, which cannot write ----------------------------


def test_the_local_stores_readers_have_their_own_endpoint_and_generated_key(tmp_path: Path) -> None:
    settings = Settings(stack=StackSettings(state_dir=tmp_path, install_dir=tmp_path))
    s3, readers = settings.s3, settings.s3.for_readers()
    assert readers.url == f"http://127.0.0.1:{s3.reader.port}" != s3.url
    assert (readers.bucket, readers.region, readers.path_style) == (s3.bucket, s3.region, s3.path_style)
    keys, own = readers.credentials(), s3.credentials()
    assert keys is not None and own is not None
    assert keys.access_key_id == "loanrisk-reader" != own.access_key_id
    assert keys.secret_access_key == (tmp_path / "secrets" / "s3-loanrisk-reader").read_text()
    assert keys.secret_access_key != own.secret_access_key


def test_a_remote_stores_readers_take_their_own_key_or_the_default_chain_never_the_read_write_one(
        tmp_path: Path) -> None:
    endpoint = "https://s3.eu-west-1.amazonaws.com"
    writer = S3Settings(endpoint=endpoint, access_key_id="AKIAWRITER", secret_access_key="w", session_token="wt")
    readers = writer.for_readers()
    assert readers.url == endpoint and readers.default_chain and readers.credentials() is None
    key_file = tmp_path / "reader-key"
    key_file.write_text("r\n")
    own = S3Settings(endpoint=endpoint, access_key_id="AKIAWRITER", secret_access_key="w",
                     reader=S3ReaderSettings(endpoint="https://registry.example:8443", access_key_id="AKIAREADER",
                                             secret_access_key_file=key_file, session_token="rt")).for_readers()
    assert own.url == "https://registry.example:8443" and own.credentials() == ("AKIAREADER", "r", "rt")


def test_the_readers_may_not_sign_with_the_read_write_keys_id() -> None:
    with pytest.raises(ValidationError, match="the model registry's readers need a key of their own"):
        S3Settings(reader=S3ReaderSettings(access_key_id="loanrisk"))
    with pytest.raises(ValidationError, match="a key of their own"):
        S3Settings(endpoint="https://s3.example", access_key_id="AKIA1", secret_access_key="w",
                   reader=S3ReaderSettings(access_key_id="AKIA1", secret_access_key="r"))
    # With no key of their own the readers take the default chain: their key id is not used.
    S3Settings(endpoint="https://s3.example", access_key_id="AKIA1", reader=S3ReaderSettings(access_key_id="AKIA1"))


def test_the_jobs_registry_parameters_carry_the_read_only_key_never_the_read_write_one(tmp_path: Path) -> None:
    from jobs.params import udf_job_parameters
    settings = Settings(stack=StackSettings(state_dir=tmp_path, install_dir=tmp_path))
    readers = settings.s3.for_readers()
    keys = readers.credentials()
    assert keys is not None
    params = scorer_parameters(settings)
    assert (params["s3.endpoint"], params["s3.access_key_id"], params["s3.secret_access_key"]) == \
        (readers.url, keys.access_key_id, keys.secret_access_key)
    assert params["model.registry_uri"] == settings.model.registry(settings.s3)
    job = udf_job_parameters(settings)
    assert settings.s3.secret() not in job and settings.s3.url not in job
    # The lake's writers (Iceberg in the job) keep the read-write key.
    assert sql_params(settings)["s3_secret_access_key"] == settings.s3.secret()


def test_the_scoring_api_reads_the_registry_with_the_read_only_key(tmp_path: Path) -> None:
    from scoring_api.champion import scorer_from_settings
    from stack.process import free_port
    # Nothing listens on the readers' port: the scorer starts without a model, as the API does before the store.
    settings = Settings(stack=StackSettings(state_dir=tmp_path, install_dir=tmp_path),
                        s3=S3Settings(reader=S3ReaderSettings(port=free_port())))
    reader = scorer_from_settings(settings)._reader
    keys = settings.s3.for_readers().credentials()
    assert reader.s3 is not None and keys is not None
    assert (reader.s3.endpoint, reader.s3.access_key_id, reader.s3.secret_access_key) == \
        (settings.s3.for_readers().url, keys.access_key_id, keys.secret_access_key)


def test_the_read_only_endpoint_serves_the_object_stores_files_with_its_own_identity(tmp_path: Path) -> None:
    from stack.services.s3 import S3Endpoint, S3ReadOnlyEndpoint
    settings = Settings(stack=StackSettings(state_dir=tmp_path, install_dir=tmp_path))

    def conf(service: S3Endpoint) -> dict[str, str]:
        service.prepare()
        lines = (service.home / "s3proxy.conf").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if line)
    rw, ro = conf(S3Endpoint(settings)), conf(S3ReadOnlyEndpoint(settings))
    keys = settings.s3.for_readers().credentials()
    assert keys is not None
    assert ro["s3proxy.read-only-blobstore"] == "true" and "s3proxy.read-only-blobstore" not in rw
    assert ro["jclouds.filesystem.basedir"] == rw["jclouds.filesystem.basedir"]
    assert (ro["s3proxy.identity"], ro["s3proxy.credential"]) == (keys.access_key_id, keys.secret_access_key)
    assert ro["s3proxy.endpoint"] == f"http://127.0.0.1:{settings.s3.reader.port}"
    assert rw["s3proxy.credential"] == settings.s3.secret() != ro["s3proxy.credential"]


# -- temporary credentials, checked by the endpoint ---------------------------------------------------


@pytest.mark.parametrize("read", READERS.values(), ids=READERS.keys())
def test_every_client_reads_with_temporary_credentials(enforced: tuple[str, dict[str, str]], read) -> None:
    endpoint, keys = enforced
    assert read(settings_for(endpoint, keys)) == BODY


@pytest.mark.parametrize("read", READERS.values(), ids=READERS.keys())
def test_every_client_is_refused_with_a_wrong_token_or_none(enforced: tuple[str, dict[str, str]], read) -> None:
    endpoint, keys = enforced
    for wrong in ({**keys, "session_token": keys["session_token"][:-4] + "AAAA"},
                  {k: v for k, v in keys.items() if k != "session_token"}):
        registry_reader._filesystem.cache_clear()
        with pytest.raises(Exception, match=REFUSED):  # each client's own error type
            read(settings_for(endpoint, wrong))


# -- no keys: the default chain (here, the environment) ---------------------------------------------


@pytest.mark.parametrize("read", READERS.values(), ids=READERS.keys())
def test_with_no_keys_every_client_takes_the_credentials_from_the_environment(
        enforced: tuple[str, dict[str, str]], read, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, keys = enforced
    set_environment(monkeypatch, keys)
    assert read(settings_for(endpoint, None)) == BODY
    registry_reader._filesystem.cache_clear()
    monkeypatch.setenv("AWS_SESSION_TOKEN", "not-the-token")  # what was read came from the environment
    with pytest.raises(Exception, match=REFUSED):
        read(settings_for(endpoint, None))


# -- the job's parameters and Flink's S3 file system ------------------------------------------------


def job_settings(tmp_path: Path, reader: dict[str, str] | None = None, **s3: object) -> Settings:
    from loanrisk.settings import FlinkSettings
    return Settings(stack=StackSettings(state_dir=tmp_path, install_dir=tmp_path),
                    flink=FlinkSettings(checkpoint_storage="s3"),
                    s3=S3Settings(endpoint="http://127.0.0.1:19000", reader=S3ReaderSettings(**(reader or {})), **s3))


def test_the_job_parameters_carry_the_readers_token_and_no_key_when_none_is_set(tmp_path: Path) -> None:
    temporary = job_settings(tmp_path, access_key_id="ASIA1", secret_access_key="s", session_token="t",
                             reader={"access_key_id": "ASIAR", "secret_access_key": "rs", "session_token": "rt"})
    params = scorer_parameters(temporary)
    assert (params["s3.access_key_id"], params["s3.secret_access_key"], params["s3.session_token"]) == \
        ("ASIAR", "rs", "rt")
    reader = scorer_from_parameters(params.get, ["f"], poll_on_score=False, clock=lambda: 0.0)._reader
    assert reader.s3 is not None and reader.s3.session_token == "rt"
    assert sql_params(temporary)["s3_session_token"] == "t"

    # Keys for the lake only: the scorer is given none of them, and takes the default chain.
    for chain in (job_settings(tmp_path), job_settings(tmp_path, access_key_id="AKIA1", secret_access_key="s")):
        params = scorer_parameters(chain)
        assert not [name for name in params if name.startswith("s3.") and name not in ("s3.endpoint", "s3.region")]
        reader = scorer_from_parameters(params.get, ["f"], poll_on_score=False, clock=lambda: 0.0)._reader
        assert reader.s3 is not None and reader.s3.access_key_id == "" and reader.s3.session_token is None
    sql = sql_params(job_settings(tmp_path))
    assert (sql["s3_access_key_id"], sql["s3_secret_access_key"], sql["s3_session_token"]) == ("", "", "")


def test_flinks_s3_file_system_takes_the_keys_the_token_or_the_default_chain(tmp_path: Path) -> None:
    keys = s3_filesystem_options(job_settings(tmp_path, access_key_id="AKIA1", secret_access_key="s"))
    assert (keys["s3.access-key"], keys["s3.secret-key"]) == ("AKIA1", "s") and "s3.session.token" not in keys
    assert keys["s3.aws.credentials.provider"] == "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
    temporary = s3_filesystem_options(job_settings(tmp_path, access_key_id="ASIA1", secret_access_key="s",
                                                   session_token="t"))
    assert (temporary["s3.access-key"], temporary["s3.secret-key"], temporary["s3.session.token"]) == ("ASIA1", "s", "t")
    assert temporary["s3.aws.credentials.provider"] == "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
    chain = s3_filesystem_options(job_settings(tmp_path))
    assert not {"s3.access-key", "s3.secret-key", "s3.session.token"} & set(chain)
    assert chain["s3.aws.credentials.provider"] == "com.amazonaws.auth.DefaultAWSCredentialsProviderChain"


# -- the UDF's reader in the Flink runtime environment ----------------------------------------------

READ_IN_FLINK_ENV = r"""
import json, sys
from udfs.registry_reader import RegistryReader
conf = json.loads(sys.argv[1])
print(RegistryReader(conf.pop("root"), s3=conf).champion_version())
"""


@pytest.mark.setup  # needs the Flink runtime environment
def test_the_udfs_reader_reads_with_temporary_credentials_in_the_flink_environment(
        enforced: tuple[str, dict[str, str]]) -> None:
    from loanrisk.settings import get_settings
    python = get_settings().flink_python
    if not python.exists():
        pytest.fail(f"{python} missing: run `make setup` (riskctl setup) first")
    endpoint, keys = enforced
    for token, expected in ((keys["session_token"], "v0001"), ("not-the-token", "HTTP status 400")):
        conf = {"root": f"s3://{BUCKET}/models", "endpoint": endpoint, **keys, "session_token": token}
        env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED": "true"}
        proc = subprocess.run([str(python), "-c", READ_IN_FLINK_ENV, json.dumps(conf)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert expected in proc.stdout + proc.stderr, proc.stderr[-2000:]


def test_the_reader_with_no_keys_and_no_credentials_anywhere_fails_as_a_read_error(
        store: tuple[str, dict[str, str]]) -> None:
    endpoint, _ = store
    with enforced_auth(endpoint), pytest.raises(RegistryReadError, match=f"via {endpoint}"):
        RegistryReader(f"s3://{BUCKET}/models", s3={"endpoint": endpoint}, timeout_s=5).champion_version()
