"""Interrupted ingest runs restarted later deliver every event exactly once; cursors; the `ingest` CLI."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingestion.apis.cursors import CursorError, CursorStore
from ingestion.apis.http import ApiUnavailable, RetryPolicy
from ingestion.apis.mapping import customer_lookup
from ingestion.apis.plaid import PlaidClient, PlaidSource
from ingestion.apis.razorpayx import RazorpayXClient, RazorpayXSource
from ingestion.apis.runner import Event, Source, run_ingest
from ingestion.producer import NullEventProducer
from loanrisk.settings import get_settings
from riskctl.commands.ingest import ingest
from tests.fake_apis import Fault
from tests.fake_apis.plaid_server import SYNC, FakePlaid, make_transaction
from tests.fake_apis.razorpayx_server import ACCOUNT, FakeRazorpayX
from tests.fake_apis.razorpayx_server import make_transaction as make_rzp_transaction

TOKEN = "access-sandbox-resume-test-token"
T0 = 1_700_000_000
FAST = RetryPolicy(max_attempts=3, backoff_base_s=0.001, backoff_cap_s=0.004)
TOTAL = 11  # records per API; pages of 3 -> 4 pages


class Crash(Exception):
    """The process dying at a chosen point."""


@dataclass
class MemorySink:
    """Keeps acknowledged events; raises ``error`` on call number ``fail_on`` (1-based) before acknowledging."""

    fail_on: int | None = None
    error: type[BaseException] = Crash
    events: list[Event] = field(default_factory=list)
    calls: int = 0

    def __call__(self, events: list[Event]) -> None:
        self.calls += 1
        if self.calls == self.fail_on:
            raise self.error("killed before the sink acknowledged")
        self.events.extend(events)


@dataclass
class Api:
    """One fake API plus a factory for a fresh source (a fresh process) pointing at it."""

    name: str
    server: FakePlaid | FakeRazorpayX
    new_source: Callable[[ExitStack], Source]
    path: str


@pytest.fixture(params=["plaid", "razorpayx"])
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    if request.param == "plaid":
        with FakePlaid() as plaid:
            plaid.add(TOKEN, *(make_transaction(n) for n in range(1, TOTAL + 1)))

            def plaid_source(stack: ExitStack) -> Source:
                client = stack.enter_context(PlaidClient(plaid.client_id, plaid.secret, plaid.base_url, retry=FAST,
                                                         rate_per_s=1000, burst=100))
                return PlaidSource(client, TOKEN, customer_lookup(default="cust-1"), count=3)
            yield Api("plaid", plaid, plaid_source, SYNC)
    else:
        with FakeRazorpayX() as rzp:
            rzp.add_transactions(*(make_rzp_transaction(n, T0 + n, credit=n) for n in range(1, TOTAL + 1)))

            def rzp_source(stack: ExitStack) -> Source:
                client = stack.enter_context(RazorpayXClient(rzp.key_id, rzp.key_secret, rzp.base_url, retry=FAST,
                                                             rate_per_s=1000, burst=100))
                return RazorpayXSource(client, ACCOUNT, customer_lookup(default="cust-1"), count=3,
                                       clock=lambda: T0 + 100)
            yield Api("razorpayx", rzp, rzp_source, "/v1/transactions")


def run(api: Api, sink: MemorySink, state_dir: Path, **kwargs: object) -> None:
    with ExitStack() as stack:
        run_ingest(api.new_source(stack), sink, state_dir, **kwargs)  # type: ignore[arg-type]


def assert_exactly_once(*sinks: MemorySink) -> None:
    ids = [e["event_id"] for s in sinks for e in s.events]
    assert len(ids) == TOTAL, f"expected {TOTAL} events, got {len(ids)}"
    assert len(set(ids)) == TOTAL, "duplicate events delivered"


@pytest.mark.parametrize("error", [Crash, KeyboardInterrupt])
def test_interrupted_between_pages_resumes_without_duplicates(api: Api, tmp_path: Path,
                                                              error: type[BaseException]) -> None:
    first = MemorySink(fail_on=3, error=error)  # pages 1-2 acknowledged, killed on page 3
    with pytest.raises(error):
        run(api, first, tmp_path)
    assert len(first.events) == 6
    second = MemorySink()
    run(api, second, tmp_path)
    assert_exactly_once(first, second)
    assert api.server.hits(api.path) == 3 + 2  # page 3 is fetched again, pages 1-2 are not


def test_interrupted_inside_a_page_resumes_without_duplicates(api: Api, tmp_path: Path) -> None:
    first = MemorySink(fail_on=4)  # pages of 3 in chunks of 2+1: page 2's first chunk ok, its second killed
    with pytest.raises(Crash):
        run(api, first, tmp_path, chunk_size=2)
    assert len(first.events) == 5
    with ExitStack() as stack:
        saved = CursorStore(tmp_path, api.new_source(stack).cursor_name).load()
    assert saved is not None and saved["delivered"] == [e["event_id"] for e in first.events[3:]]
    second = MemorySink()
    run(api, second, tmp_path, chunk_size=2)
    assert_exactly_once(first, second)


def test_fetch_failures_midway_resume_without_duplicates(api: Api, tmp_path: Path) -> None:
    first = MemorySink()
    api.server.inject(Fault.server_error(503), times=FAST.max_attempts * 2)
    with pytest.raises(ApiUnavailable):
        run(api, first, tmp_path)
    assert first.events == []
    api.server.requests.clear()
    with pytest.raises(ApiUnavailable):  # the remaining faults outlast the next run's retries too
        run(api, first, tmp_path)
    second = MemorySink()
    run(api, second, tmp_path)
    assert_exactly_once(first, second)


def test_max_pages_stops_and_the_next_run_continues(api: Api, tmp_path: Path) -> None:
    sinks = [MemorySink() for _ in range(4)]
    for sink in sinks:
        run(api, sink, tmp_path, max_pages=1)
    assert [len(s.events) for s in sinks] == [3, 3, 3, 2]
    assert_exactly_once(*sinks)


def test_dry_run_reads_but_never_moves_the_cursor(api: Api, tmp_path: Path) -> None:
    dry = MemorySink()
    run(api, dry, tmp_path, persist=False)
    assert len(dry.events) == TOTAL and not list(tmp_path.glob("*.json"))
    real = MemorySink()
    run(api, real, tmp_path)
    assert_exactly_once(real)


def test_plaid_rewind_after_a_restart_resends_nothing(tmp_path: Path) -> None:
    with FakePlaid() as plaid:
        plaid.add(TOKEN, *(make_transaction(n) for n in range(1, TOTAL + 1)))
        api = Api("plaid", plaid, lambda stack: PlaidSource(
            stack.enter_context(PlaidClient(plaid.client_id, plaid.secret, plaid.base_url, retry=FAST,
                                            rate_per_s=1000, burst=100)),
            TOKEN, customer_lookup(default="cust-1"), count=3), SYNC)
        first = MemorySink(fail_on=3)
        with pytest.raises(Crash):
            run(api, first, tmp_path)
        plaid.add(TOKEN, make_transaction(TOTAL + 1))  # data changes while the run is down
        second = MemorySink()
        with ExitStack() as stack:
            source = api.new_source(stack)
            assert isinstance(source, PlaidSource)
            run_ingest(source, second, tmp_path)
        assert source.restarts == 1  # the resumed cursor was stale: pagination restarted from the run's start
    ids = [e["event_id"] for e in first.events + second.events]
    assert len(ids) == len(set(ids)) == TOTAL + 1


def test_cursor_files_are_replaced_atomically_and_corruption_is_loud(tmp_path: Path) -> None:
    store = CursorStore(tmp_path, "plaid-abc")
    assert store.load() is None
    store.save({"source": {"cursor": "c1"}})
    store.save({"source": {"cursor": "c2"}})
    assert store.load() == {"source": {"cursor": "c2"}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plaid-abc.json"]
    store.path.write_text('{"version": 1, "state": {"sou')
    with pytest.raises(CursorError, match="not valid JSON"):
        store.load()
    with pytest.raises(ValueError):
        CursorStore(tmp_path, "../escape")


def test_two_runs_cannot_hold_the_same_cursor(tmp_path: Path) -> None:
    store, rival = CursorStore(tmp_path, "razorpayx-transactions-x"), CursorStore(tmp_path, "razorpayx-transactions-x")
    with store.locked(), pytest.raises(CursorError, match="another ingest run"), rival.locked():
        pass
    with store.locked():  # released after the first run ends
        pass


# -- the CLI ---------------------------------------------------------------------------------------
@pytest.fixture
def plaid_env() -> Iterator[tuple[FakePlaid, dict[str, str]]]:
    with FakePlaid() as plaid:
        plaid.add(TOKEN, *(make_transaction(n) for n in range(1, 6)))
        yield plaid, {"PLAID_CLIENT_ID": plaid.client_id, "PLAID_SECRET": plaid.secret,
                      "PLAID_BASE_URL": plaid.base_url, "PLAID_ACCESS_TOKEN": TOKEN}


def test_cli_dry_run_prints_json_lines_and_keeps_the_cursor(plaid_env: tuple[FakePlaid, dict[str, str]],
                                                            tmp_path: Path) -> None:
    plaid, env = plaid_env
    result = CliRunner().invoke(ingest, ["plaid", "--state-dir", str(tmp_path), "--dry-run", "--count", "2",
                                         "--customer-id", "cust-7"], env=env)
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(e["event_id"] for e in events) == [f"plaid:txn-{n:05d}" for n in range(1, 6)]
    assert {e["customer_id"] for e in events} == {"cust-7"}
    assert "pages" in result.stderr and "dry run" in result.stderr
    assert not list(tmp_path.glob("*.json"))
    assert plaid.hits(SYNC) == 3


def test_cli_bad_credentials_give_one_line_and_exit_1(plaid_env: tuple[FakePlaid, dict[str, str]],
                                                      tmp_path: Path) -> None:
    plaid, env = plaid_env
    env = {**env, "PLAID_SECRET": "wrong-secret-value"}
    result = CliRunner().invoke(ingest, ["plaid", "--state-dir", str(tmp_path), "--dry-run", "--customer-id", "c"],
                                env=env)
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "INVALID_API_KEYS" in lines[0] and "PLAID_SECRET" in lines[0]
    assert "Traceback" not in result.output and "wrong-secret-value" not in result.output
    assert plaid.hits(SYNC) == 1


@pytest.mark.parametrize("args, env_drop, expected_code, expected", [
    (["--customer-id", "c"], "PLAID_SECRET", 1, "set PLAID_SECRET"),
    ([], None, 2, "--customer-id"),
])
def test_cli_missing_settings_or_arguments_are_one_clear_line(plaid_env: tuple[FakePlaid, dict[str, str]],
                                                              tmp_path: Path, args: list[str], env_drop: str | None,
                                                              expected_code: int, expected: str) -> None:
    env = plaid_env[1]
    patched: dict[str, str | None] = {k: (None if k == env_drop else v) for k, v in env.items()}
    result = CliRunner().invoke(ingest, ["plaid", "--state-dir", str(tmp_path), "--dry-run", *args], env=patched)
    assert result.exit_code == expected_code
    assert expected in result.stderr and "Traceback" not in result.output


class RecordingProducer(NullEventProducer):
    """The platform's null producer, recording what it is handed; the first ``lose`` messages never complete."""

    def __init__(self, lose: int = 0) -> None:
        super().__init__(max_message_bytes=1 << 20)
        self.sent: list[tuple[str, str | None, bytes]] = []
        self.lose = lose

    def _send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None,
              timestamp_ms: int | None = None) -> None:
        self.sent.append((topic, key.decode() if key else None, value))
        if len(self.sent) > self.lose:
            self.stats.delivered += 1


@pytest.mark.parametrize("lose", [0, 2])
def test_cli_produces_keyed_by_customer_and_advances_only_when_acknowledged(
        plaid_env: tuple[FakePlaid, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        lose: int) -> None:
    _, env = plaid_env
    producer = RecordingProducer(lose)
    monkeypatch.setattr("ingestion.producer.make_producer", lambda *args, **kwargs: producer)
    result = CliRunner().invoke(ingest, ["plaid", "--state-dir", str(tmp_path), "--customer-id", "cust-7"], env=env)
    cursor_files = list(tmp_path.glob("plaid-*.json"))
    if lose:
        assert result.exit_code == 1 and "did not acknowledge 2 of" in result.stderr
        assert not cursor_files
        return
    assert result.exit_code == 0, result.output
    topic = get_settings().kafka.topics.transactions
    assert [(t, key) for t, key, _ in producer.sent] == [(topic, "cust-7")] * 5
    assert json.loads(producer.sent[0][2])["event_id"] == "plaid:txn-00001"
    assert len(cursor_files) == 1 and json.loads(cursor_files[0].read_text())["state"]["source"]["cursor"]
