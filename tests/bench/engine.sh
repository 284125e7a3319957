#!/usr/bin/env bash
# scripts/bench engine [BENCH_ENGINE ARGS...]: the engine benchmark (docs/performance.md).
# Brings up a stack in a temporary directory (pvmsim: 2-second generic jobs such as
# MigrateValidate, 50 ms not-started; powervmd: 8 workers, test operations), runs
# build/bin/bench_engine against it (tests/bench/bench_engine.c says what it measures) and
# always tears the stack down. Extra arguments go to bench_engine (e.g. --ops 200 --runs 1).
# Binaries come from $PVM_BUILD_DIR (default: build/).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
export PVM_BUILD_DIR=${PVM_BUILD_DIR:-$top/build}
case "$PVM_BUILD_DIR" in /*) ;; *) PVM_BUILD_DIR=$top/$PVM_BUILD_DIR ;; esac
bench=$PVM_BUILD_DIR/bin/bench_engine
[ -x "$bench" ] || { echo "engine.sh: build first ($bench missing)" >&2; exit 1; }

workers=8 job_ms=2000 not_started_ms=50 # not_started_ms: what scripts/stack configures
dir=$(mktemp -d "${TMPDIR:-/tmp}/pvm-bench-engine.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  "$top/scripts/stack" down "$dir/stack" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)," \
  "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)," \
  "$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release)"
echo "build: $PVM_BUILD_DIR (tree at $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')" \
  "plus uncommitted changes); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
eval "$("$top/scripts/stack" up "$dir/stack" --job-ms "$job_ms" --generic-job-ms "$job_ms" \
  --workers "$workers")"
pid=$(cat "$dir/stack/powervmd-1.pid")
rc=0
"$bench" --socket "$POWERVMD_SOCKET" --pvmsim "$PVMSIM_URL" --pid "$pid" \
  --sim-pid "$(cat "$dir/stack/pvmsim.pid")" --journal-dir "$dir" --pool "$workers" \
  --job-ms "$job_ms" --not-started-ms "$not_started_ms" "$@" || rc=$?
exit $rc
