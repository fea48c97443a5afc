"""`riskctl k8s render` (jobs/kubernetes.py): the FlinkDeployment fits the Flink Kubernetes Operator's published
CRD, follows the settings through the job's own builders, and carries no secret value; the JobManager's init
container completes the parameter file as the builders would have with the secrets.

The CRD comes from the operator's API jar that `make setup` fetches (jvm/artifacts.toml, group
kubernetes_operator_api); the tests that read it, or render the Flink configuration from the Flink
environment's default config, are marked setup.
"""

from __future__ import annotations

import json
import re
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from pydantic import ValidationError

from jobs import kubernetes
from jobs.kubernetes import IMAGE_CODE_DIR, SecretRef, cluster_settings, expected_secrets, job_params, manifests
from loanrisk.settings import REPO_ROOT, Settings, override

OPERATOR_API_GROUP = "kubernetes_operator_api"
CRD_ENTRY = "META-INF/fabric8/flinkdeployments.flink.apache.org-v1.yml"
IMAGE = "registry.example/loanrisk/flink:2.1.3-abc1234"
NAME = "loan-risk"
# Flink 2.1 needs flinkVersion v2_1 (the operator picks its Flink client by it). The pinned operator API, 1.10.0,
# predates Flink 2.x: its CRD stops at v1_20, so an API server with those CRDs refuses the deployment. Operator
# releases from 1.13.0 list v2_1 (docs/KUBERNETES.md); when the pin moves to one, this exception must go.
FLINK_VERSION_BEYOND_THE_CRD = ("spec.flinkVersion: 'v2_1' not in enum "
                                "['v1_13', 'v1_14', 'v1_15', 'v1_16', 'v1_17', 'v1_18', 'v1_19', 'v1_20']")
# The keywords of the structural schema the walk below understands; the CRD must use no other.
SCHEMA_KEYWORDS = {"type", "properties", "additionalProperties", "items", "enum", "anyOf", "x-kubernetes-int-or-string"}

ROLE_ARN = "arn:aws:iam::123456789012:role/loan-risk-flink"
# What Flink's S3 file system (flink-s3-fs-hadoop: Hadoop 3.3's S3A on AWS SDK v1) is told for the SDK's default
# chain, which unlike S3A's own list reads a web identity token (IRSA).
SDK_DEFAULT_CHAIN = "com.amazonaws.auth.DefaultAWSCredentialsProviderChain"
# Distinctive values of every secret setting: none may reach a manifest.
SECRET_VALUES = {"postgres": "Pg-Writer-Secret-7Q", "s3": "S3-Secret-Key-9Z/xK+w", "pii": "Pii-Hmac-Key-4V",
                 "kafka": "Sasl-Password-2M:x@y", "s3 session token": "S3-Session-Token-6R",
                 "s3 reader": "S3-Reader-Key-3J/pQ+v"}


def crd_jar() -> Path:
    """Where `make setup` puts the operator's API jar: .loanrisk/jars/<group>/<artifact>-<version>.jar."""
    from stack.jvm import load_pins
    (group,) = [g for g in load_pins()[1] if g.name == OPERATOR_API_GROUP]
    (coordinate,) = group.artifacts
    _, artifact, version = coordinate.split(":")
    return Settings().install_dir / "jars" / OPERATOR_API_GROUP / f"{artifact}-{version}.jar"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    """The FlinkDeployment CustomResourceDefinition the operator publishes."""
    jar = crd_jar()
    if not jar.exists():
        pytest.fail(f"{jar} is missing: run `make setup` (it fetches group {OPERATOR_API_GROUP} of jvm/artifacts.toml)")
    with zipfile.ZipFile(jar) as archive:
        return yaml.safe_load(archive.read(CRD_ENTRY))


def served_schema(crd: dict[str, Any], api_version: str) -> dict[str, Any]:
    """The openAPIV3Schema of the served CRD version ``api_version`` names (``flink.apache.org/v1beta1``)."""
    group, version = api_version.split("/")
    assert crd["spec"]["group"] == group
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    return served["schema"]["openAPIV3Schema"]


def _is_type(value: Any, kind: str) -> bool:
    if kind in ("integer", "number", "boolean") and isinstance(value, bool):
        return kind == "boolean"
    return isinstance(value, {"object": dict, "array": list, "string": str, "integer": int,
                              "number": int | float, "boolean": bool}[kind])


def schema_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Every way ``value`` breaks the structural schema ``schema``, one line each: a key the schema does not know
    (the API server would drop it), a wrong type, a value outside an enum."""
    unknown = set(schema) - SCHEMA_KEYWORDS
    assert not unknown, f"{path}: schema keywords {sorted(unknown)} are not checked here; teach schema_errors them"
    if schema.get("x-kubernetes-int-or-string"):
        return [] if _is_type(value, "integer") or isinstance(value, str) else [f"{path}: {value!r} is no int-or-string"]
    if "type" in schema and not _is_type(value, schema["type"]):
        return [f"{path}: {value!r} is not of type {schema['type']}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in enum {schema['enum']}")
    if isinstance(value, dict):
        known, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key in known:
                errors += schema_errors(item, known[key], where)
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, where)
            else:
                errors.append(f"{where}: not in the schema")
    if isinstance(value, list):
        for index, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{index}]")
    return errors


def deployment_errors(crd: dict[str, Any], deployment: dict[str, Any]) -> list[str]:
    """The schema errors of a rendered FlinkDeployment (apiVersion, kind and metadata are the API server's own)."""
    assert deployment["kind"] == crd["spec"]["names"]["kind"]
    body = {k: v for k, v in deployment.items() if k not in ("apiVersion", "kind", "metadata")}
    return schema_errors(body, served_schema(crd, deployment["apiVersion"]))


def default_settings(tmp_path: Path) -> Settings:
    return override(Settings(), stack={"state_dir": tmp_path / "state"})


def cluster_like_settings(tmp_path: Path) -> Settings:
    """Settings pointed at real services, every secret set (the S3 key also as a file that does not exist, which
    the settings would read first: rendering must not), SASL over TLS, and sizes unlike the defaults."""
    return override(
        Settings(), stack={"state_dir": tmp_path / "state"},
        kafka={"bootstrap_servers": "b1.kafka.svc:9093,b2.kafka.svc:9093", "security_protocol": "SASL_SSL",
               "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "risk-job", "sasl_password": SECRET_VALUES["kafka"],
               "ssl_cafile": str(tmp_path / "ca.pem")},
        postgres={"host": "pg.data.svc", "password": SECRET_VALUES["postgres"]},
        s3={"endpoint": "https://s3.eu-west-1.amazonaws.com", "region": "eu-west-1", "path_style": False,
            "bucket": "risk-lake", "access_key_id": "AKIARISKJOB", "secret_access_key": SECRET_VALUES["s3"],
            "secret_access_key_file": "/nowhere/s3-secret", "session_token": SECRET_VALUES["s3 session token"],
            "reader": {"access_key_id": "AKIARISKREADER", "secret_access_key": SECRET_VALUES["s3 reader"],
                       "secret_access_key_file": "/nowhere/s3-reader-secret"}},
        privacy={"pii_hash_key": SECRET_VALUES["pii"]},
        flink={"parallelism": 6, "taskmanager_slots": 3, "taskmanager_memory": "6144m", "jobmanager_memory": "2048m",
               "checkpoint_interval_ms": 30_000, "checkpoint_prefix": "/ops/flink-state/"})


def pod_role_settings(tmp_path: Path) -> Settings:
    """The cluster-like settings with no S3 key, the readers' neither (the AWS credential chain), and an IRSA role
    for the pods."""
    return override(cluster_like_settings(tmp_path), kubernetes={"role_arn": ROLE_ARN},
                    s3={"secret_access_key": None, "secret_access_key_file": None, "session_token": None, "reader": {}})


SETTINGS: dict[str, Callable[[Path], Settings]] = {"defaults": default_settings, "cluster-like": cluster_like_settings,
                                                  "pod-role": pod_role_settings}


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The one object of ``kind`` among ``objects``."""
    (found,) = [obj for obj in objects if obj["kind"] == kind]
    return found


def rendered(settings: Settings, savepoint: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the parameter ConfigMap, the FlinkDeployment) for ``settings``."""
    objects = manifests(settings, IMAGE, NAME, savepoint)
    return of_kind(objects, "ConfigMap"), of_kind(objects, "FlinkDeployment")


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container of the JobManager's and TaskManagers' pod templates, init containers included."""
    spec = deployment["spec"]
    return [c for role in ("jobManager", "taskManager") for pod in [spec[role]["podTemplate"]["spec"]]
            for c in [*pod.get("initContainers", []), *pod["containers"]]]


@pytest.mark.setup  # reads the operator's CRD and the Flink environment's default config
@pytest.mark.parametrize("which", sorted(SETTINGS))
def test_the_deployment_fits_the_operators_crd_but_for_the_flink_version_it_predates(
        which: str, crd: dict[str, Any], tmp_path: Path) -> None:
    _, deployment = rendered(SETTINGS[which](tmp_path), savepoint="s3://risk-lake/savepoints/sp-1")
    assert deployment_errors(crd, deployment) == [FLINK_VERSION_BEYOND_THE_CRD]


@pytest.mark.setup  # reads the operator's CRD and the Flink environment's default config
def test_the_crd_check_finds_unknown_keys_wrong_types_and_values_outside_an_enum(
        crd: dict[str, Any], tmp_path: Path) -> None:
    _, deployment = rendered(default_settings(tmp_path))
    spec = deployment["spec"]
    spec["job"]["upgradeMode"] = "last-savepoint"
    spec["job"]["parallelism"] = "6"
    spec["flinkConfiguration"]["parallelism.default"] = 6
    spec["taskManager"]["resources"] = spec["taskManager"].pop("resource")
    spec["taskManager"]["podTemplate"]["spec"]["containers"][0]["env"][1]["valueFrom"]["secretRef"] = {"name": "x"}
    spec["serviceAccountName"] = spec.pop("serviceAccount")
    assert set(deployment_errors(crd, deployment)) == {
        FLINK_VERSION_BEYOND_THE_CRD,
        "spec.job.upgradeMode: 'last-savepoint' not in enum ['last-state', 'savepoint', 'stateless']",
        "spec.job.parallelism: '6' is not of type integer",
        "spec.flinkConfiguration.parallelism.default: 6 is not of type string",
        "spec.taskManager.resources: not in the schema",
        "spec.taskManager.podTemplate.spec.containers[0].env[1].valueFrom.secretRef: not in the schema",
        "spec.serviceAccountName: not in the schema"}


@pytest.mark.setup  # renders the Flink configuration from the Flink environment's default config
def test_image_resources_and_flink_options_follow_the_settings(tmp_path: Path) -> None:
    from jobs.params import flink_conf
    from stack.jvm import load_pins
    settings = cluster_like_settings(tmp_path)
    _, deployment = rendered(settings)
    spec, conf = deployment["spec"], deployment["spec"]["flinkConfiguration"]
    assert spec["image"] == IMAGE and {c.get("image", IMAGE) for c in containers(deployment)} == {IMAGE}
    assert spec["flinkVersion"] == "v" + "_".join(load_pins()[0].split(".")[:2])
    assert spec["job"]["parallelism"] == 6 and conf["parallelism.default"] == "6"
    assert conf["taskmanager.numberOfTaskSlots"] == "3"
    assert spec["taskManager"]["resource"] == {"memory": "6144m", "cpu": 3.0}
    assert spec["jobManager"]["resource"]["memory"] == "2048m"
    # Every option of the job's own configuration, as jobs/params.py builds it, but the one holding secrets.
    job = flink_conf(cluster_settings(settings), NAME)
    assert "pipeline.global-job-parameters" not in conf
    assert {k: kubernetes.flink_value(v) for k, v in job.items() if k != "pipeline.global-job-parameters"}.items() \
        <= conf.items()
    assert conf["execution.checkpointing.interval"] == "30000 ms"
    assert conf["s3.endpoint"] == "https://s3.eu-west-1.amazonaws.com" and conf["s3.path.style.access"] == "false"
    assert conf["python.executable"] == conf["python.client.executable"] == kubernetes.IMAGE_PYTHON


@pytest.mark.setup  # renders the Flink configuration from the Flink environment's default config
@pytest.mark.parametrize("which", sorted(SETTINGS))
def test_checkpoints_savepoints_and_ha_metadata_live_in_the_lakes_bucket(which: str, tmp_path: Path) -> None:
    settings = SETTINGS[which](tmp_path)
    _, deployment = rendered(settings, savepoint="s3://risk-lake/ops/flink-state/savepoints/loan-risk/sp-1")
    conf = deployment["spec"]["flinkConfiguration"]
    root = f"s3://{settings.s3.bucket}/{settings.flink.checkpoint_prefix.strip('/')}"
    assert conf["execution.checkpointing.dir"] == f"{root}/checkpoints/{NAME}"
    assert conf["execution.checkpointing.savepoint-dir"] == f"{root}/savepoints/{NAME}"
    assert conf["high-availability.type"] == "kubernetes"
    assert conf["high-availability.storageDir"] == f"{root}/ha/{NAME}"
    assert conf["execution.checkpointing.externalized-checkpoint-retention"] == "RETAIN_ON_CANCELLATION"
    assert deployment["spec"]["job"]["upgradeMode"] == "savepoint"
    assert deployment["spec"]["job"]["initialSavepointPath"] == "s3://risk-lake/ops/flink-state/savepoints/loan-risk/sp-1"


@pytest.mark.setup  # renders the Flink configuration from the Flink environment's default config
def test_the_job_is_run_sql_over_the_risk_sql_with_the_file_the_init_container_writes(tmp_path: Path) -> None:
    from jobs.submit import ENTRY, RISK_SQL, risk_job_python_files
    from stack.jvm import load_pins
    config_map, deployment = rendered(default_settings(tmp_path))
    job, jm = deployment["spec"]["job"], deployment["spec"]["jobManager"]["podTemplate"]["spec"]
    assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    assert job["jarURI"] == f"local:///opt/flink/opt/flink-python-{load_pins()[0]}.jar"
    (init,) = jm["initContainers"]
    out = init["command"][init["command"].index("--out") + 1]
    image_path = lambda p: str(IMAGE_CODE_DIR / p.relative_to(REPO_ROOT))  # noqa: E731
    assert job["args"] == ["-py", image_path(ENTRY),
                           *[a for folder in RISK_SQL for a in ("--sql-dir", image_path(REPO_ROOT / "sql" / folder))],
                           "--params", out, "--name", NAME]
    assert deployment["spec"]["flinkConfiguration"]["python.files"].split(",") == \
        [image_path(p) for p in risk_job_python_files()]
    # The file is written where the main container mounts it, from the ConfigMap this manifest set holds.
    (main,) = jm["containers"]
    assert {m["mountPath"] for m in main["volumeMounts"] if m["name"] == "job-params"} == {str(Path(out).parent)}
    (template,) = [v for v in jm["volumes"] if "configMap" in v]
    assert template["configMap"]["name"] == config_map["metadata"]["name"]
    assert json.loads(config_map["data"]["params.json"]) == job_params(default_settings(tmp_path), NAME).as_dict()


@pytest.mark.setup  # renders the Flink configuration from the Flink environment's default config
@pytest.mark.parametrize("which", sorted(SETTINGS))
def test_every_secret_referenced_is_an_expected_one_and_every_expected_one_is_used(which: str, tmp_path: Path) -> None:
    settings = SETTINGS[which](tmp_path)
    config_map, deployment = rendered(settings)
    expected = {(ref.name, ref.key) for ref in expected_secrets(settings)}
    text = config_map["data"]["params.json"]
    placeholders = set(re.findall(r"@@secret:([^/@]+)/([^@]+)@@", text))
    env = {(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
           for c in containers(deployment) for e in c.get("env", []) if "valueFrom" in e}
    files = {ref for ref in expected_secrets(settings) if ref.mounted_on}
    assert placeholders | env | {(ref.name, ref.key) for ref in files} == expected
    pods = {role: deployment["spec"][role]["podTemplate"]["spec"] for role in ("jobManager", "taskManager")}
    for role, pod in pods.items():
        mounted = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        assert mounted <= {name for name, _ in expected}, role
    # The file secrets are where the job's parameters say the TaskManagers read them.
    params = json.loads(text)
    udf = json.loads(params["flink_conf"]["pipeline.global-job-parameters"])
    assert udf["pii.key_file"] == str(kubernetes.PII_SECRET.path)
    assert_mounted(pods["taskManager"], kubernetes.PII_SECRET)
    if which == "cluster-like":
        assert f"'properties.ssl.truststore.location' = '{kubernetes.KAFKA_CA_SECRET.path}'" in params["sql"]["kafka_security"]
        for pod in pods.values():
            assert_mounted(pod, kubernetes.KAFKA_CA_SECRET)


def assert_mounted(pod: dict[str, Any], ref: SecretRef) -> None:
    """``ref``'s Secret is a volume of ``pod`` mounted in its main container where ``ref.path`` lies."""
    (volume,) = [v["name"] for v in pod["volumes"] if v.get("secret", {}).get("secretName") == ref.name]
    (main,) = pod["containers"]
    (mount,) = [m for m in main["volumeMounts"] if m["name"] == volume]
    assert str(ref.path.parent) == mount["mountPath"] and mount["readOnly"] is True


@pytest.mark.setup  # renders the Flink configuration from the Flink environment's default config
@pytest.mark.parametrize("which", ["cluster-like", "pod-role"])
def test_no_secret_value_is_written_and_rendering_reads_or_generates_none(
        which: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from riskctl.commands import k8s as k8s_command
    settings = SETTINGS[which](tmp_path)
    monkeypatch.setattr(k8s_command, "get_settings", lambda: settings)
    out = tmp_path / "manifests"
    result = CliRunner().invoke(k8s_command.k8s, ["render", "--out", str(out), "--image", IMAGE])
    assert result.exit_code == 0, result.output
    written = sorted(out.iterdir())
    assert [f"wrote {path}" for path in written] == sorted(line for line in result.stdout.splitlines()
                                                           if line.startswith("wrote"))
    text = "".join(path.read_text() for path in written) + result.output
    for name, value in SECRET_VALUES.items():
        assert value not in text, f"the {name} secret reached a manifest or the command's output"
    assert not (tmp_path / "state" / "secrets").exists(), "rendering generated a secret"
    assert str(REPO_ROOT) not in text and str(tmp_path) not in text.replace(str(out), ""), "a local path reached a pod"
    objects = [yaml.safe_load(path.read_text()) for path in written]
    by_kind = lambda obj: obj["kind"]  # noqa: E731
    assert sorted(objects, key=by_kind) == sorted(manifests(settings, IMAGE, NAME), key=by_kind), \
        "the YAML does not read back as the objects rendered"
    for ref in expected_secrets(settings):
        assert ref.name in result.output
    account = of_kind(objects, "FlinkDeployment")["spec"]["serviceAccount"]
    assert f"Pods run as service account {account}," in result.output


@pytest.mark.setup  # renders the Flink configuration from the Flink environment's default config
def test_with_s3_keys_the_pods_sign_with_the_secrets_key_as_the_operator_charts_account(tmp_path: Path) -> None:
    objects = manifests(cluster_like_settings(tmp_path), IMAGE, NAME)
    assert [obj["kind"] for obj in objects] == ["ConfigMap", "FlinkDeployment"]
    deployment = of_kind(objects, "FlinkDeployment")
    assert deployment["spec"]["serviceAccount"] == kubernetes.SERVICE_ACCOUNT
    assert deployment["spec"]["flinkConfiguration"]["s3.aws.credentials.provider"] == \
        "com.amazonaws.auth.EnvironmentVariableCredentialsProvider"
    for container in [c for c in containers(deployment) if c["name"] == kubernetes.MAIN_CONTAINER]:
        assert {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {
            "name": kubernetes.S3_SECRET.name, "key": kubernetes.S3_SECRET.key}}} in container["env"]


@pytest.mark.setup  # renders the Flink configuration from the Flink environment's default config
def test_a_pod_role_deployment_reads_no_s3_key_secret_and_puts_no_key_in_a_pod(tmp_path: Path) -> None:
    settings = pod_role_settings(tmp_path)
    objects = manifests(settings, IMAGE, NAME)
    assert kubernetes.S3_SECRET not in expected_secrets(settings)
    text = json.dumps(objects)
    assert kubernetes.S3_SECRET.name not in text and settings.s3.access_key_id not in text
    # An access key in a pod's environment would come before the role in every client's credential chain.
    assert [e["name"] for c in containers(of_kind(objects, "FlinkDeployment")) for e in c.get("env", [])
            if e["name"].startswith("AWS_")] == []


@pytest.mark.setup  # renders the Flink configuration from the Flink environment's default config
def test_with_a_pod_role_every_s3_client_in_the_pods_takes_the_aws_credential_chain(tmp_path: Path) -> None:
    config_map, deployment = rendered(pod_role_settings(tmp_path))
    conf = deployment["spec"]["flinkConfiguration"]
    # Flink's S3 file system (checkpoints, savepoints, HA metadata), which Flink hands to S3A as fs.s3a.*.
    assert conf["s3.aws.credentials.provider"] == SDK_DEFAULT_CHAIN
    assert [key for key in conf if key.startswith("s3.") and ("key" in key or "token" in key)] == []
    params = json.loads(config_map["data"]["params.json"])
    # Iceberg's S3FileIO reads an empty key as none; the scorer's pyarrow file system is given none.
    sql = params["sql"]
    assert (sql["s3_access_key_id"], sql["s3_secret_access_key"], sql["s3_session_token"]) == ("", "", "")
    udf = json.loads(params["flink_conf"]["pipeline.global-job-parameters"])
    assert sorted(key for key in udf if key.startswith("s3.")) == ["s3.endpoint", "s3.region"]


def scorer_parameters_of(config_map: dict[str, Any]) -> dict[str, str]:
    """The scorer UDF's job parameters in the parameter ConfigMap."""
    return json.loads(json.loads(config_map["data"]["params.json"])["flink_conf"]["pipeline.global-job-parameters"])


@pytest.mark.setup  # renders the Flink configuration from the Flink environment's default config
@pytest.mark.parametrize("which", ["defaults", "cluster-like"])
def test_the_scorer_reads_the_registry_with_the_readers_secret_never_the_read_write_one(which: str,
                                                                                        tmp_path: Path) -> None:
    settings = SETTINGS[which](tmp_path)
    assert kubernetes.S3_READER_SECRET in expected_secrets(settings)
    config_map, _ = rendered(settings)
    udf = scorer_parameters_of(config_map)
    readers = settings.s3.for_readers()
    assert (udf["s3.endpoint"], udf["s3.access_key_id"]) == (readers.url, settings.s3.reader.access_key_id)
    assert udf["s3.secret_access_key"] == kubernetes.S3_READER_SECRET.placeholder and "s3.session_token" not in udf
    assert kubernetes.S3_SECRET.placeholder in config_map["data"]["params.json"], "the lake keeps the read-write key"


@pytest.mark.setup  # renders the Flink configuration from the Flink environment's default config
def test_with_a_pod_role_and_a_readers_key_only_the_scorer_signs_with_a_key(tmp_path: Path) -> None:
    """The pod role writes the lake; on one pod the scorer can be kept from writing only by a key of its own."""
    settings = override(pod_role_settings(tmp_path),
                        s3={"reader": {"access_key_id": "AKIARISKREADER", "secret_access_key": SECRET_VALUES["s3 reader"]}})
    assert [ref for ref in expected_secrets(settings) if ref.name.startswith("loanrisk-s3")] == \
        [kubernetes.S3_READER_SECRET]
    config_map, deployment = rendered(settings)
    assert scorer_parameters_of(config_map)["s3.secret_access_key"] == kubernetes.S3_READER_SECRET.placeholder
    assert deployment["spec"]["flinkConfiguration"]["s3.aws.credentials.provider"] == SDK_DEFAULT_CHAIN
    assert SECRET_VALUES["s3 reader"] not in json.dumps(manifests(settings, IMAGE, NAME))


@pytest.mark.setup  # renders the Flink configuration from the Flink environment's default config
def test_a_pod_role_runs_under_the_service_account_the_render_writes_annotated_with_the_role(tmp_path: Path) -> None:
    objects = manifests(pod_role_settings(tmp_path), IMAGE, NAME)
    assert [obj["kind"] for obj in objects] == ["ServiceAccount", "Role", "RoleBinding", "ConfigMap", "FlinkDeployment"]
    account, role, binding = objects[:3]
    assert [obj["apiVersion"] for obj in objects[:3]] == ["v1", "rbac.authorization.k8s.io/v1",
                                                          "rbac.authorization.k8s.io/v1"]
    assert of_kind(objects, "FlinkDeployment")["spec"]["serviceAccount"] == account["metadata"]["name"] == NAME
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE_ARN}
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME}]
    # What the JobManager does as this account: start and stop its TaskManager pods, keep HA state in ConfigMaps.
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert {("", resource, verb) for resource in ("pods", "configmaps")
            for verb in ("get", "list", "watch", "create", "update", "delete")} <= granted


@pytest.mark.setup  # renders the Flink configuration from the Flink environment's default config
def test_a_pod_role_without_a_role_arn_gets_a_service_account_without_the_annotation(tmp_path: Path) -> None:
    settings = override(pod_role_settings(tmp_path), kubernetes={"role_arn": None})
    account = of_kind(manifests(settings, IMAGE, NAME), "ServiceAccount")
    assert account["metadata"]["name"] == NAME and "annotations" not in account["metadata"]


@pytest.mark.setup  # renders the Flink configuration from the Flink environment's default config
@pytest.mark.parametrize("which", ["cluster-like", "pod-role"])
def test_a_service_account_of_the_users_is_named_and_not_written(which: str, tmp_path: Path) -> None:
    settings = override(SETTINGS[which](tmp_path), kubernetes={"service_account": "risk-job", "role_arn": None})
    objects = manifests(settings, IMAGE, NAME)
    assert [obj["kind"] for obj in objects] == ["ConfigMap", "FlinkDeployment"]
    assert of_kind(objects, "FlinkDeployment")["spec"]["serviceAccount"] == "risk-job"


@pytest.mark.parametrize(("which", "kubernetes_settings", "fix"), [
    ("cluster-like", {"role_arn": ROLE_ARN}, "unset s3.secret_access_key and s3.secret_access_key_file"),
    ("defaults", {"role_arn": ROLE_ARN}, "set s3.endpoint"),
    ("pod-role", {"service_account": "risk-job"},
     f"kubectl annotate serviceaccount risk-job eks.amazonaws.com/role-arn={ROLE_ARN}")])
def test_a_role_arn_that_could_not_take_effect_is_one_line_with_the_fix(
        which: str, kubernetes_settings: dict[str, str], fix: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from riskctl.commands import k8s as k8s_command
    settings = override(SETTINGS[which](tmp_path), kubernetes=kubernetes_settings)
    monkeypatch.setattr(k8s_command, "get_settings", lambda: settings)
    result = CliRunner().invoke(k8s_command.k8s, ["render", "--out", str(tmp_path / "manifests"), "--image", IMAGE])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(lines) == 1 and fix in lines[0], result.output
    assert not (tmp_path / "manifests").exists()


@pytest.mark.parametrize(("setting", "value"), [
    ("role_arn", "loan-risk-flink"), ("role_arn", "arn:aws:iam::1234:role/loan-risk-flink"),
    ("role_arn", "arn:aws:iam::123456789012:user/loan-risk"), ("service_account", "Risk_Job")])
def test_a_malformed_role_arn_or_service_account_is_refused_by_the_settings(setting: str, value: str) -> None:
    with pytest.raises(ValidationError, match=setting):
        override(Settings(), kubernetes={setting: value})


@pytest.mark.setup  # renders the Flink configuration from the Flink environment's default config
def test_a_changed_parameter_changes_the_deployment_so_the_operator_upgrades_the_job(tmp_path: Path) -> None:
    def digest(settings: Settings) -> str:
        _, deployment = rendered(settings)
        return str(deployment["spec"]["jobManager"]["podTemplate"]["metadata"]["annotations"]["loanrisk/params-sha256"])
    base = default_settings(tmp_path)
    assert digest(base) == digest(base)
    assert digest(override(base, model={"alert_threshold": 0.3})) != digest(base)


def write_secret_files(secrets_dir: Path, values: dict[SecretRef, str]) -> None:
    """Each value where Kubernetes mounts its Secret's key (with the newline `kubectl create secret` keeps)."""
    for ref, value in values.items():
        (secrets_dir / ref.name).mkdir(parents=True, exist_ok=True)
        (secrets_dir / ref.name / ref.key).write_text(value + "\n")


def fill(template: dict[str, Any], tmp_path: Path, values: dict[SecretRef, str]) -> tuple[int, Path]:
    """Run the init container's step on ``template`` with ``values`` mounted; (exit code, output file)."""
    secrets_dir, source, out = tmp_path / "secrets", tmp_path / "template.json", tmp_path / "params.json"
    write_secret_files(secrets_dir, values)
    source.write_text(json.dumps(template))
    return kubernetes.main(["--template", str(source), "--secrets-dir", str(secrets_dir), "--out", str(out)]), out


def test_the_init_container_fills_in_the_parameters_the_builders_would_build_with_the_secrets(tmp_path: Path) -> None:
    from jobs.params import risk_job_params
    settings = cluster_like_settings(tmp_path)
    by_ref = {kubernetes.POSTGRES_SECRET: SECRET_VALUES["postgres"], kubernetes.S3_SECRET: SECRET_VALUES["s3"],
              kubernetes.S3_READER_SECRET: SECRET_VALUES["s3 reader"], kubernetes.PII_SECRET: SECRET_VALUES["pii"],
              kubernetes.KAFKA_SASL_SECRET: SECRET_VALUES["kafka"]}
    code, out = fill(job_params(settings, NAME).as_dict(), tmp_path, by_ref)
    assert code == 0
    assert json.loads(out.read_text()) == risk_job_params(cluster_settings(settings, by_ref.__getitem__), NAME).as_dict()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_the_init_container_refuses_a_secret_it_cannot_carry_and_never_echoes_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = job_params(default_settings(tmp_path), NAME).as_dict()
    quoted = "it's-a-secret"
    code, out = fill(template, tmp_path, {kubernetes.POSTGRES_SECRET: quoted, kubernetes.S3_SECRET: "fine-value"})
    err = capsys.readouterr().err
    assert code == 2 and not out.exists() and quoted not in err
    assert err.count("\n") == 1 and "Secret loanrisk-postgres, key password" in err and "quote" in err


def test_a_secret_that_is_not_mounted_is_named_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = job_params(default_settings(tmp_path), NAME).as_dict()
    code, _ = fill(template, tmp_path, {kubernetes.POSTGRES_SECRET: "fine-value"})
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "secrets/loanrisk-s3/secret-access-key" in err and "create Secret loanrisk-s3 with key secret-access-key" in err


def test_the_image_holds_the_code_and_the_python_the_deployment_runs() -> None:
    from jobs.submit import risk_job_python_files
    dockerfile = (REPO_ROOT / "docker" / "flink.Dockerfile").read_text()
    for top in sorted({p.relative_to(REPO_ROOT).parts[0] for p in risk_job_python_files()} | {"sql"}):
        assert f"COPY {top} {IMAGE_CODE_DIR}/{top}" in dockerfile, f"the image lacks {top}/"
    assert f"python3 -m venv {Path(kubernetes.IMAGE_PYTHON).parent.parent}" in dockerfile
    assert "plugins/s3-fs-hadoop" in dockerfile, "checkpoints, savepoints and HA metadata need the S3 file system"


@pytest.mark.parametrize("image", ["loanrisk/flink", "loanrisk/flink:latest", "Loan Risk:1", "loanrisk/flink:"])
def test_an_image_without_a_usable_tag_is_one_clear_line(image: str) -> None:
    from riskctl.commands.k8s import k8s
    result = CliRunner().invoke(k8s, ["render", "--image", image])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(lines) == 1 and "REPOSITORY:TAG" in lines[0], result.output


def test_loopback_endpoints_are_named_because_pods_cannot_reach_them(tmp_path: Path) -> None:
    assert [line.split(" is ")[0] for line in kubernetes.unreachable_endpoints(default_settings(tmp_path))] == \
        ["kafka.bootstrap_servers", "postgres.host", "s3.endpoint", "s3.reader.endpoint"]
    assert kubernetes.unreachable_endpoints(cluster_like_settings(tmp_path)) == []
