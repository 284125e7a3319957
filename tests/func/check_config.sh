#!/usr/bin/env bash
# check_config.sh: powervmd's command line against configuration files.
#   - `powervmd --check-config` passes conf/powervmd.conf.sample (exit 0, "FILE: configuration OK"),
#   - and fails a bad file (exit 1), naming FILE:LINE: KEY for every problem on stderr,
#     without echoing a secret;
#   - `powervmd --config BAD` refuses to start (exit 1) with the same lines;
#   - every key documented in docs/configuration.md is in the sample, and the reverse;
#   - --help, --version and bad usage.
# Needs PVM_BUILD_DIR and PVM_SOURCE_DIR (set by ctest).
set -euo pipefail

build=${PVM_BUILD_DIR:?PVM_BUILD_DIR is not set}
src=${PVM_SOURCE_DIR:?PVM_SOURCE_DIR is not set}
bin="$build/bin/powervmd"
sample="$src/conf/powervmd.conf.sample"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pvmtest-checkconfig-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# run NAME CMD...: runs CMD with a deadline, keeping exit status, stdout and stderr.
run() {
  local name=$1
  shift
  set +e
  timeout 60 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
  rc=$?
  set -e
}

expect_rc() { # NAME WANT
  if [ "$rc" -ne "$2" ]; then
    fail "$1: exit status $rc, expected $2"
    sed 's/^/  stdout: /' "$tmp/$1.out" >&2
    sed 's/^/  stderr: /' "$tmp/$1.err" >&2
  fi
}

expect_in() { # NAME FILE(out|err) TEXT
  if ! grep -qF -- "$3" "$tmp/$1.$2"; then
    fail "$1: std$2 lacks '$3'"
    sed "s/^/  std$2: /" "$tmp/$1.$2" >&2
  fi
}

expect_not_in() { # NAME FILE(out|err) TEXT
  if grep -qF -- "$3" "$tmp/$1.$2"; then
    fail "$1: std$2 shows '$3'"
  fi
}

[ -x "$bin" ] || { echo "FAIL: $bin is not built" >&2; exit 1; }

# The sample passes.
run sample "$bin" --check-config "$sample"
expect_rc sample 0
expect_in sample out "$sample: configuration OK"

# A bad file: every problem, as FILE:LINE: KEY: MESSAGE, and no secret.
bad="$tmp/bad.conf"
cat >"$bad" <<'CONF'
powervm_endpoint = "https://hmc.example.com:12443";
powervm_bogus = 1;
powervm_retention_hours = 0;
powervm_log_level = "loud";
powervm_password_encoded = "%%Sup3rSecret%%";
CONF
run bad "$bin" --check-config "$bad"
expect_rc bad 1
expect_in bad err "$bad:2: powervm_bogus: unknown key"
expect_in bad err "$bad:3: powervm_retention_hours: out of range"
expect_in bad err "$bad:4: powervm_log_level: bad value"
expect_in bad err "$bad:5: powervm_password_encoded: is not valid base64"
expect_not_in bad err "Sup3rSecret"
expect_not_in bad out "configuration OK"
[ "$(wc -l <"$tmp/bad.err")" -eq 4 ] || fail "bad: expected 4 problem lines, got $(wc -l <"$tmp/bad.err")"

# The new kinds of value: booleans, the API's users, the CA file, ordered pairs.
bad2="$tmp/bad2.conf"
cat >"$bad2" <<CONF
powervm_endpoint = "https://hmc.example.com:12443";
powervm_tls_verify = "false";
powervm_enable_test_ops = 1;
powervm_api_allowed_uids = "root,pvm-no-such-user";
powervm_ca_file = "$tmp/no-ca.pem";
powervm_retry_base_ms = 5000;
powervm_retry_max_ms = 4000;
powervm_job_poll_max_ms = 100;
powervm_workers = 0;
CONF
run bad2 "$bin" --check-config "$bad2"
expect_rc bad2 1
expect_in bad2 err "$bad2:2: powervm_tls_verify: wrong type: expected a boolean"
expect_in bad2 err "$bad2:3: powervm_enable_test_ops: wrong type: expected a boolean"
expect_in bad2 err "$bad2:4: powervm_api_allowed_uids: unknown user \"pvm-no-such-user\""
expect_in bad2 err "$bad2:5: powervm_ca_file: $tmp/no-ca.pem does not exist"
expect_in bad2 err "$bad2:7: powervm_retry_max_ms: powervm_retry_max_ms (4000) must be at least"
expect_in bad2 err "$bad2:8: powervm_job_poll_max_ms: powervm_job_poll_max_ms (100) must be at least"
expect_in bad2 err "$bad2:9: powervm_workers: out of range: 0 is not in 1..256"
[ "$(wc -l <"$tmp/bad2.err")" -eq 7 ] || fail "bad2: expected 7 problem lines, got $(wc -l <"$tmp/bad2.err")"

# The same keys, good; booleans and an existing CA file.
good="$tmp/good.conf"
printf 'CA\n' >"$tmp/ca.pem"
cat >"$good" <<CONF
powervm_endpoint = "https://hmc.example.com:12443";
powervm_tls_verify = false;
powervm_file_logon = true;
powervm_api_allowed_uids = "root, 1001";
powervm_ca_file = "$tmp/ca.pem";
powervm_retry_base_ms = 5000;
powervm_retry_max_ms = 5000;
CONF
run good "$bin" --check-config "$good"
expect_rc good 0
expect_in good out "$good: configuration OK"

# Docs and sample list the same keys.
doc_keys=$(sed -n 's/^### \(powervm_[a-z0-9_]*\)$/\1/p' "$src/docs/configuration.md" | sort)
sample_keys=$(sed -n 's/^#\{0,1\}\(powervm_[a-z0-9_]*\) = .*;$/\1/p' "$sample" | sort -u)
[ -n "$doc_keys" ] || fail "docs/configuration.md: no key sections found"
if [ "$doc_keys" != "$sample_keys" ]; then
  fail "docs and sample list different keys:"
  diff <(echo "$doc_keys") <(echo "$sample_keys") | sed 's/^/  /' >&2 || true
fi

# A missing required key has no line.
printf 'powervm_user = "hscroot";\n' >"$tmp/noendpoint.conf"
run noendpoint "$bin" --check-config "$tmp/noendpoint.conf"
expect_rc noendpoint 1
expect_in noendpoint err "$tmp/noendpoint.conf: powervm_endpoint: required key is missing"

# A syntax error in an included file names that file and line.
printf 'powervm_endpoint = "https://hmc";\n@include "inc.conf"\n' >"$tmp/main.conf"
printf '\npowervm_user = ;\n' >"$tmp/inc.conf"
run include "$bin" --check-config "$tmp/main.conf"
expect_rc include 1
expect_in include err "$tmp/inc.conf:2: syntax error"

# powervmd refuses to start with a bad --config, or a missing one.
run start_bad "$bin" --config "$bad" --foreground
expect_rc start_bad 1
expect_in start_bad err "$bad:2: powervm_bogus: unknown key"
expect_in start_bad err "not starting"
expect_not_in start_bad err "Sup3rSecret"

run start_missing "$bin" --config "$tmp/missing.conf" --foreground --paused
expect_rc start_missing 1
expect_in start_missing err "$tmp/missing.conf: cannot open the configuration file"

# Help, version, usage.
run help "$bin" --help
expect_rc help 0
expect_in help out "--check-config FILE"
run version "$bin" --version
expect_rc version 0
expect_in version out "powervmd "
run badopt "$bin" --no-such-option
expect_rc badopt 2
run noarg "$bin" --check-config
expect_rc noarg 2
run extra "$bin" --check-config "$sample" extra
expect_rc extra 2

if [ "$failures" -ne 0 ]; then
  echo "check_config.sh: $failures failure(s)" >&2
  exit 1
fi
echo "check_config.sh: all passed"
