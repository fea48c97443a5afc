"""The risk job on Kubernetes under the Flink Kubernetes Operator: the manifests `riskctl k8s render` writes, and
the step that completes the job's parameter file inside the JobManager pod.

Every value comes from the builders `riskctl job submit` uses (jobs/params.py, jobs/submit.py,
stack/flink_conf.py), run on the settings as the pods see them (:func:`cluster_settings`). No secret is in a
manifest: the parameter file travels in a ConfigMap with a placeholder where each secret goes, and an init
container of the JobManager pod (``python -m jobs.kubernetes``) fills them in from the mounted Secrets. With no S3
key configured the pods hold none: they run under a ServiceAccount for a pod role (IRSA) and every S3 client takes
the AWS credential chain.

Module level is stdlib only, as for jobs/sqlfiles.py: the init container runs this file with the image's Flink
runtime Python, which has no pydantic. The renderers import the settings-side builders when called.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.params import JobParams
    from loanrisk.settings import Settings

# Where docker/flink.Dockerfile puts the job's code and the Flink runtime Python.
IMAGE_CODE_DIR = PurePosixPath("/opt/loanrisk")
IMAGE_PYTHON = "/opt/flink-python/bin/python"
DEFAULT_IMAGE_REPOSITORY = "loanrisk/flink"
# The operator's Helm chart creates this service account, with the rights Kubernetes HA needs, in the
# namespaces it watches; pods that sign with S3 keys run as it.
SERVICE_ACCOUNT = "flink"
# EKS's pod identity webhook gives the pods of a ServiceAccount so annotated a token for this IAM role (IRSA).
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
# The operator merges a pod template into the container of this name.
MAIN_CONTAINER = "flink-main-container"
SECRETS_DIR = PurePosixPath("/etc/loanrisk/secrets")
TEMPLATE_DIR = PurePosixPath("/etc/loanrisk/params-template")
PARAMS_DIR = PurePosixPath("/run/loanrisk")
PARAMS_FILE = "params.json"
# Flink's S3 file system reads its keys from these variables (set from a Secret), never from the configuration
# the operator stores in a ConfigMap; and only from them, not from the cloud's instance-metadata address.
S3_ENV_CREDENTIALS = "com.amazonaws.auth.EnvironmentVariableCredentialsProvider"
# Options of the local cluster configuration (stack/flink_conf.py) that mean the same in a pod. Left out:
# addresses, ports, log and PID folders, memory sizes (the deployment's resources set them), the Python
# interpreter (the image's), and the RPC timeout and metric fetch interval tuned for the small shared machine.
CLUSTER_OPTIONS = (
    "taskmanager.numberOfTaskSlots", "taskmanager.memory.managed.fraction",
    "taskmanager.network.memory.buffer-debloat.enabled", "state.backend.type",
    "execution.checkpointing.externalized-checkpoint-retention", "execution.checkpointing.num-retained",
    "restart-strategy.type", "restart-strategy.fixed-delay.attempts", "restart-strategy.fixed-delay.delay",
    "jobmanager.execution.failover-strategy", "env.java.opts.all",
    "metrics.reporter.prom.factory.class", "metrics.reporter.prom.port", "metrics.latency.interval",
    "metrics.reporter.prom.filter.includes", "metrics.reporter.prom.scope.variables.excludes",
    "rest.flamegraph.enabled", "rest.flamegraph.num-samples", "rest.flamegraph.delay-between-samples",
)
_PLACEHOLDER = re.compile(r"@@secret:([a-z0-9][a-z0-9.-]*)/([A-Za-z0-9_][A-Za-z0-9._-]*)@@")
_IMAGE = re.compile(r"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
                    r"(?P<tag>:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?P<digest>@sha256:[0-9a-f]{64})?")


@dataclass(frozen=True)
class SecretRef:
    """One key of a Kubernetes Secret the deployment reads (its name and key, never its value).

    ``in_params``: the parameter file holds it (filled in by the init container); ``mounted_on``: the Flink
    processes that read it as a file ("jobmanager", "taskmanager").
    """

    name: str
    key: str
    holds: str
    in_params: bool = False
    mounted_on: tuple[str, ...] = ()

    @property
    def path(self) -> PurePosixPath:
        """Where the key's file is in a pod that mounts the Secret."""
        return SECRETS_DIR / self.name / self.key

    @property
    def placeholder(self) -> str:
        """What the ConfigMap's parameter file holds in its place."""
        return f"@@secret:{self.name}/{self.key}@@"

    @property
    def volume(self) -> str:
        """The name of the pod volume the Secret is mounted from."""
        return f"secret-{self.name}"


POSTGRES_SECRET = SecretRef("loanrisk-postgres", "password", "postgres.password: the writer role's password (Iceberg "
                            "JDBC catalog, serving tables)", in_params=True)
S3_SECRET = SecretRef("loanrisk-s3", "secret-access-key", "s3.secret_access_key of s3.access_key_id (lake, model "
                      "registry; Flink's checkpoints through AWS_SECRET_ACCESS_KEY)", in_params=True)
S3_READER_SECRET = SecretRef("loanrisk-s3-reader", "secret-access-key", "s3.reader.secret_access_key of "
                             "s3.reader.access_key_id: the scorer's model registry key, which cannot write", in_params=True)
PII_SECRET = SecretRef("loanrisk-pii-hash-key", "pii-hash-key", "privacy.pii_hash_key: the HMAC key of every PII "
                       "pseudonym (the installation's own: pseudonyms change with it)", mounted_on=("taskmanager",))
KAFKA_SASL_SECRET = SecretRef("loanrisk-kafka", "sasl-password", "kafka.sasl_password of kafka.sasl_username",
                              in_params=True)
KAFKA_CA_SECRET = SecretRef("loanrisk-kafka-ca", "ca.pem", "kafka.ssl_cafile: the CA certificate the brokers' TLS "
                            "is checked against", mounted_on=("jobmanager", "taskmanager"))


def expected_secrets(settings: Settings) -> list[SecretRef]:
    """The Secrets the deployment of these settings reads; create them before applying it."""
    k = settings.kafka
    found = [POSTGRES_SECRET, PII_SECRET] if settings.s3.default_chain else [POSTGRES_SECRET, S3_SECRET, PII_SECRET]
    if not settings.s3.for_readers().default_chain:
        found.insert(-1, S3_READER_SECRET)
    if k.sasl:
        found.append(KAFKA_SASL_SECRET)
    if k.ssl_cafile and "SSL" in k.security_protocol:
        found.append(KAFKA_CA_SECRET)
    return found


def _placeholder(ref: SecretRef) -> str:
    return ref.placeholder


def cluster_settings(settings: Settings, secret: Callable[[SecretRef], str] = _placeholder) -> Settings:
    """The settings as the pods see them: checkpoints on S3, secret files at their mount paths, and each secret
    value replaced by ``secret(ref)`` (its placeholder), so no builder reads, generates or returns a secret."""
    from loanrisk.settings import override
    refs = expected_secrets(settings)
    kafka: dict[str, object] = {}
    if KAFKA_SASL_SECRET in refs:
        kafka.update(sasl_password=secret(KAFKA_SASL_SECRET), sasl_password_file=None)
    if KAFKA_CA_SECRET in refs:
        kafka["ssl_cafile"] = str(KAFKA_CA_SECRET.path)
    s3: dict[str, object] = {}
    if S3_SECRET in refs:
        # A session token would expire under a long-running job, and the pods have no Secret for one: they sign
        # with the Secret's key, so the token is dropped rather than written. A pod role renews its own.
        s3 = {"secret_access_key": secret(S3_SECRET), "secret_access_key_file": None, "session_token": None,
              "session_token_file": None}
    if S3_READER_SECRET in refs:
        # The scorer's key, filled in like the read-write one (its session token dropped for the same reason).
        s3["reader"] = {**dict(settings.s3.reader), "secret_access_key": secret(S3_READER_SECRET),
                        "secret_access_key_file": None, "session_token": None, "session_token_file": None}
    return override(
        settings, flink={"checkpoint_storage": "s3"}, kafka=kafka, s3=s3,
        postgres={"password": secret(POSTGRES_SECRET), "password_file": None},
        # The value beside the file keeps jobs.params.pii_key_file from reading the file, which exists only in the
        # TaskManager pods; only the path reaches the job's parameters.
        privacy={"pii_hash_key": secret(PII_SECRET), "pii_hash_key_file": str(PII_SECRET.path)})


def job_params(settings: Settings, name: str) -> JobParams:
    """The risk job's parameter file as the ConfigMap holds it (placeholders for the secrets)."""
    from jobs.params import risk_job_params
    return risk_job_params(cluster_settings(settings), name)


def in_image(path: Path) -> str:
    """The path in the image of a file or folder of this repository."""
    from loanrisk.settings import REPO_ROOT
    return str(IMAGE_CODE_DIR / path.relative_to(REPO_ROOT).as_posix())


def flink_value(value: object) -> str:
    """A Flink option's value as the operator's string map holds it (lists joined with ';', as Flink reads them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    return str(value)


def flink_configuration(settings: Settings, name: str) -> dict[str, str]:
    """The deployment's Flink configuration: the local cluster's portable options, the S3 file system without
    keys (from the pods' environment, or the AWS credential chain for a pod role), the job's configuration
    (jobs/params.py), Kubernetes HA and the image's Python."""
    from jobs.params import flink_conf
    from jobs.submit import risk_job_python_files
    from stack.flink_conf import flink_config, s3_filesystem_options, state_root
    pods = cluster_settings(settings)
    local = flink_config(pods)
    conf: dict[str, object] = {key: local[key] for key in CLUSTER_OPTIONS}
    # With no keys this already names the SDK's default chain, which reads the pod role's web identity token.
    s3 = s3_filesystem_options(pods)
    if not settings.s3.default_chain:
        del s3["s3.access-key"], s3["s3.secret-key"]
        s3["s3.aws.credentials.provider"] = S3_ENV_CREDENTIALS
    conf.update(s3)
    job = flink_conf(pods, name)
    # It holds secret placeholders; jobs/run_sql.py sets it from the completed parameter file.
    del job["pipeline.global-job-parameters"]
    conf.update(job)
    conf.update({"high-availability.type": "kubernetes",
                 "high-availability.storageDir": f"{state_root(pods)}/ha/{name}",
                 "python.executable": IMAGE_PYTHON, "python.client.executable": IMAGE_PYTHON,
                 # What `flink run -pyfs` ships today (jobs/submit.py); the image holds the same folders.
                 "python.files": ",".join(in_image(path) for path in risk_job_python_files())})
    return {key: flink_value(value) for key, value in conf.items()}


def job_args(name: str) -> list[str]:
    """PythonDriver's arguments: jobs/run_sql.py over the risk job's sql/ folders, as jobs/submit.py runs it."""
    from jobs.submit import ENTRY, RISK_SQL
    from loanrisk.settings import REPO_ROOT
    args = ["-py", in_image(ENTRY)]
    for folder in RISK_SQL:
        args += ["--sql-dir", in_image(REPO_ROOT / "sql" / folder)]
    # No --plan-out: its copy of the plan is for `riskctl job submit` to print retention on the submitting machine.
    return [*args, "--params", str(PARAMS_DIR / PARAMS_FILE), "--name", name]


def params_config_map(settings: Settings, name: str) -> dict[str, Any]:
    """The ConfigMap holding the job's parameter file, secrets as placeholders."""
    text = json.dumps(job_params(settings, name).as_dict(), indent=2, sort_keys=True)
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{name}-params", "labels": _labels(name)}, "data": {PARAMS_FILE: text}}


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "loan-risk"}


def _secret_volumes(refs: list[SecretRef]) -> list[dict[str, Any]]:
    return [{"name": ref.volume, "secret": {"secretName": ref.name}} for ref in refs]


def _secret_mounts(refs: list[SecretRef]) -> list[dict[str, Any]]:
    return [{"name": ref.volume, "mountPath": str(SECRETS_DIR / ref.name), "readOnly": True} for ref in refs]


def _main_container(settings: Settings, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """A Flink pod's main container: the S3 keys Flink's file system reads, when the pods sign with keys, and
    ``mounts``. A pod role gets no variable: an AWS_ACCESS_KEY_ID would come before the role's token in every
    client's credential chain."""
    main: dict[str, Any] = {"name": MAIN_CONTAINER}
    if not settings.s3.default_chain:
        main["env"] = [{"name": "AWS_ACCESS_KEY_ID", "value": settings.s3.access_key_id},
                       {"name": "AWS_SECRET_ACCESS_KEY",
                        "valueFrom": {"secretKeyRef": {"name": S3_SECRET.name, "key": S3_SECRET.key}}}]
    main["volumeMounts"] = mounts
    return main


def jobmanager_pod(settings: Settings, image: str, name: str, params_digest: str) -> dict[str, Any]:
    """The JobManager's pod template: an init container writes the completed parameter file into memory-backed
    storage the main container reads; only it mounts the Secrets the file needs."""
    refs = expected_secrets(settings)
    filled, files = [r for r in refs if r.in_params], [r for r in refs if "jobmanager" in r.mounted_on]
    init = {"name": "job-params", "image": image, "workingDir": str(IMAGE_CODE_DIR),
            "command": [IMAGE_PYTHON, "-m", "jobs.kubernetes", "--template", str(TEMPLATE_DIR / PARAMS_FILE),
                        "--secrets-dir", str(SECRETS_DIR), "--out", str(PARAMS_DIR / PARAMS_FILE)],
            "volumeMounts": [{"name": "params-template", "mountPath": str(TEMPLATE_DIR), "readOnly": True},
                             {"name": "job-params", "mountPath": str(PARAMS_DIR)}, *_secret_mounts(filled)]}
    main = _main_container(settings, [{"name": "job-params", "mountPath": str(PARAMS_DIR), "readOnly": True},
                                      *_secret_mounts(files)])
    volumes = [{"name": "params-template", "configMap": {"name": f"{name}-params"}},
               {"name": "job-params", "emptyDir": {"medium": "Memory"}}, *_secret_volumes([*filled, *files])]
    # The operator redeploys (by savepoint) when the spec changes; the digest makes a changed parameter file one.
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"annotations": {"loanrisk/params-sha256": params_digest}},
            "spec": {"initContainers": [init], "containers": [main], "volumes": volumes}}


def taskmanager_pod(settings: Settings) -> dict[str, Any]:
    """The TaskManagers' pod template: the S3 keys for checkpoints (unless a pod role) and the secret files their
    functions read."""
    files = [r for r in expected_secrets(settings) if "taskmanager" in r.mounted_on]
    main = _main_container(settings, _secret_mounts(files))
    return {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [main], "volumes": _secret_volumes(files)}}


def pod_service_account(settings: Settings, name: str) -> str:
    """The ServiceAccount the Flink pods run as: kubernetes.service_account; else, signing with S3 keys, the
    operator chart's; else (a pod role) the one :func:`service_account_objects` writes, named after the job."""
    if settings.kubernetes.service_account:
        return settings.kubernetes.service_account
    return name if settings.s3.default_chain else SERVICE_ACCOUNT


def check_pod_role(settings: Settings) -> None:
    """A ConfigError saying the fix when kubernetes.role_arn could not take effect."""
    from loanrisk.errors import ConfigError
    k = settings.kubernetes
    if k.role_arn is None:
        return
    if not settings.s3.default_chain:
        raise ConfigError(f"kubernetes.role_arn {k.role_arn} is set, but the pods would sign with an S3 key ("
                          "s3.secret_access_key or its _file, or the local object store's own without s3.endpoint), "
                          "which the AWS credential chain puts first: to use the role, set s3.endpoint and unset "
                          "s3.secret_access_key and s3.secret_access_key_file; else unset kubernetes.role_arn")
    if k.service_account:
        raise ConfigError(f"kubernetes.role_arn annotates the ServiceAccount the render writes, but "
                          f"kubernetes.service_account names your own, {k.service_account}: annotate it "
                          f"(kubectl annotate serviceaccount {k.service_account} {ROLE_ARN_ANNOTATION}={k.role_arn}) "
                          "and unset kubernetes.role_arn")


def job_rbac_rules() -> list[dict[str, Any]]:
    """The rights the operator chart's `flink` Role grants a job's pods: the JobManager creates its TaskManager
    pods (owned by its Deployment) and keeps Kubernetes HA's leader and checkpoint pointers in ConfigMaps."""
    verbs = ["get", "list", "watch", "create", "update", "patch", "delete"]
    return [{"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": list(verbs)},
            {"apiGroups": ["apps"], "resources": ["deployments", "deployments/finalizers"], "verbs": list(verbs)}]


def service_account_objects(settings: Settings, name: str) -> list[dict[str, Any]]:
    """For a pod role with no ServiceAccount of the user's: one named after the job, annotated with
    kubernetes.role_arn if set, and the Role and RoleBinding giving it the rights of the operator chart's `flink`
    Role. None otherwise: the pods run as an account that exists already."""
    if settings.kubernetes.service_account or not settings.s3.default_chain:
        return []
    account: dict[str, Any] = {"name": name, "labels": _labels(name)}
    if settings.kubernetes.role_arn:
        account["annotations"] = {ROLE_ARN_ANNOTATION: settings.kubernetes.role_arn}
    rbac = "rbac.authorization.k8s.io"
    # The subject has no namespace: a RoleBinding's ServiceAccount is looked up in the binding's own, the one
    # everything here is applied to (kubectl -n).
    return [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": account},
            {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": {"name": name, "labels": _labels(name)},
             "rules": job_rbac_rules()},
            {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": {"name": name, "labels": _labels(name)},
             "roleRef": {"apiGroup": rbac, "kind": "Role", "name": name},
             "subjects": [{"kind": "ServiceAccount", "name": name}]}]


def service_account_note(settings: Settings, name: str) -> str:
    """One line saying which ServiceAccount the pods run as and what it must have."""
    account = pod_service_account(settings, name)
    if settings.kubernetes.service_account:
        return (f"{account}, yours (kubernetes.service_account): give it the rights of the operator chart's flink "
                f"Role, and for IRSA the {ROLE_ARN_ANNOTATION} annotation")
    if not settings.s3.default_chain:
        return f"{account}, the operator chart's (the pods sign with the S3 key of Secret {S3_SECRET.name})"
    role = settings.kubernetes.role_arn
    return (f"{account}, written here with its Role and RoleBinding; " +
            (f"IRSA role {role}" if role else "no kubernetes.role_arn: the pods take what the AWS credential chain "
             "finds, such as the node's instance role"))


def operator_flink_version(flink_version: str) -> str:
    """The operator's name for a Flink release line: ``2.1.3`` -> ``v2_1``."""
    major, minor = flink_version.split(".")[:2]
    return f"v{major}_{minor}"


def default_image() -> str:
    """The image docker-compose.yml builds from docker/flink.Dockerfile, tagged with the pinned Flink."""
    from stack.jvm import load_pins
    return f"{DEFAULT_IMAGE_REPOSITORY}:{load_pins()[0]}"


def check_image(image: str) -> str:
    """``image`` if it is a reference with a tag (not ``latest``) or a digest, else a ConfigError saying why."""
    from loanrisk.errors import ConfigError
    found = _IMAGE.fullmatch(image)
    if found is None or not (found["tag"] or found["digest"]) or found["tag"] == ":latest":
        raise ConfigError(f"--image {image!r}: give REPOSITORY:TAG or REPOSITORY@sha256:DIGEST, a tag other than "
                          "latest (the operator upgrades the job when the image in the spec changes), e.g. "
                          f"{default_image()}-1a2b3c4")
    return image


def flink_deployment(settings: Settings, image: str, name: str, savepoint: str | None = None) -> dict[str, Any]:
    """The FlinkDeployment of the risk job: application mode, upgraded by savepoint, started from ``savepoint``
    the first time it is deployed if given."""
    from stack.jvm import load_pins
    flink_version = load_pins()[0]
    f = settings.flink
    digest = hashlib.sha256(params_config_map(settings, name)["data"][PARAMS_FILE].encode()).hexdigest()
    job: dict[str, Any] = {
        "jarURI": f"local:///opt/flink/opt/flink-python-{flink_version}.jar",
        "entryClass": "org.apache.flink.client.python.PythonDriver", "args": job_args(name),
        "parallelism": f.parallelism, "upgradeMode": "savepoint", "state": "running"}
    if savepoint:
        job["initialSavepointPath"] = savepoint
    return {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
            "metadata": {"name": name, "labels": _labels(name)},
            "spec": {"image": check_image(image), "imagePullPolicy": "IfNotPresent",
                     "flinkVersion": operator_flink_version(flink_version), "mode": "native",
                     "serviceAccount": pod_service_account(settings, name),
                     "flinkConfiguration": flink_configuration(settings, name),
                     "jobManager": {"replicas": 1, "resource": {"memory": f.jobmanager_memory, "cpu": 1.0},
                                    "podTemplate": jobmanager_pod(settings, image, name, digest)},
                     # A core per slot: each slot runs a Python worker scoring with onnxruntime.
                     "taskManager": {"resource": {"memory": f.taskmanager_memory, "cpu": float(f.taskmanager_slots)},
                                     "podTemplate": taskmanager_pod(settings)},
                     "job": job}}


def manifests(settings: Settings, image: str, name: str, savepoint: str | None = None) -> list[dict[str, Any]]:
    """Every object to apply, in order: for a pod role its ServiceAccount, Role and RoleBinding (none when the
    pods sign with S3 keys or run as an account of the user's), the parameter ConfigMap, then the
    FlinkDeployment that mounts it."""
    check_pod_role(settings)
    return [*service_account_objects(settings, name), params_config_map(settings, name),
            flink_deployment(settings, image, name, savepoint)]


def unreachable_endpoints(settings: Settings) -> list[str]:
    """One line per endpoint setting that names the loopback address, which a pod cannot reach the service on."""
    import ipaddress
    from urllib.parse import urlsplit

    def loopback(host: str) -> bool:
        try:
            return ipaddress.ip_address(host.strip("[]")).is_loopback
        except ValueError:
            return host == "localhost"
    k, pg, s3, readers = settings.kafka, settings.postgres, settings.s3, settings.s3.for_readers()
    checks = [("kafka.bootstrap_servers", k.bootstrap, [s.rsplit(":", 1)[0] for s in k.bootstrap.split(",")]),
              ("postgres.host", pg.host, [pg.host]), ("s3.endpoint", s3.url, [urlsplit(s3.url).hostname or ""]),
              ("s3.reader.endpoint", readers.url, [urlsplit(readers.url).hostname or ""])]
    return [f"{setting} is {value}: pods cannot reach a loopback address; set LOANRISK_{setting.upper().replace('.', '__')}"
            for setting, value, hosts in checks if any(loopback(h) for h in hosts)]


class SecretFileError(Exception):
    """A placeholder's Secret file is missing, empty, or holds a value the parameter file cannot carry as is."""


def _secret_value(secrets_dir: Path, name: str, key: str) -> str:
    path = secrets_dir / name / key
    try:
        value = path.read_text().strip()  # as the settings read a *_file secret
    except OSError as exc:
        raise SecretFileError(f"cannot read {path} ({exc.strerror}): create Secret {name} with key {key} "
                              "(docs/KUBERNETES.md)") from None
    if not value:
        raise SecretFileError(f"{path} is empty: Secret {name} needs a value under key {key}")
    # The placeholders sit inside SQL string literals, a JAAS line and a JSON string, each quoted its own way;
    # a value with none of those characters reads the same in all of them.
    if any(c in "'\"\\" or not " " <= c <= "~" for c in value):
        raise SecretFileError(f"Secret {name}, key {key}: holds a quote, a backslash or a character outside printable "
                              "ASCII, which the job's parameters would need escaped; use another value "
                              "(e.g. openssl rand -hex 32)")
    return value


def fill_placeholders(value: Any, secrets_dir: Path) -> Any:
    """``value`` (the parsed parameter file) with every secret placeholder replaced by its Secret file's value."""
    if isinstance(value, dict):
        return {k: fill_placeholders(v, secrets_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_placeholders(v, secrets_dir) for v in value]
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: _secret_value(secrets_dir, m[1], m[2]), value)
    return value


def main(argv: list[str] | None = None) -> int:
    """The JobManager pod's init container: write the parameter file with the secrets filled in (mode 0600)."""
    parser = argparse.ArgumentParser(prog="python -m jobs.kubernetes", description=main.__doc__)
    parser.add_argument("--template", required=True, type=Path, help="the ConfigMap's parameter file")
    parser.add_argument("--secrets-dir", required=True, type=Path, help="where each Secret is mounted, by name")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        template = json.loads(args.template.read_text())
    except (OSError, ValueError) as exc:
        print(f"job-params: cannot read the parameter file {args.template}: {exc}", file=sys.stderr)
        return 2
    try:
        params = fill_placeholders(template, args.secrets_dir)
    except SecretFileError as exc:
        print(f"job-params: {exc}", file=sys.stderr)
        return 2
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(params, fh)
    print(f"job-params: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
