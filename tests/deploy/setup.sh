#!/usr/bin/env bash
# Installs what tests/deploy needs, and does nothing when it is already there:
#  - tests/deploy/.venv: docker-compose (v1), kubernetes-validate, hadolint,
#    PyYAML and the shellcheck linter, pinned in requirements*.txt;
#  - nginx from apt, only to run `nginx -t`: the package's service is kept
#    from starting during the install.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
stamp="$venv/.requirements.sha256"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

want="$(cat "$here/requirements.txt" "$here/requirements-nodeps.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> tests/deploy: python tools"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r "$here/requirements-nodeps.txt"
  echo "$want" >"$stamp"
fi

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "==> tests/deploy: installing nginx (for nginx -t only)"
  # policy-rc.d exit 101 = "do not start services" for the package scripts.
  policy=/usr/sbin/policy-rc.d
  added_policy=0
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 0755 $policy"
    added_policy=1
  fi
  cleanup() { if [ "$added_policy" -eq 1 ]; then as_root rm -f "$policy"; fi; }
  trap cleanup EXIT
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
fi
