#!/usr/bin/env bash
# Runs the vendored engineioxide's own tests (unit, integration and doc tests) offline.
#
# The crate is outside the workspace, so it is tested from a copy in a temporary
# directory, with the workspace's Cargo.lock (every dependency is already in the cargo
# cache) and without the benches, whose dev-dependency (codspeed-criterion-compat) is
# not needed by any test. `--features v3,__test_harness,tracing` is what upstream's
# CI passes: the integration tests need the test harness.
#
#   vendor/test-engineioxide.sh [--dir DIR] [cargo test arguments]
#
# `--dir DIR` tests the crate in DIR instead of vendor/engineioxide: the published
# release with some of the patches in vendor/engineioxide/upstream/ applied, say.
set -euo pipefail
crate=vendor/engineioxide
if [ "${1:-}" = "--dir" ]; then
  crate=$(cd "$2" && pwd)
  shift 2
fi
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/engineioxide"
cp -r "$crate"/. "$tmp/engineioxide/"
rm -rf "$tmp/engineioxide/.git"
cp Cargo.lock "$tmp/engineioxide/"
python3 - "$tmp/engineioxide/Cargo.toml" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
s = re.sub(r'\[\[bench\]\]\nname = "[^"]+"\npath = "[^"]+"\nharness = false\n\n', '', s)
s = re.sub(r'\[dev-dependencies\.criterion\]\n(?:[^\[]*\n)', '', s)
open(p, 'w').write(s)
PY
cd "$tmp/engineioxide"
CARGO_TARGET_DIR=${ENGINEIOXIDE_TARGET_DIR:-/tmp/engineioxide-target} \
  cargo test --offline --features v3,__test_harness,tracing "$@"
