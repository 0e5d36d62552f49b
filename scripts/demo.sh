#!/usr/bin/env bash
# `make demo`: the main job on the bundled sample, then the log audits itself.
set -euo pipefail
cd "$(dirname "$0")/.."
TAPE=.venv/bin/tape
export TAPE_LOG="${TAPE_LOG:-tape.db}"
$TAPE log note "make demo: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
$TAPE log show --limit 5
$TAPE verify
