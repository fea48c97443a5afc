"""The local stack's alerting configuration: rules as Prometheus loads them, Alertmanager's route and receiver."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from loanrisk.settings import Settings
from stack.services.alertmanager import Alertmanager
from stack.services.prometheus import RULES, Prometheus, capped_rules, duration_s


def test_durations_parse_as_prometheus_writes_them() -> None:
    assert [duration_s(d) for d in ("15s", "2m", "1h30m", "1d")] == [15, 120, 5400, 86_400]
    for bad in ("2", "2x", "m", "2m junk"):
        with pytest.raises(ValueError):
            duration_s(bad)


def test_capping_shortens_only_longer_pendings_and_keeps_every_expression() -> None:
    rules = yaml.safe_load(RULES.read_text())
    assert capped_rules(rules, None) == rules
    capped = capped_rules(rules, 150)
    for group, new in zip(rules["groups"], capped["groups"], strict=True):
        for rule, after in zip(group["rules"], new["rules"], strict=True):
            assert after["expr"] == rule["expr"] and after["alert"] == rule["alert"]
            if "for" not in rule:
                assert "for" not in after
            else:
                assert after["for"] == (rule["for"] if duration_s(rule["for"]) <= 150 else "150s")
    fors = [r.get("for") for g in capped["groups"] for r in g["rules"]]
    assert "150s" in fors and "2m" in fors, "the rules no longer have both a shorter and a longer pending"


def _settings(tmp_path: Path, **alerting: object) -> Settings:
    return Settings(stack={"state_dir": tmp_path}, alerting=alerting)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)")
def test_prometheus_loads_the_capped_rules_and_sends_alerts_to_the_stacks_alertmanager(tmp_path: Path) -> None:
    settings = _settings(tmp_path, rule_for_max_s=5, port=19_095)
    prom = Prometheus(settings)
    prom.prepare()
    config = yaml.safe_load((prom.home / "prometheus.yml").read_text())
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19095"]
    [rules] = config["rule_files"]
    written = yaml.safe_load(Path(rules).read_text())
    assert {r["for"] for g in written["groups"] for r in g["rules"] if "for" in r} == {"5s"}
    proc = subprocess.run(["promtool", "check", "config", str(prom.home / "prometheus.yml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool not installed (apt-get install prometheus-alertmanager)")
@pytest.mark.parametrize("webhook", ["http://127.0.0.1:1/alerts?token=t0ken", None])
def test_alertmanager_config_is_valid_private_and_routes_to_the_configured_webhook(tmp_path: Path,
                                                                                     webhook: str | None) -> None:
    settings = _settings(tmp_path, webhook_url=webhook, group_wait_s=1, group_interval_s=5)
    am = Alertmanager(settings)
    am.prepare()
    path = am.home / "alertmanager.yml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = yaml.safe_load(path.read_text())
    assert config["route"]["group_wait"] == "1s" and config["route"]["group_interval"] == "5s"
    [receiver] = config["receivers"]
    assert receiver["name"] == config["route"]["receiver"]
    assert receiver.get("webhook_configs") == ([{"url": webhook, "send_resolved": True}] if webhook else None)
    proc = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alertmanager_listens_on_loopback_only_and_gossips_nowhere(tmp_path: Path) -> None:
    if shutil.which("prometheus-alertmanager") is None and shutil.which("alertmanager") is None:
        pytest.skip("alertmanager not installed (apt-get install prometheus-alertmanager)")
    command = Alertmanager(_settings(tmp_path, port=19_095)).command()
    assert "--web.listen-address=127.0.0.1:19095" in command and "--cluster.listen-address=" in command


def test_the_webhook_url_is_read_from_its_file(tmp_path: Path) -> None:
    (tmp_path / "hook").write_text("https://hooks.example/T0ken\n")
    assert _settings(tmp_path, webhook_url_file=tmp_path / "hook").alerting.webhook() == "https://hooks.example/T0ken"
    assert _settings(tmp_path).alerting.webhook() is None


def _firing(alert: str, topic: str, summary: str, description: str) -> list[dict[str, object]]:
    """promtool's expectation of ``alert`` firing once, for ``topic``, with the annotations every rule carries."""
    return [{"exp_labels": {"severity": "critical", "topic": topic},
             "exp_annotations": {"summary": summary, "description": description,
                                 "runbook": f"docs/RUNBOOK.md#{alert.lower()}"}}]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)")
def test_the_kafka_retention_alerts_fire_at_half_the_retention_and_on_any_record_deleted_unread(tmp_path: Path) -> None:
    """`promtool test rules` on the rules as shipped: the oldest unread record of a topic with a week's retention
    passes 3.5 days at minute 40 (the alert holds 5 minutes), and 12 records of another are deleted unread at
    minute 10."""
    week = 7 * 86_400
    age = 'loanrisk_kafka_oldest_unread_age_seconds{group="g", topic="transactions", partition="0"}'
    tests = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": age, "values": f"{week // 2 - 2400}+60x60"},
            {"series": 'loanrisk_kafka_retention_seconds{topic="transactions"}', "values": f"{week}x60"},
            {"series": 'loanrisk_kafka_unread_deleted{group="g", topic="repayments", partition="1"}',
             "values": "0x9 12x20"}],
        "alert_rule_test": [
            {"eval_time": "30m", "alertname": "LoanRiskBacklogNearRetention", "exp_alerts": []},
            {"eval_time": "44m", "alertname": "LoanRiskBacklogNearRetention", "exp_alerts": []},
            {"eval_time": "50m", "alertname": "LoanRiskBacklogNearRetention", "exp_alerts": _firing(
                "LoanRiskBacklogNearRetention", "transactions",
                "Unread records of transactions are past half the topic's retention",
                "The oldest record of transactions the risk job has not committed is 3d 12h 10m 0s old; at the "
                "topic's retention the broker deletes it unread.")},
            {"eval_time": "9m", "alertname": "LoanRiskUnreadRecordsDeleted", "exp_alerts": []},
            {"eval_time": "10m", "alertname": "LoanRiskUnreadRecordsDeleted", "exp_alerts": _firing(
                "LoanRiskUnreadRecordsDeleted", "repayments",
                "Records of repayments were deleted before the risk job read them",
                "12 records past the risk job's last commit on repayments were deleted by the topic's retention; the "
                "job will start at the log start and never read them.")}]}]}
    path = tmp_path / "retention-alerts.test.yml"
    path.write_text(yaml.safe_dump(tests))
    proc = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
