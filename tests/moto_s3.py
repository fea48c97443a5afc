"""A moto S3 server on a free loopback port for unit tests (in memory; stopped on exit)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def free_port() -> int:
    """A loopback port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """Run moto's S3 server for the block; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextmanager
def enforced_auth(endpoint: str) -> Iterator[None]:
    """Make the moto server check every request's signature, key and session token for the block.

    moto signs nothing off by default; from this point every request must be signed by keys it issued (an IAM
    user's or an assumed role's, with that role's own session token) and allowed by their policies. The setting is
    the server's process-wide one, so the previous value comes back on exit.
    """
    import requests

    answer = requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10)
    answer.raise_for_status()
    previous = answer.json()["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]
    try:
        yield
    finally:
        requests.post(f"{endpoint}/moto-api/reset-auth", data=previous.encode(), timeout=10).raise_for_status()


def temporary_credentials(endpoint: str, role: str = "registry-reader") -> dict[str, str]:
    """Temporary credentials (access key, secret, session token) from the server's STS: a role allowed every S3
    action, assumed. Call it before :func:`enforced_auth`, which would refuse the unsigned setup calls."""
    import json

    import boto3

    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id="setup", aws_secret_access_key="setup")

    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                                                      "Action": "sts:AssumeRole"}]}
    arn = client("iam").create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    allow_s3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    client("iam").put_role_policy(RoleName=role, PolicyName="s3", PolicyDocument=json.dumps(allow_s3))
    issued = client("sts").assume_role(RoleArn=arn, RoleSessionName="test")["Credentials"]
    return {"access_key_id": issued["AccessKeyId"], "secret_access_key": issued["SecretAccessKey"],
            "session_token": issued["SessionToken"]}
