#!/usr/bin/env bash
# Copies the flink_lib group of jvm/artifacts.toml into a Flink lib folder (used by flink.Dockerfile).
set -euo pipefail
toml="$1"; dest="$2"
python3 - "$toml" <<'PY' | while read -r coord; do mvn -q -B dependency:copy -Dartifact="$coord" -DoutputDirectory="$dest"; done
import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["groups"]["flink_lib"]["artifacts"]))
PY
