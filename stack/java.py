"""Finds the Java 17 runtime every JVM service of the stack runs on."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from loanrisk.errors import StackError


def java_home() -> Path:
    """JAVA_HOME if set, else the JDK that `java` on PATH belongs to."""
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    java = shutil.which("java")
    if java is None:
        raise StackError("Java is not installed: install a JDK 17 (apt-get install openjdk-17-jdk-headless)")
    return Path(java).resolve().parent.parent


def java_bin() -> str:
    """The java executable."""
    return str(java_home() / "bin" / "java")
