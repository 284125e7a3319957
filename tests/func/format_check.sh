#!/usr/bin/env bash
# Checks that every C source and header keeps the project's clang-format style (.clang-format).
set -euo pipefail
cd "$(dirname "$0")/../.."
mapfile -t files < <(git ls-files -co --exclude-standard -- '*.c' '*.h' 2>/dev/null || find src queue workers include tests -name '*.[ch]')
[ ${#files[@]} -gt 0 ] || { echo "no C files found"; exit 1; }
if clang-format --dry-run --Werror "${files[@]}" 2>/tmp/pvm-format.$$; then
  echo "format: ${#files[@]} files follow .clang-format"
  rm -f /tmp/pvm-format.$$
else
  grep -E '^[^ ].*(warning|error):' /tmp/pvm-format.$$ | cut -d: -f1 | sort -u | sed 's/^/needs clang-format -i: /'
  rm -f /tmp/pvm-format.$$
  exit 1
fi
