"""Every Kafka client of the platform logs in as the settings say: its configuration comes from one place.

Python clients start from ``KafkaSettings.client_config`` (librdkafka; kafka-python translates it), the Flink job's
Kafka tables from ``KafkaSettings.java_properties`` (``${kafka_security}`` in sql/). A configuration built from a
bootstrap address alone would connect without logging in, so this test fails when a module builds one; the
stack's own administration of the local broker (``stack.services.kafka.admin_config``) is the one exception.
The running stack's side of the same promise: tests/stack/test_security.py.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from loanrisk.settings import REPO_ROOT, KafkaSettings, Settings

# Where a client configuration may name its bootstrap servers itself: the platform's, and the stack's admin one.
BUILDERS = {"loanrisk/settings.py": "client_config", "stack/services/kafka.py": "admin_config"}
# Clients made on purpose without the platform's login (strangers the broker must refuse).
REFUSED_ON_PURPOSE = {"tests/stack/test_security.py"}
SKIPPED_FOLDERS = {".venv", ".loanrisk", ".git", "node_modules"}


def python_files() -> list[Path]:
    return [p for p in REPO_ROOT.rglob("*.py") if not SKIPPED_FOLDERS & set(p.relative_to(REPO_ROOT).parts)]


class _HandBuilt(ast.NodeVisitor):
    """Finds ``{"bootstrap.servers": ...}``, ``conf["bootstrap.servers"] = ...`` and ``bootstrap_servers=`` keywords
    of kafka-python's clients, each with the function it is in."""

    def __init__(self) -> None:
        self.function = "<module>"
        self.found: list[tuple[int, str]] = []

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        outer, self.function = self.function, node.name
        self.generic_visit(node)
        self.function = outer

    def visit_Dict(self, node: ast.Dict) -> None:
        if any(isinstance(k, ast.Constant) and k.value == "bootstrap.servers" for k in node.keys):
            self.found.append((node.lineno, self.function))
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if (isinstance(node.ctx, ast.Store) and isinstance(node.slice, ast.Constant)
                and node.slice.value == "bootstrap.servers"):
            self.found.append((node.lineno, self.function))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in {"KafkaProducer", "KafkaConsumer", "KafkaAdminClient"} and any(
                kw.arg == "bootstrap_servers" for kw in node.keywords):
            self.found.append((node.lineno, self.function))
        self.generic_visit(node)


def test_no_module_builds_a_kafka_client_configuration_from_a_bootstrap_address_alone() -> None:
    hand_built = []
    for path in python_files():
        rel = path.relative_to(REPO_ROOT).as_posix()
        if rel in REFUSED_ON_PURPOSE or rel.startswith("tests/unit/"):
            continue
        visitor = _HandBuilt()
        visitor.visit(ast.parse(path.read_text(), filename=rel))
        hand_built += [f"{rel}:{line} ({function})" for line, function in visitor.found
                       if BUILDERS.get(rel) != function]
    assert not hand_built, ("Kafka clients configured by hand (they would not log in): start from "
                            f"KafkaSettings.client_config() instead: {hand_built}")


def test_only_the_stack_uses_the_brokers_admin_listener() -> None:
    users = sorted(p.relative_to(REPO_ROOT).as_posix() for p in python_files()
                   if re.search(r"\badmin_config\b|\badmin_bootstrap\b", p.read_text()))
    assert all(u.startswith(("stack/", "tests/", "loanrisk/settings.py", "riskctl/commands/compose.py"))
               for u in users), users


def test_every_kafka_table_of_every_sql_job_logs_in() -> None:
    for path in sorted((REPO_ROOT / "sql").rglob("*.sql")):
        text = path.read_text()
        tables = text.count("'properties.bootstrap.servers'")
        assert text.count("${kafka_security}") == tables, f"{path.name}: a Kafka table without ${{kafka_security}}"


def test_the_platform_logs_in_with_scram_by_default_and_the_job_the_same_way(tmp_path: Path) -> None:
    k = Settings(stack={"state_dir": tmp_path}).kafka
    conf = k.client_config()
    assert (conf["security.protocol"], conf["sasl.mechanism"], conf["sasl.username"]) == \
        ("SASL_PLAINTEXT", "SCRAM-SHA-512", "loanrisk")
    assert conf["sasl.password"] == (tmp_path / "secrets" / "kafka-loanrisk").read_text().strip()
    props = k.java_properties()
    assert props["security.protocol"] == "SASL_PLAINTEXT" and props["sasl.mechanism"] == "SCRAM-SHA-512"
    assert f'username="loanrisk" password="{conf["sasl.password"]}";' in props["sasl.jaas.config"]
    assert k.admin_bootstrap != k.bootstrap


def test_sasl_settings_apply_to_the_sasl_protocols_only(tmp_path: Path) -> None:
    tls = KafkaSettings(bootstrap_servers="b1:9093", security_protocol="SSL", ssl_cafile=tmp_path / "ca.pem")
    assert not any(key.startswith("sasl.") for key in [*tls.client_config(), *tls.java_properties()])
    plain = KafkaSettings(security_protocol="PLAINTEXT", generated_secrets_dir=tmp_path / "secrets")
    assert plain.client_config() == {"bootstrap.servers": plain.bootstrap} and plain.java_properties() == {}
    assert not (tmp_path / "secrets").exists(), "no login: no password to make"


def test_a_sasl_cluster_without_a_password_is_one_clear_error() -> None:
    from loanrisk.errors import ConfigError
    with pytest.raises(ConfigError, match="LOANRISK_KAFKA__SASL_PASSWORD_FILE"):
        KafkaSettings(bootstrap_servers="b1.example:9093", security_protocol="SASL_SSL").client_config()
