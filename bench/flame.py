"""Flame graphs of a running TaskManager: recorded with Java Flight Recorder (``jcmd JFR.start``), read back with
``jfr print --json``, drawn as a PNG, with the hottest frames listed.

The tree is Flink's flame-graph shape (``{"name", "value", "children"}``, the root's children the outermost
frames), one branch per thread kind, so a graph from Flink's REST API draws the same way.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Colour by where the code comes from, so a reader sees at a glance whose code the time is spent in.
ORIGINS = (
    ("loanrisk.", "loan-risk functions", "#d62728"),
    ("org.apache.iceberg.", "Iceberg", "#2ca02c"),
    ("org.apache.parquet.", "Parquet", "#98df8a"),
    ("org.apache.hadoop.", "Hadoop (configuration, file system)", "#17becf"),
    ("org.apache.flink.kafka.shaded.", "Kafka client", "#1f77b4"),
    ("org.apache.kafka.", "Kafka client", "#1f77b4"),
    ("org.apache.flink.table.", "Flink SQL runtime", "#ff7f0e"),
    ("org.apache.flink.", "Flink runtime", "#ffbb78"),
    ("com.fasterxml.", "Jackson", "#9467bd"),
    ("java.", "JDK", "#c7c7c7"),
    ("jdk.", "JDK", "#c7c7c7"),
    ("sun.", "JDK", "#c7c7c7"),
)
OTHER = ("other (generated code, libraries)", "#e7ba52")
_LINE = re.compile(r":\d+$")


TASK = "task: "  # a box for a whole task (Flink vertex) when several tasks' graphs are drawn as one


def origin(frame: str) -> tuple[str, str]:
    """(label, colour) of the code a frame belongs to."""
    if frame.startswith((TASK, THREAD)):
        return "thread (Flink task or pool)", "#dbdb8d"
    for prefix, label, colour in ORIGINS:
        if frame.startswith(prefix):
            return label, colour
    return OTHER


def short(frame: str) -> str:
    """``org.apache.flink.x.StreamTask.processInput:562`` -> ``StreamTask.processInput``; a task's box keeps its
    name, cut to 60 characters."""
    for prefix in (TASK, THREAD):
        if frame.startswith(prefix):
            return frame[len(prefix):][:60]
    name = _LINE.sub("", frame)
    parts = name.split(".")
    return ".".join(parts[-2:]) if len(parts) >= 2 else name


THREAD = "thread: "
# Frames of Flink's task loop and operator chaining that sit under every record: dropped from the picture
# (their samples stay, on the frames above them) so what the time is spent on is not 20 rows up.
PLUMBING = re.compile(
    r"^(java\.lang\.Thread\.run|org\.apache\.flink\.runtime\.taskmanager\.Task[.$]|"
    r"org\.apache\.flink\.streaming\.runtime\.tasks\.(StreamTask|mailbox\.MailboxProcessor|"
    r"CopyingChainingOutput|ChainingOutput|BroadcastingOutputCollector|SourceOperatorStreamTask\$AsyncDataOutputToOutput|"
    r"StreamTask\$\$Lambda)|org\.apache\.flink\.streaming\.runtime\.io\.(StreamOneInputProcessor|"
    r"AbstractStreamTaskNetworkInput|StreamMultipleInputProcessor|StreamTaskSourceInput)|"
    r"org\.apache\.flink\.streaming\.api\.operators\.(CountingOutput|TimestampedCollector|SourceOperator\.emitNext)|"
    r"org\.apache\.flink\.streaming\.runtime\.io\.RecordProcessorUtils)")
_SUBTASK = re.compile(r" \(\d+/\d+\)(#\d+)?$")
_NUMBERED = re.compile(r"[-# ]?\d+$")


def thread_kind(name: str) -> str:
    """A thread's name without its subtask or pool number: ``Source: x (1/2)#0`` -> ``Source: x``."""
    return _NUMBERED.sub("", _SUBTASK.sub("", name))


def jfr_record(pid: int, seconds: int, out: Path) -> Path:
    """Record ``seconds`` of Java Flight Recorder's method samples (its ``profile`` settings) of JVM ``pid``."""
    bin_dir = Path(os.readlink(f"/proc/{pid}/exe")).parent  # the JVM's own jcmd, whatever java is on PATH
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(bin_dir / "jcmd"), str(pid), "JFR.start", "name=loanrisk-profile", "settings=profile",
                    f"duration={seconds}s", f"filename={out}"], check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + seconds + 60
    size = -1
    while time.monotonic() < deadline:  # written when the recording ends
        time.sleep(1)
        now = out.stat().st_size if out.exists() else -1
        if now > 0 and now == size:
            return out
        size = now
    raise RuntimeError(f"JFR wrote no recording to {out} for JVM {pid}")


def jfr_tree(recording: Path, java_bin: Path) -> dict[str, Any]:
    """The recording's execution samples as a tree: root -> thread kind -> outermost frame -> ... -> top frame."""
    raw = subprocess.run([str(java_bin / "jfr"), "print", "--json", "--stack-depth", "128", "--events",
                          "jdk.ExecutionSample", str(recording)], check=True, capture_output=True, timeout=600).stdout
    root: dict[str, Any] = {"name": "root", "value": 0, "children": []}
    index: dict[int, dict[str, dict[str, Any]]] = {}

    def child(node: dict[str, Any], name: str) -> dict[str, Any]:
        kids = index.setdefault(id(node), {})
        if name not in kids:
            kids[name] = {"name": name, "value": 0, "children": []}
            node["children"].append(kids[name])
        return kids[name]

    for event in json.loads(raw)["recording"]["events"]:
        values = event["values"]
        thread = (values.get("sampledThread") or {}).get("javaName") or "?"
        frames = (values.get("stackTrace") or {}).get("frames") or []
        node = child(root, THREAD + thread_kind(thread))
        root["value"] += 1
        node["value"] += 1
        for frame in reversed(frames):  # JFR lists the top of the stack first
            method = frame["method"]
            name = f"{method['type']['name'].replace('/', '.')}.{method['name']}:{frame.get('lineNumber', -1)}"
            if PLUMBING.match(name):
                continue
            node = child(node, name)
            node["value"] += 1
    return root


def _walk(node: dict[str, Any], depth: int = 0) -> Iterator[tuple[dict[str, Any], int]]:
    yield node, depth
    for child in node.get("children") or ():
        yield from _walk(child, depth + 1)


def hottest_frames(graph: dict[str, Any], k: int) -> list[tuple[str, float]]:
    """The ``k`` frames with the most samples on top of the stack (self time), with their share of all samples."""
    total = float(graph.get("value") or 0) or 1.0
    own: Counter[str] = Counter()
    for node, depth in _walk(graph):
        if depth == 0:
            continue
        below = sum(c.get("value", 0) for c in node.get("children") or ())
        own[short(node["name"])] += node.get("value", 0) - below
    return [(name, count / total) for name, count in own.most_common(k)]


def inclusive_frames(graph: dict[str, Any], k: int, prefix: str = "") -> list[tuple[str, float]]:
    """The ``k`` frames (starting with ``prefix``) on the most stacks, with that share of all samples: where the
    time goes including what the frame calls. A frame recursing into itself counts once per stack."""
    total = float(graph.get("value") or 0) or 1.0
    seen: Counter[str] = Counter()

    def visit(node: dict[str, Any], above: frozenset[str]) -> None:
        name = _LINE.sub("", node["name"])
        if name.startswith(prefix) and name not in above and not name.startswith((TASK, THREAD, "root")):
            seen[name] += node.get("value", 0)
            above = above | {name}
        for c in node.get("children") or ():
            visit(c, above)

    visit(graph, frozenset())
    return [(name, count / total) for name, count in seen.most_common(k)]


def draw(graph: dict[str, Any], out: Path, title: str, max_depth: int = 70) -> None:
    """Draw ``graph`` bottom-up (the outermost frame at the bottom, width = share of samples) into ``out``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    total = float(graph.get("value") or 0) or 1.0
    boxes: list[tuple[float, int, float, str]] = []

    def place(node: dict[str, Any], x: float, depth: int) -> None:
        if depth > max_depth:
            return
        width = node.get("value", 0) / total
        if width < 0.002:
            return
        if depth:
            boxes.append((x, depth - 1, width, node["name"]))
        cx = x
        for child in node.get("children") or ():
            place(child, cx, depth + 1)
            cx += child.get("value", 0) / total

    place(graph, 0.0, 0)
    rows = max((d for _, d, _, _ in boxes), default=0) + 1
    fig, ax = plt.subplots(figsize=(16, 1.5 + 0.2 * rows))
    used: dict[str, str] = {}
    for x, depth, width, name in boxes:
        label, colour = origin(name)
        used[label] = colour
        ax.add_patch(Rectangle((x, depth), width, 0.95, facecolor=colour, edgecolor="white", linewidth=0.3))
        text, room = short(name), int(width * 16 * 72 / 4.3)  # characters of about 4.3 points at size 7
        if room >= 6:
            ax.text(x + 0.001, depth + 0.45, text if len(text) <= room else text[:room - 1] + "…", fontsize=7,
                    va="center", clip_on=True)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, rows)
    ax.set_yticks([])
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel(f"share of {int(total):,} on-CPU samples (outermost frame at the bottom; Flink's task loop and "
                  "operator-chaining frames left out)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(handles=[Patch(facecolor=c, label=label) for label, c in used.items()], loc="upper right",
              fontsize=8, ncol=2, framealpha=0.9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
