#!/usr/bin/env bash
# `make test`: the whole test suite against real NATS JetStream, MariaDB and Redis.
#
#   scripts/test.sh                 every crate of the workspace
#   scripts/test.sh -p sw-bus       one crate (any cargo-nextest arguments pass through)
#
# 1. scripts/infra.sh ensure (reuses running servers, else installs and starts them under .local/);
# 2. installs what the tests run themselves when missing: MariaDB's binaries (the outage scenario
#    starts a private server), the Kubernetes API emulator's python packages and cargo-nextest;
# 3. drops test databases (`t` + 10 hex digits + `_service`) that crashed runs left behind — only
#    those whose newest table is older than SW_STALE_TEST_DB_MINUTES (30), so a test running right
#    now from another checkout keeps its database;
# 4. cargo nextest run --workspace --no-fail-fast; the exit code is nextest's.
# Tests make their own configuration (unique names, keys and passwords); only the server addresses
# come from the environment (.local/run/infra.env).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

"$SCRIPTS/infra.sh" ensure
load_infra_env

# The real SREWorks and NAB files the conformance tests read live beside the checkout
# (../shared/fixtures) unless SW_FIXTURES_DIR points elsewhere; without them those tests cannot run.
if [[ -z ${SW_FIXTURES_DIR:-} ]]; then
  SW_FIXTURES_DIR=$(cd "$ROOT/.." && pwd)/shared/fixtures
fi
[[ -d $SW_FIXTURES_DIR/sreworks ]] ||
  die "test fixtures not found at $SW_FIXTURES_DIR (expected ../shared/fixtures beside the checkout); set SW_FIXTURES_DIR to their folder"
export SW_FIXTURES_DIR

# The outage scenario (tests/e2e) starts and stops a MariaDB of its own, whatever server infra reused:
# it needs mariadbd and mariadb-install-db on PATH (/usr/sbin is not on a normal user's PATH).
if ! find_exe mariadbd >/dev/null || ! find_exe mariadb-install-db >/dev/null; then
  apt_install mariadb-server
fi
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac

# The k8s-executor's black-box tests start the Kubernetes API emulator (tests/k8s-emulator) with this
# python; setup.sh installs its pinned packages into .local/venv when they changed.
SW_K8S_EMULATOR_PYTHON=$("$ROOT/tests/k8s-emulator/setup.sh") ||
  die "the Kubernetes API emulator could not be set up (tests/k8s-emulator/setup.sh failed, see above)"
export SW_K8S_EMULATOR_PYTHON

require_cargo

# Builds are shared between checkouts (CARGO_TARGET_DIR), but tests embed their checkout's path
# (env!("CARGO_MANIFEST_DIR")) and cargo does not rebuild a test when only that path changed. When
# the last test build came from another checkout, mark this one's sources as changed so its tests
# are rebuilt against it (only the workspace's own crates recompile).
target_dir=$CARGO_TARGET_DIR
mkdir -p "$target_dir"
if [[ $(cat "$target_dir/.sreworks-checkout" 2>/dev/null) != "$ROOT" ]]; then
  git -C "$ROOT" ls-files -z -- '*.rs' 2>/dev/null | (cd "$ROOT" && xargs -0 -r touch)
  echo "$ROOT" >"$target_dir/.sreworks-checkout"
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  log "cargo-nextest is missing: cargo install cargo-nextest --locked"
  cargo install cargo-nextest --locked || die "could not install cargo-nextest (see above)"
fi

drop_stale_test_databases() {
  local minutes=${SW_STALE_TEST_DB_MINUTES:-30} name dropped=0
  [[ $minutes =~ ^[0-9]+$ ]] || die "SW_STALE_TEST_DB_MINUTES must be a whole number of minutes"
  mysql_client "${SREWORKS_DATABASE__URL:-mysql://root@127.0.0.1:3306}"
  local names
  names=$("${MYSQL_CMD[@]}" -e "
    SELECT s.schema_name
      FROM information_schema.schemata s
      JOIN information_schema.tables t ON t.table_schema = s.schema_name
     WHERE s.schema_name REGEXP '^t[0-9a-f]{10}_'
     GROUP BY s.schema_name
    HAVING MAX(t.create_time) < NOW() - INTERVAL $minutes MINUTE") ||
    die "could not list test databases (is MariaDB reachable with SREWORKS_DATABASE__URL?)"
  for name in $names; do
    # REGEXP may ignore case; drop only the exact lowercase pattern.
    [[ $name =~ ^t[0-9a-f]{10}_ ]] || continue
    "${MYSQL_CMD[@]}" -e "DROP DATABASE IF EXISTS \`$name\`" || die "could not drop stale test database $name"
    dropped=$((dropped + 1))
  done
  ((dropped == 0)) || log "dropped $dropped stale test database(s) older than $minutes minutes"
}
drop_stale_test_databases

# --workspace unless the caller picked packages.
scope=(--workspace)
for arg in "$@"; do
  case $arg in -p | --package | -p* | --package=*) scope=() ;; esac
done

log "cargo nextest run ${scope[*]:+${scope[*]} }--no-fail-fast $* (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
status=0
cargo nextest run "${scope[@]}" --no-fail-fast "$@" || status=$?
if ((status != 0)); then
  printf '%serror:%s tests failed (cargo nextest exit %d)\n' "$R" "$N" "$status" >&2
fi
exit "$status"
