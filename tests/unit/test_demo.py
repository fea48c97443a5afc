"""`riskctl demo` without a stack: its replay ends with heartbeats, and rounds keep coming while it watches."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from contracts.heartbeat import HEARTBEAT_KEY, is_heartbeat
from ingestion.producer import NullEventProducer
from loanrisk.settings import Settings
from riskctl.commands import demo as demo_module
from jobs.params import RISK_JOB_NAME


class Recorder(NullEventProducer):
    """Two partitions per topic; remembers the heartbeats it is handed."""

    def __init__(self) -> None:
        super().__init__(max_message_bytes=1 << 20, partitions_per_topic=2)
        self.beats: list[tuple[str, int | None, bytes]] = []
        self.closed = False

    def _send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None,
              timestamp_ms: int | None = None) -> None:
        if key == HEARTBEAT_KEY.encode():
            assert is_heartbeat(value)
            self.beats.append((topic, partition, value))
        super()._send(topic, key, value, partition, timestamp_ms)

    def close(self, timeout_s: float = 30.0) -> None:
        self.closed = True


def test_the_demo_ends_its_replay_with_heartbeats_and_sends_rounds_while_it_watches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    ticks: list[int] = []
    monkeypatch.setattr(demo_module, "ensure_champion", lambda settings, say=None: "v0001")
    monkeypatch.setattr("stack.flink_client.list_jobs", lambda settings: [{"name": RISK_JOB_NAME, "state": "RUNNING",
                                                                           "jid": "j1"}])
    monkeypatch.setattr("ingestion.producer.make_producer", lambda *a, **k: recorder)
    monkeypatch.setattr(demo_module, "kafka_counts", lambda settings: {"t": 0})
    monkeypatch.setattr(demo_module, "lake_counts", lambda settings: dict.fromkeys(demo_module.LAKE_TABLES, 0))
    monkeypatch.setattr(demo_module, "REFRESH_S", 2.5)
    monkeypatch.setattr(demo_module, "serving_summary",
                        lambda settings: ticks.append(len(recorder.beats)) or {"alerts": 0, "window": "-"})
    result = CliRunner().invoke(demo_module.demo, ["--loans", "2", "--rate", "0", "--watch", "2"])
    assert result.exit_code == 0, result.output
    assert "heartbeats=6 at" in result.output and "a heartbeat round every 2 s" in result.output
    assert len(ticks) == 2 and ticks[0] >= 6 and ticks[1] > ticks[0], "rounds kept coming while the table ran"
    assert sorted({(t, p) for t, p, _ in recorder.beats}) == sorted(
        (t, p) for t in ("loan-applications", "transactions", "repayments") for p in (0, 1))
    assert recorder.closed


def test_the_demo_uses_a_one_day_risk_window_unless_one_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOANRISK_FLINK__WINDOW_MINUTES", raising=False)
    assert demo_module.demo_settings(Settings()).flink.window_minutes == 1440
    monkeypatch.setenv("LOANRISK_FLINK__WINDOW_MINUTES", "15")
    assert demo_module.demo_settings(Settings()).flink.window_minutes == 15
