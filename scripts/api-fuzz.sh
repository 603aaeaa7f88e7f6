#!/usr/bin/env bash
# Property-based conformance run of the HTTP API against its own OpenAPI document (schemathesis).
# Start the platform first (`make up`), then:
#
#   SREWORKS_ADMIN_PASSWORD=... scripts/api-fuzz.sh [http://127.0.0.1:8080] [extra schemathesis args]
#
# It logs in as admin and checks that no request yields a 5xx and that every answer (status, media
# type, headers, body) matches the published spec. `/oauth/revoke` is left out so the run does not
# revoke its own token. Bounded: --max-examples per operation against the given URL only.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

GW=${1:-${SREWORKS_GATEWAY__PUBLIC_URL:-http://127.0.0.1:8080}}
[[ $# -gt 0 ]] && shift
[[ -n ${SREWORKS_ADMIN_PASSWORD:-} ]] || die "set SREWORKS_ADMIN_PASSWORD to the admin password"
venv="$LOCAL/venv"
if [[ ! -x $venv/bin/schemathesis ]]; then
  log "installing schemathesis from PyPI into $venv"
  if [[ ! -x $venv/bin/pip ]]; then python3 -m venv "$venv" || die "could not create $venv"; fi
  timeout 600 "$venv/bin/pip" install --quiet schemathesis || die "could not install schemathesis"
fi
token=$(curl -fsS --max-time 10 "$GW/oauth/token" -d grant_type=password -d username=admin \
  --data-urlencode "password=$SREWORKS_ADMIN_PASSWORD" -d client_id=swcli |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])') || die "login at $GW failed"
exec timeout 1800 "$venv/bin/schemathesis" run "$GW/openapi.json" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --max-examples "${MAX_EXAMPLES:-60}" --workers 2 --exclude-path /oauth/revoke "$@"
