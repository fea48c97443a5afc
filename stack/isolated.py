"""An isolated local stack for tests and benchmarks: every port free now, state in its own folder."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux; the IANA default elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535


def free_port_block(n: int, rng: random.Random) -> int:
    """The first port of ``n`` consecutive ports that are all free now, below the ephemeral range.

    A port is reserved here but bound by its service only later (Prefect's, minutes into a test
    session); inside the ephemeral range an outgoing connection could take it meanwhile (it did).
    """
    top = min(ephemeral_range()[0], 65536) - n
    for _ in range(200):
        base = rng.randrange(10000, top)
        if all(_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no block of free ports found")


def isolated_stack_env(state_dir: Path, install_dir: Path, seed: int) -> dict[str, str]:
    """Environment overrides for an isolated stack: every port free, state under ``state_dir``."""
    base = free_port_block(25, random.Random(seed))
    return {
        "LOANRISK_STACK__STATE_DIR": str(state_dir),
        "LOANRISK_STACK__INSTALL_DIR": str(install_dir),
        "LOANRISK_STACK__HEALTH_TIMEOUT_S": "180",
        "LOANRISK_KAFKA__PORT": str(base),
        "LOANRISK_KAFKA__CONTROLLER_PORT": str(base + 1),
        "LOANRISK_FLINK__REST_PORT": str(base + 2),
        "LOANRISK_FLINK__JOBMANAGER_RPC_PORT": str(base + 3),
        "LOANRISK_POSTGRES__PORT": str(base + 4),
        "LOANRISK_S3__PORT": str(base + 5),
        "LOANRISK_SNOWFLAKE__PORT": str(base + 6),
        "LOANRISK_PROMETHEUS__PORT": str(base + 7),
        "LOANRISK_PREFECT__PORT": str(base + 9),
        "LOANRISK_API__PORT": str(base + 10),
        "LOANRISK_S3__READER__PORT": str(base + 11),
        "LOANRISK_FLINK__PROMETHEUS_PORTS": f"{base + 12}-{base + 21}",
        "LOANRISK_ALERTING__PORT": str(base + 22),
        "LOANRISK_KAFKA__ADMIN_PORT": str(base + 24),
    }
