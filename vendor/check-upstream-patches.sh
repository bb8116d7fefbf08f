#!/usr/bin/env bash
# Checks the pull requests prepared for upstream (vendor/<crate>/upstream/*.patch): each
# applies with `git apply`, in order, on the release as published (the first commit that
# added vendor/<crate>), and the crate builds after each one.
#
#   vendor/check-upstream-patches.sh engineioxide   # and runs the crate's tests after each
#   vendor/check-upstream-patches.sh fred           # builds only: fred's tests need Docker
#
# Offline, from the cargo cache and the workspace's Cargo.lock, like vendor/test-engineioxide.sh.
set -euo pipefail
crate=${1:?usage: $0 engineioxide|fred}
cd "$(dirname "$0")/.."
root=$PWD
published=$(git log --format=%h --diff-filter=A -- "vendor/$crate/Cargo.toml" | tail -1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/$crate"
git archive "$published:vendor/$crate" | tar -x -C "$tmp/$crate"
echo "== $crate as published ($published)"
for patch in "vendor/$crate/upstream/"0*.patch; do
  echo "== git apply $patch"
  (cd "$tmp/$crate" && git apply --check "$root/$patch" && git apply "$root/$patch")
  case $crate in
    engineioxide)
      vendor/test-engineioxide.sh --dir "$tmp/$crate" -q 2>&1 | grep -E "^(test result|error|warning)" ;;
    fred)
      # fred as a path dependency of an empty crate, as the workspace builds it: a package
      # built on its own would resolve all its optional and dev-dependencies, which are not
      # all in the offline cache.
      mkdir -p "$tmp/check/src"
      echo 'pub use fred;' >"$tmp/check/src/lib.rs"
      cat >"$tmp/check/Cargo.toml" <<TOML
[package]
name = "fred-build-check"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
fred = { path = "../fred", default-features = false, features = ["enable-rustls-ring", "i-cluster", "i-std", "i-scripts", "sha-1", "subscriber-client", "transactions"] }

[workspace]
TOML
      cp Cargo.lock "$tmp/check/"
      (cd "$tmp/check" && CARGO_TARGET_DIR=${FRED_TARGET_DIR:-/tmp/fred-target} cargo build --offline) ;;
    *) echo "unknown crate $crate" >&2; exit 2 ;;
  esac
done
echo "== all patches of $crate apply and pass"
