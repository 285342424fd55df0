#!/usr/bin/env bash
# Runs mlkem_ct_check under valgrind memcheck. Fails on any memcheck error (a secret-dependent
# branch or index); first checks that the harness does flag a deliberate secret-dependent branch.
# Exits 77 (ctest skip) when valgrind is not installed.
set -uo pipefail
bin="$1"
command -v valgrind >/dev/null || { echo "SKIP: valgrind not installed (apt-get install valgrind)"; exit 77; }
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

valgrind --tool=memcheck --error-exitcode=99 --log-file="$log" "$bin" --canary >/dev/null
if [[ $? -ne 99 ]] || ! grep -q "depends on uninitialised value" "$log"; then
  echo "FAIL: valgrind did not flag the deliberate secret-dependent branch; harness broken"
  cat "$log"; exit 1
fi

valgrind --tool=memcheck --error-exitcode=99 --log-file="$log" "$bin"
rc=$?
if [[ $rc -ne 0 ]] || grep -qE "uninitialised value" "$log"; then
  echo "FAIL: secret-dependent control flow or memory access (valgrind rc $rc):"
  cat "$log"; exit 1
fi
echo "PASS: no secret-dependent branch or index in ML-KEM-512/768/1024 keygen, encaps, decaps"
