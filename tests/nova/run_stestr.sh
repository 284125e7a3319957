#!/usr/bin/env bash
# tests/nova/run_stestr.sh BUILD_DIR [STESTR ARGS...]: the nova shim's tests (tests/nova/test_*.py)
# with Debian's python3 (the one that imports python3-nova) and stestr, run by ctest
# (tests/nova.cmake). Installs the shim with scripts/install-shim into BUILD_DIR/nova-shim
# (appended to nova.virt.__path__ by shimenv.py), writes a .stestr.conf in
# BUILD_DIR/nova-tests (stestr keeps its repository there, out of the source tree) and
# runs the tests serially. Exits non-zero when any test fails; stestr prints the totals
# (ran, passed, skipped, failed) and every skip with its reason.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: run_stestr.sh BUILD_DIR}" && pwd); shift
py=/usr/bin/python3
if ! "$py" -c 'import nova.virt.driver, stestr' 2>/dev/null; then
  echo "nova shim tests: $py cannot import nova and stestr: install python3-nova python3-stestr (scripts/bootstrap)" >&2
  exit 1
fi
export PVM_SHIM_TARGET=$build/nova-shim
"$src/scripts/install-shim" --target "$PVM_SHIM_TARGET"
work=$build/nova-tests
mkdir -p "$work"
printf '[DEFAULT]\ntest_path=%s\ntop_dir=%s\n' "$here" "$here" >"$work/.stestr.conf"
cd "$work"
export PVM_SOURCE_DIR=$src PVM_BUILD_DIR=$build
"$py" -m stestr run --serial "$@"
