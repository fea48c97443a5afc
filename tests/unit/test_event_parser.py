"""The Java parse_event function (jvm/functions) gives the reason contracts/validate.py gives, message by message.

Also the heartbeat's path through the job's first steps: the sources' event_time_of takes its event time,
and the filter before validation (Flink's REGEXP is java.util.regex) matches what contracts/heartbeat.py
calls a heartbeat.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from contracts.events import INPUT_EVENTS
from contracts.flink_sql import parse_spec, source_event_time_spec
from contracts.heartbeat import HEARTBEAT_CHARS, HEARTBEAT_PATTERN, encode_heartbeat, is_heartbeat, within_tolerance
from contracts.validate import PAST_EVENT_TIME, PAST_LIMIT_MS, parse_json, parse_timestamp, validate_event
from ingestion.generator import GeneratorConfig, generate
from loanrisk.settings import REPO_ROOT, Settings
from stack.java import java_bin
from stack.jvm import load_pins
from tests.stack.reliability_helpers import hostile_messages

CONTRACTS = {c.name: c for c in INPUT_EVENTS}
NOW = datetime(2026, 11, 26, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)
TOLERANCE = Settings().flink.future_tolerance  # the job's, as sql_params puts it into every spec


def job_jars() -> tuple[Path, Path]:
    """The built functions jar and Flink's dist jar (shaded Jackson), as the job's classpath has them."""
    s = Settings()
    jars = sorted((s.install_dir / "jars" / "functions").glob("*.jar"))
    dist = sorted((s.flink_home / "lib").glob("flink-dist-*.jar"))
    if not jars or not dist:
        pytest.fail("jvm/functions is not built: run `make setup` (riskctl setup)")
    return jars[0], dist[0]


def java_reasons(requests: list[tuple[str, str | None]],
                 tolerance: timedelta = TOLERANCE) -> list[tuple[str | None, int]]:
    """(reason, source event time ms) per (contract name, payload), from the jar's test harness.

    The contract name "source" stands for the spec the Kafka source tables give event_time_of.
    """
    functions, dist = job_jars()
    specs = {name: parse_spec(c, tolerance) for name, c in CONTRACTS.items()}
    specs["source"] = source_event_time_spec(tolerance)
    lines = "".join(json.dumps({"spec": specs[k], "payload": p, "ingested_ms": NOW_MS}) + "\n" for k, p in requests)
    out = subprocess.run([java_bin(), "-cp", f"{functions}:{dist}", "loanrisk.flink.ValidateCli"], input=lines,
                         capture_output=True, text=True, encoding="utf-8", timeout=120, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    assert len(rows) == len(requests)
    return [(None if r == "-" else r, int(t)) for r, t in rows]


def python_reason(kind: str, payload: str | None, tolerance: timedelta = TOLERANCE) -> str | None:
    """contracts/validate.py's reason, plus the past-event-time rule only the job applies."""
    if payload is None:
        return "invalid_json"
    reason = validate_event(payload, CONTRACTS[kind], now=NOW, future_tolerance=tolerance)
    if reason is None:
        ev = parse_timestamp(parse_json(payload)[CONTRACTS[kind].event_time_field])  # type: ignore[index]
        if ev is not None and ev.timestamp() * 1000 < PAST_LIMIT_MS:
            return PAST_EVENT_TIME
    return reason


def around_the_future_limit(tolerance: timedelta) -> list[str]:
    """Event times just inside and just past ``NOW + tolerance``, in UTC and with an offset."""
    limit = NOW + tolerance
    times = [limit + timedelta(microseconds=us) for us in (-1_000_000, -1, 0, 1, 999, 1_000, 1_000_000)]
    out = [t.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for t in times]
    india = timezone(timedelta(hours=5, minutes=30))
    out += [(limit + timedelta(seconds=s)).astimezone(india).isoformat(timespec="milliseconds") for s in (0, 1)]
    return out


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, str | None]]:
    """Generated events with every malformed variant, hostile messages of every category, and edge cases."""
    from tests.unit.test_generator import ANOMALIES, CONFIG
    msgs = list(generate(replace(CONFIG, anomalies=ANOMALIES)))
    out: list[tuple[str, str | None]] = [(m.kind, m.value_bytes.decode("utf-8", "replace")) for m in msgs]
    valid = [m for m in msgs if not m.anomaly]
    templates = {k: json.loads(next(m for m in valid if m.kind == k).value_bytes) for k in CONTRACTS}
    topics = {k: k for k in CONTRACTS}
    for h in hostile_messages(templates, topics, "parity", 3000, [70_000], random.Random(7)):
        out.append((h.topic, h.value.decode("utf-8", "replace")))
    app = templates["loan_application"]
    edge = [json.dumps({**app, "event_time": "1999-12-31T23:59:59.000Z"}),   # past
            json.dumps({**app, "event_time": "2026-11-28T00:00:00.000+00:00"}),  # future, with an offset
            json.dumps({**app, "event_time": "2026-02-30T00:00:00.000Z"}),   # not a date
            json.dumps(app) + " x",                                         # trailing garbage
            json.dumps([app]), "null", "", "{", '{"a": NaN}',
            json.dumps({**app, "annual_income": 1e308 * 10}).replace("Infinity", "1e999"),
            json.dumps({**app, "term_months": 36.0}), json.dumps({**app, "term_months": 2**40}),
            json.dumps({**app, "term_months": True}), json.dumps({**app, "event_id": None}),
            json.dumps({**app, "event_id": {"nested": [1, 2]}})]
    # The optional application attributes (contracts/attributes.py): present, null, out of bounds, mistyped.
    edge += [json.dumps({**app, "open_credit_lines": 12, "accounts_never_delinquent_share": 87.5}),
             json.dumps({**app, "open_credit_lines": None}), json.dumps({**app, "open_credit_lines": -1}),
             json.dumps({**app, "open_credit_lines": 2.5}), json.dumps({**app, "open_credit_lines": "12"}),
             json.dumps({**app, "months_since_last_delinquency": 1201}),
             json.dumps({**app, "accounts_never_delinquent_share": 100.01}),
             json.dumps({**app, "tax_liens": 2**31})]
    # Event times around the job's future limit: valid up to it, dead-lettered (and epoch 0) past it.
    edge += [json.dumps({**app, "event_time": t}) for t in around_the_future_limit(TOLERANCE)]
    # Event times at the edges of the Java fast path (EventValidator.commonTimestamp) and beyond it.
    for t in ("2021-03-04T05:06:07Z", "2021-03-04T05:06:07.1Z", "2021-03-04T05:06:07.123456789Z",
              "2021-03-04T05:06:07.1234567891Z", "2021-03-04T05:06:07.Z", "2021-03-04T05:06:07z",
              "2021-03-04T05:06:07+17:59", "2021-03-04T05:06:07+18:00", "2021-03-04T05:06:07-18:00",
              "2021-03-04T05:06:07+18:01", "2021-03-04T05:06:07-00:00", "2021-03-04T05:06:07+05:60",
              "2021-03-04T05:06:07+0530", "2020-02-29T00:00:00Z", "2021-02-29T00:00:00Z", "2021-04-31T00:00:00Z",
              "2021-12-31T23:59:59.999999999-05:00", "2021-03-04T24:00:00Z", "2021-03-04T23:60:00Z",
              "2021-03-04T23:59:60Z", "2021-13-01T00:00:00Z", "2021-00-10T00:00:00Z", "0001-01-01T00:00:00+01:00",
              "0000-01-01T00:00:00Z", "2021-03-04 05:06:07Z", "2021-03-04T05:06:07", "２021-03-04T05:06:07Z"):
        edge.append(json.dumps({**app, "event_time": t}))
    out += [("loan_application", e) for e in edge]
    out.append(("transaction", None))
    return out


@pytest.fixture(scope="module")
def java(corpus: list) -> list[tuple[str | None, int]]:
    return java_reasons(corpus)


@pytest.mark.setup
def test_the_java_parser_names_the_same_first_broken_rule_as_the_python_reference(corpus: list, java: list) -> None:
    got = java
    mismatches = [(kind, (p or "")[:120], want, java) for (kind, p), (java, _) in zip(corpus, got)
                  if (want := python_reason(kind, p)) != java]
    assert not mismatches, f"{len(mismatches)} of {len(corpus)} differ, e.g. {mismatches[:5]}"
    reasons = {re.sub(":.*", "", r or "valid") for r, _ in got}
    # The corpus reaches every rule (a parity test over only valid events could not fail usefully).
    assert reasons >= {"valid", "too_large", "invalid_json", "missing", "type", "choice", "range",
                       "future_event_time", "past_event_time"}, reasons


@pytest.mark.setup
def test_the_source_event_time_is_the_payloads_or_epoch_zero_when_bad_or_in_the_future(corpus: list,
                                                                                      java: list) -> None:
    for (kind, p), (_, ms) in zip(corpus, java):
        name = CONTRACTS[kind].event_time_field
        event = parse_json(p) if p is not None and len(p) <= 65_536 else None
        if event is not None:
            raw = event.get(name)
        else:  # not a JSON object: the streaming read may still have met the field before the error
            found = re.search(rf'"{name}"\s*:\s*"([^"]*)"', p or "") if p and len(p) <= 65_536 else None
            raw = found.group(1) if found else None
        ts = parse_timestamp(raw) if isinstance(raw, str) else None
        want = 0 if ts is None or ts > NOW + TOLERANCE else int(ts.timestamp() * 1000)
        assert ms == want or (event is None and ms == 0), (p[:200] if p else p, ms, want)


@pytest.mark.setup
@pytest.mark.parametrize("tolerance", [timedelta(0), timedelta(seconds=90), timedelta(days=1)],
                         ids=["zero", "90s", "1d"])
def test_java_applies_the_tolerance_its_spec_carries(tolerance: timedelta) -> None:
    """One second past the tolerance is dead-lettered and keeps the source at epoch 0; one second inside is valid."""
    template = json.loads(next(m.value_bytes for m in generate(GeneratorConfig(seed=3, customers=1))
                               if m.kind == "transaction"))
    inside, past = NOW + tolerance - timedelta(seconds=1), NOW + tolerance + timedelta(seconds=1)
    requests = [("transaction", json.dumps({**template, "event_time": t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}))
                for t in (inside, past)]
    assert [python_reason(k, p, tolerance) for k, p in requests] == [None, "future_event_time"]
    assert java_reasons(requests, tolerance) == [(None, int(inside.timestamp() * 1000)), ("future_event_time", 0)]


@pytest.mark.setup
def test_the_sources_take_a_heartbeats_event_time_up_to_the_future_tolerance() -> None:
    """What moves the watermark at the end of a replay: the heartbeat's time, cut to the limit when later."""
    tolerance_ms = TOLERANCE // timedelta(milliseconds=1)
    past = NOW_MS - 86_400_000 * 400                                    # a replay of history
    limit, cut = within_tolerance(NOW_MS + tolerance_ms + 60_000, NOW_MS, tolerance_ms)
    assert cut and limit == NOW_MS + tolerance_ms
    times = [past, limit, limit + 1]
    got = java_reasons([("source", encode_heartbeat(t).decode()) for t in times])
    assert [ms for _, ms in got] == [past, limit, 0], "one past the tolerance must not move the watermark"


# Flink's REGEXP(s, p) is Pattern.compile(p).matcher(s).find(0) (SqlFunctionUtils.regExp) and CHAR_LENGTH
# counts code points: the job's filter (contracts.heartbeat.heartbeat_condition), in Java.
HEARTBEAT_FILTER_JAVA = """
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;

public class HeartbeatFilter {
    public static void main(String[] args) throws Exception {
        Pattern pattern = Pattern.compile(args[0]);
        int chars = Integer.parseInt(args[1]);
        ObjectMapper mapper = new ObjectMapper();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        String line;
        while ((line = in.readLine()) != null) {
            JsonNode node = mapper.readTree(line);
            String s = node.isNull() ? null : node.asText();
            boolean hit = s != null && s.codePointCount(0, s.length()) == chars && pattern.matcher(s).find(0);
            out.println(hit ? "1" : "0");
        }
        out.flush();
    }
}
"""


def java_heartbeat_filter(payloads: list[str | None], tmp: Path) -> list[bool]:
    """Whether the job's heartbeat filter drops each payload, evaluated by java.util.regex as Flink does."""
    _, dist = job_jars()
    source = tmp / "HeartbeatFilter.java"
    source.write_text(HEARTBEAT_FILTER_JAVA)
    lines = "".join(json.dumps(p) + "\n" for p in payloads)
    out = subprocess.run([java_bin(), "-cp", str(dist), str(source), HEARTBEAT_PATTERN, str(HEARTBEAT_CHARS)],
                         input=lines, capture_output=True, text=True, encoding="utf-8", timeout=120, check=True).stdout
    return [line == "1" for line in out.splitlines()]


@pytest.mark.setup
def test_the_jobs_heartbeat_filter_drops_heartbeats_and_nothing_else(corpus: list, tmp_path: Path) -> None:
    beat = encode_heartbeat(1_551_398_700_000).decode()
    near_misses = [beat + "\n", beat + " ", " " + beat, beat.replace(":true", ": true"), beat.replace("Z", "+00:00"),
                   beat.replace("2019", "２019"), beat.replace("true", "false"), beat[:-1] + ',"event_id":"x"}',
                   json.dumps({"event_time": "2019-03-01T00:05:00.000Z", "heartbeat": True}),
                   beat.replace("heartbeat", "heartbeaT")]
    payloads = [p for _, p in corpus] + [beat, encode_heartbeat(0).decode()] + near_misses
    java = java_heartbeat_filter(payloads, tmp_path)
    python = [is_heartbeat(p) for p in payloads]
    assert java == python
    assert sum(java) == 2 and java[-len(near_misses) - 2:-len(near_misses)] == [True, True]


def test_the_functions_module_builds_against_the_pinned_flink() -> None:
    pom = (REPO_ROOT / "jvm" / "functions" / "pom.xml").read_text()
    flink_version, _ = load_pins()
    assert f"<flink.version>{flink_version}</flink.version>" in pom
