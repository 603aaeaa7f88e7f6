#!/usr/bin/env bash
# `make up`: the whole platform on this machine, in the foreground until Ctrl-C (like `docker compose up`).
#
# 1. scripts/infra.sh ensure: NATS with JetStream, MariaDB and Redis on 127.0.0.1 (reused or started);
# 2. .local/secrets.env (mode 600) gets a generated SREWORKS_APPMETA__ENCRYPTION_KEY once, kept for
#    every later run (it encrypts stored cluster credentials: losing it loses them);
# 3. cargo build --release -p sreworks; sreworks migrate;
# 4. prints the URL and how to log in, then runs `sreworks serve --target ${SREWORKS_TARGET:-all}`.
# Safe to re-run. Ctrl-C stops the server; NATS, MariaDB and Redis keep running for the next
# `make up` or `make test` — `make down` stops the ones infra.sh started.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

PIDFILE="$RUN/sreworks.pid"

# The URL users reach the gateway at, as the server computes it (public_url, else http://{listen}).
gateway_url() {
  if [[ -n ${SREWORKS_GATEWAY__PUBLIC_URL:-} ]]; then
    echo "${SREWORKS_GATEWAY__PUBLIC_URL%/}"
    return
  fi
  local listen=${SREWORKS_GATEWAY__LISTEN:-127.0.0.1:8080}
  # A wildcard listen address is reached through loopback from this machine.
  listen=${listen/#0.0.0.0:/127.0.0.1:}
  listen=${listen/#\[::\]:/127.0.0.1:}
  echo "http://$listen"
}
URL=$(gateway_url)

if [[ -f $PIDFILE ]] && pid_is "$(<"$PIDFILE")" sreworks; then
  log "sreworks is already running (pid $(<"$PIDFILE")) at $URL — 'make down' stops it"
  exit 0
fi

"$SCRIPTS/infra.sh" ensure
load_infra_env

# No built-in secrets: the encryption key is generated here once, or comes from your environment.
if [[ -z ${SREWORKS_APPMETA__ENCRYPTION_KEY:-} ]]; then
  if ! SREWORKS_APPMETA__ENCRYPTION_KEY=$(secret_get SREWORKS_APPMETA__ENCRYPTION_KEY); then
    SREWORKS_APPMETA__ENCRYPTION_KEY=$(random_b64_32)
    secret_set SREWORKS_APPMETA__ENCRYPTION_KEY "$SREWORKS_APPMETA__ENCRYPTION_KEY"
    log "generated SREWORKS_APPMETA__ENCRYPTION_KEY into .local/secrets.env (back it up: it decrypts stored cluster credentials)"
  fi
fi
export SREWORKS_APPMETA__ENCRYPTION_KEY

require_cargo
log "cargo build --release -p sreworks (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --release -p sreworks || die "the build failed (see above)"
BIN="$CARGO_TARGET_DIR/release/sreworks"
[[ -x $BIN ]] || die "the build succeeded but $BIN is missing"

TARGET=${SREWORKS_TARGET:-all}
log "sreworks migrate --target $TARGET"
timeout "${SW_MIGRATE_TIMEOUT:-300}" "$BIN" migrate --target "$TARGET" || die "sreworks migrate failed (see above)"

# shellcheck disable=SC2016  # $SREWORKS_ADMIN_PASSWORD is printed for the user's shell, not expanded here
if [[ -n ${SREWORKS_ADMIN_PASSWORD:-} ]]; then
  pw_note='admin, password $SREWORKS_ADMIN_PASSWORD (set when the admin user is first created)'
  pw_arg='$SREWORKS_ADMIN_PASSWORD'
else
  pw_note='admin; on FIRST start the server prints a generated password ONCE below: copy it'
  pw_arg='<admin password>'
fi
cat >&2 <<EOF

  sreworks ($TARGET) at $URL
    docs     $URL/docs
    health   $URL/healthz   $URL/readyz
    log in   $pw_note
             TOKEN=\$(curl -s $URL/oauth/token -d grant_type=password -d username=admin \\
                 --data-urlencode "password=$pw_arg" -d client_id=swcli | jq -r .access_token)
             curl -s $URL/v1/apps -H "Authorization: Bearer \$TOKEN"
    stop     Ctrl-C; NATS, MariaDB and Redis keep running ('make down' stops those make up started)

EOF

# The server replaces this shell (so Ctrl-C and SIGTERM reach it directly); `make down` finds it by
# this pid.
echo $$ >"$PIDFILE"
exec "$BIN" serve --target "$TARGET"
