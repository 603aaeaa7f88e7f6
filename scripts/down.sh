#!/usr/bin/env bash
# `make down`: stops the `sreworks serve` that `make up` started (by its pid file), then the NATS,
# MariaDB, Redis and S3 servers that scripts/infra.sh started. Servers it found running stay up.
# Data stays in .local/ — remove that folder to start from scratch.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PIDFILE="$RUN/sreworks.pid"
STOP_TIMEOUT=${SW_STOP_TIMEOUT:-60}

if [[ -f $PIDFILE ]]; then
  pid=$(<"$PIDFILE")
  if pid_is "$pid" sreworks; then
    log "stopping sreworks (pid $pid)"
    kill -TERM "$pid"
    deadline=$((SECONDS + STOP_TIMEOUT))
    # SIGTERM drains in-flight work within the server's grace period; then we stop waiting.
    while pid_is "$pid" sreworks; do
      if ((SECONDS >= deadline)); then
        warn "sreworks (pid $pid) still running after ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
  else
    log "sreworks is not running"
  fi
  rm -f "$PIDFILE"
else
  log "no sreworks started by make up in this checkout"
fi

"$SCRIPTS/infra.sh" stop
