"""Watermark heartbeats: their shape (contracts/heartbeat.py), the job's filter, and the producer's closing round."""

from __future__ import annotations

import re
import threading
from dataclasses import replace

import pytest
from click.testing import CliRunner

from contracts.heartbeat import (HEARTBEAT_CHARS, HEARTBEAT_KEY, HEARTBEAT_PATTERN, SKEW_ALLOWANCE_MS,
                                 closing_time_ms, encode_heartbeat, heartbeat_condition, is_heartbeat,
                                 within_tolerance)
from ingestion.anomalies import REALISTIC
from ingestion.generator import GeneratorConfig, generate
from ingestion.lendingclub import ReplayConfig, replay
from ingestion.producer import Heartbeats, NullEventProducer, heartbeats_for, produce_events
from ingestion.timeutil import MS_PER_DAY, iso_ms, parse_instant
from ingestion.wire import ProducedEvent
from jobs.sqlfiles import load
from loanrisk.settings import REPO_ROOT, FlinkSettings, Settings
from riskctl.commands.produce import produce

FLINK = FlinkSettings(window_minutes=1440, behaviour_window_days=30, watermark_delay_s=300, future_tolerance_s=300)
TOPICS = ("loan-applications", "transactions", "repayments")
WALL_NOW_MS = parse_instant("2026-01-01T00:00:00Z")


class PartitionRecorder(NullEventProducer):
    """The null producer with two partitions per topic, recording every message it is handed, in order."""

    def __init__(self) -> None:
        super().__init__(max_message_bytes=1 << 20, partitions_per_topic=2)
        self.sent: list[tuple[str, str | None, bytes, int | None, int | None]] = []

    def _send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None,
              timestamp_ms: int | None = None) -> None:
        self.sent.append((topic, key.decode() if key else None, value, partition, timestamp_ms))
        super()._send(topic, key, value, partition, timestamp_ms)

    def heartbeats(self) -> list[tuple[str, str | None, bytes, int | None, int | None]]:
        """The heartbeat messages among those sent."""
        return [m for m in self.sent if is_heartbeat(m[2])]


def recorder_heartbeats(recorder: PartitionRecorder, wall_now_ms: int = WALL_NOW_MS) -> Heartbeats:
    """Heartbeats to the three input topics through ``recorder``, timed by FLINK, at a fixed wall clock."""
    return Heartbeats(recorder, TOPICS, FLINK, wall_clock=lambda: wall_now_ms / 1000)


def window_end(t_ms: int, length_ms: int) -> int:
    """End of the epoch-aligned tumbling window of ``length_ms`` holding ``t_ms``."""
    return (t_ms // length_ms + 1) * length_ms


# -- the shape ------------------------------------------------------------------------------------
def test_a_heartbeat_is_one_fixed_shape_that_carries_only_an_event_time() -> None:
    beat = encode_heartbeat(parse_instant("2019-03-01T00:05:00Z"))
    assert beat == b'{"heartbeat":true,"event_time":"2019-03-01T00:05:00.000Z"}'
    assert len(beat) == HEARTBEAT_CHARS and is_heartbeat(beat) and is_heartbeat(beat.decode())
    assert not is_heartbeat(None) and not is_heartbeat(b"") and not is_heartbeat(beat + b"\n")
    with pytest.raises(ValueError, match="1970-9999"):
        encode_heartbeat(-1)


def test_no_event_any_source_sends_is_taken_for_a_heartbeat() -> None:
    """Generated events with every anomaly (malformed ones included) all reach validation."""
    messages = list(generate(GeneratorConfig(seed=5, customers=30, spend_txn_per_month=2,
                                             anomalies=replace(REALISTIC, malformed=0.2))))
    assert messages and not any(is_heartbeat(m.value_bytes) for m in messages)


def test_the_risk_job_drops_heartbeats_in_each_validation_view_before_parsing() -> None:
    from jobs.params import sql_params
    views = {s.text.split()[3]: s.text for s in load(REPO_ROOT / "sql" / "risk", sql_params(Settings()))
             if s.text.startswith("CREATE TEMPORARY VIEW checked_")}
    assert set(views) == {"checked_loan_applications", "checked_transactions", "checked_repayments"}
    condition = heartbeat_condition("payload")
    for name, text in views.items():
        assert f"WHERE NOT {condition}" in text, name
    literal = re.search(r"REGEXP\(payload, '((?:[^']|'')*)'\)", condition).group(1).replace("''", "'")
    assert literal == HEARTBEAT_PATTERN and f"CHAR_LENGTH(payload) = {HEARTBEAT_CHARS}" in condition


# -- the event time rule --------------------------------------------------------------------------
@pytest.mark.parametrize("risk_minutes", [1, 1440, 7])
@pytest.mark.parametrize("last", ["2019-01-31T23:59:59.999Z", "2019-01-30T00:00:00.000Z", "2019-02-14T12:34:56.789Z"])
def test_the_closing_time_closes_the_behaviour_window_of_the_last_event_and_the_risk_window_of_its_rescores(
        risk_minutes: int, last: str) -> None:
    """A window closes when the watermark (heartbeat time - delay) reaches its end - 1 ms."""
    behaviour_ms, risk_ms, delay_ms = 30 * MS_PER_DAY, risk_minutes * 60_000, 300_000
    last_ms = parse_instant(last)
    watermark = closing_time_ms(last_ms, (behaviour_ms, risk_ms), delay_ms) - delay_ms
    payload_ms = last_ms + SKEW_ALLOWANCE_MS  # the latest a skewed payload of that event may say
    behaviour_end = window_end(payload_ms, behaviour_ms)
    assert watermark >= behaviour_end - 1
    assert watermark >= window_end(payload_ms, risk_ms) - 1                  # its application score
    assert watermark >= window_end(behaviour_end - 1, risk_ms) - 1           # the re-scores at that window's end


def test_a_heartbeat_later_than_the_future_tolerance_is_cut_to_it() -> None:
    assert within_tolerance(1_000, 5_000, 300) == (1_000, False)
    assert within_tolerance(5_300, 5_000, 300) == (5_300, False)
    assert within_tolerance(5_301, 5_000, 300) == (5_300, True)


# -- the producer ---------------------------------------------------------------------------------
def test_a_replay_ends_with_one_heartbeat_per_partition_after_every_event_at_the_closing_time() -> None:
    events = list(replay(ReplayConfig(seed=2018, limit=3, anomalies=REALISTIC)))
    recorder = PartitionRecorder()
    summary = produce_events(iter(events), recorder, heartbeats=recorder_heartbeats(recorder))
    last_valid = max(e.event_time_ms for e in events if e.expected_reason is None)
    want_ms = last_valid + SKEW_ALLOWANCE_MS + 30 * MS_PER_DAY + MS_PER_DAY + 300_000
    beats = recorder.heartbeats()
    assert recorder.sent[:len(events)] == [(e.topic, e.key, e.value_bytes, None, None) for e in events]
    assert recorder.sent[len(events):] == beats
    assert sorted((topic, partition) for topic, _, _, partition, _ in beats) == \
        sorted((t, p) for t in TOPICS for p in (0, 1))
    assert {(key, value, stamp) for _, key, value, _, stamp in beats} == \
        {(HEARTBEAT_KEY, encode_heartbeat(want_ms), WALL_NOW_MS)}
    assert summary.handed == summary.delivered == len(events) and summary.last_event_ms == last_valid
    assert summary.heartbeat is not None and (summary.heartbeat.messages, summary.heartbeat.capped) == (6, False)
    assert f"heartbeats=6 at {iso_ms(want_ms)}" in summary.line()


def test_malformed_messages_do_not_push_the_closing_time() -> None:
    """A dead-lettered copy (here one dated 2099) is in no window: the heartbeat follows the valid events."""
    t = parse_instant("2019-01-10T00:00:00Z")
    valid = ProducedEvent("transactions", "c1", b"{}", "e1", "transaction", t)
    broken = ProducedEvent("transactions", "c1", b"{}", "bad-1", "transaction", t + 5 * MS_PER_DAY,
                           "malformed:far_future", "future_event_time")
    recorder = PartitionRecorder()
    summary = produce_events(iter([valid, broken]), recorder, heartbeats=recorder_heartbeats(recorder))
    assert summary.last_event_ms == t
    assert summary.heartbeat is not None
    assert summary.heartbeat.event_time_ms == closing_time_ms(t, (30 * MS_PER_DAY, MS_PER_DAY), 300_000)


def test_a_closing_time_past_the_tolerance_is_cut_to_the_kafka_timestamp_plus_the_tolerance() -> None:
    t = WALL_NOW_MS - 60_000  # a live stream: its windows end after now
    recorder = PartitionRecorder()
    summary = produce_events(iter([ProducedEvent("transactions", "c1", b"{}", "e1", "transaction", t)]), recorder,
                             heartbeats=recorder_heartbeats(recorder))
    assert summary.heartbeat is not None and summary.heartbeat.capped
    assert summary.heartbeat.event_time_ms == WALL_NOW_MS + 300_000
    assert {value for _, _, value, _, _ in recorder.heartbeats()} == {encode_heartbeat(WALL_NOW_MS + 300_000)}
    assert "cut to now + flink.future_tolerance_s" in summary.line()


def test_nothing_sent_means_no_heartbeat_and_without_heartbeats_none_is_sent() -> None:
    recorder = PartitionRecorder()
    assert produce_events(iter([]), recorder, heartbeats=recorder_heartbeats(recorder)).heartbeat is None
    events = list(replay(ReplayConfig(seed=2018, limit=1)))
    produce_events(iter(events), recorder)
    assert len(recorder.sent) == len(events) and not recorder.heartbeats()


def test_later_rounds_are_each_a_millisecond_later_and_keep_coming_until_stopped() -> None:
    recorder = PartitionRecorder()
    heartbeats = recorder_heartbeats(recorder)
    with pytest.raises(ValueError, match="close"):
        heartbeats.again()
    first = heartbeats.close(parse_instant("2019-01-10T00:00:00Z"))
    assert heartbeats.again().event_time_ms == first.event_time_ms + 1
    stop = threading.Event()
    thread = heartbeats.keep_sending(stop, every_s=0.01)
    while heartbeats.sent < 6 * 5:
        stop.wait(0.01)
    stop.set()
    thread.join(timeout=5)
    rounds = sorted({value for _, _, value, _, _ in recorder.heartbeats()})
    assert len(rounds) >= 5 and rounds[0] == encode_heartbeat(first.event_time_ms)
    assert not thread.is_alive() and heartbeats.sent == len(recorder.heartbeats())


def test_heartbeats_for_the_platform_go_to_its_three_input_topics_timed_by_its_flink_settings() -> None:
    settings = Settings()
    heartbeats = heartbeats_for(NullEventProducer(1 << 20), settings)
    t = settings.kafka.topics
    assert heartbeats.topics == (t.applications, t.transactions, t.repayments)
    assert heartbeats.window_lengths_ms == (settings.flink.behaviour_window_days * MS_PER_DAY,
                                            settings.flink.window_minutes * 60_000)


# -- the command ----------------------------------------------------------------------------------
def test_produce_ends_with_heartbeats_unless_told_not_to() -> None:
    args = ["--source", "lendingclub", "--loans", "2", "--rate", "0", "--seed", "2018", "--dry-run"]
    with_beats = CliRunner().invoke(produce, args)
    assert with_beats.exit_code == 0, with_beats.output
    assert re.search(r"sent=\d+ failed=0 .* heartbeats=3 at \d{4}-\d\d-\d\dT", with_beats.output), with_beats.output
    without = CliRunner().invoke(produce, [*args, "--no-heartbeat"])
    assert without.exit_code == 0 and "heartbeats=" not in without.output, without.output


@pytest.mark.parametrize("args, message", [(["--heartbeat-for", "-1"], "--heartbeat-for must be >= 0"),
                                           (["--heartbeat-for", "5", "--no-heartbeat"], "drop --no-heartbeat")])
def test_produce_refuses_contradictory_heartbeat_options_in_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(produce, ["--count", "5", "--dry-run", *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
