#!/usr/bin/env bash
# Smoke test of the Kubernetes API emulator: starts it on a free port and drives it with curl the way
# the executor will — discovery, server-side apply (create, update, no-op, conflict), label selectors,
# status set through the test control, watch, delete, a request held by a delay — then checks the
# request log. Exits non-zero on the first mismatch; the emulator is stopped on every exit and every
# wait is bounded.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../scripts/lib.sh
source "$HERE/../../scripts/lib.sh"

command -v curl >/dev/null || apt_install curl
command -v jq >/dev/null || apt_install jq
PY=$("$HERE/setup.sh")

work=$(mktemp -d)
pid=
stop_emulator() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { warn "emulator ignored SIGTERM for 10s: killing it"; kill -KILL "$pid"; }
  fi
  rm -rf "$work"
}
trap stop_emulator EXIT

fail() {
  log_tail "$work/emulator.log"
  die "$*"
}

"$PY" "$HERE/emulator.py" 0 >"$work/port" 2>"$work/emulator.log" &
pid=$!
deadline=$((SECONDS + 20))
until [[ $(head -n 1 "$work/port" 2>/dev/null) =~ ^[0-9]+$ ]]; do
  kill -0 "$pid" 2>/dev/null || fail "the emulator exited before printing its port"
  ((SECONDS < deadline)) || fail "the emulator printed no port within 20s"
  sleep 0.1
done
BASE="http://127.0.0.1:$(head -n 1 "$work/port")"
log "emulator (pid $pid) on $BASE"

# req METHOD PATH [CONTENT-TYPE BODY]: one request; the response body lands in $work/body, the status in $code.
code=
req() {
  local method=$1 path=$2 args=()
  (($# < 4)) || args=(-H "content-type: $3" --data-binary "$4")
  code=$(curl -sS --max-time 10 -o "$work/body" -w '%{http_code}' -X "$method" "${args[@]}" "$BASE$path") ||
    fail "curl $method $path failed"
}
# expect STATUS JQ-FILTER WANT: the last response had STATUS and jq -c FILTER on its body prints WANT.
expect() {
  local status=$1 filter=$2 want=$3 got
  [[ $code == "$status" ]] || fail "HTTP $code where $status was expected; body: $(head -c 600 "$work/body")"
  got=$(jq -c "$filter" "$work/body") || fail "jq '$filter' failed on: $(head -c 600 "$work/body")"
  [[ $got == "$want" ]] || fail "jq '$filter' gave $got, want $want; body: $(head -c 600 "$work/body")"
}
jqb() { jq -r "$1" "$work/body"; }

APPLY=application/apply-patch+yaml
WEB=/apis/apps/v1/namespaces/default/deployments/web
deployment() { # deployment NAME MANAGED-BY REPLICAS IMAGE [ANNOTATION]
  printf '{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"%s","labels":{"app.kubernetes.io/managed-by":"%s","app":"%s"},"annotations":{"sreworks.io/revision":"%s"}},"spec":{"replicas":%s,"selector":{"matchLabels":{"app":"%s"}},"template":{"metadata":{"labels":{"app":"%s"}},"spec":{"containers":[{"name":"main","image":"%s"}]}}}}' \
    "$1" "$2" "$1" "${5:-1}" "$3" "$1" "$1" "$4"
}

log "discovery"
req GET /api
expect 200 '[.versions, (.serverAddressByClientCIDRs | length)]' '[["v1"],1]'
req GET /api/v1
expect 200 '[.groupVersion, ([.resources[] | select(.name | contains("/") | not) | .kind] | sort)]' \
  '["v1",["ConfigMap","Namespace","PersistentVolumeClaim","Secret","Service"]]'
req GET /apis
expect 200 '[.groups[].name] | sort' '["apps","autoscaling","batch","networking.k8s.io"]'
for gv in apps/v1:Deployment,StatefulSet batch/v1:Job networking.k8s.io/v1:Ingress autoscaling/v2:HorizontalPodAutoscaler; do
  group_version=${gv%%:*} kinds=${gv#*:}
  req GET "/apis/${group_version%/*}"
  expect 200 .preferredVersion.groupVersion "\"$group_version\""
  req GET "/apis/$group_version"
  expect 200 '[.groupVersion, ([.resources[] | select(.name | contains("/") | not) | .kind] | sort)]' \
    "$(jq -cn --arg gv "$group_version" --arg k "$kinds" '[$gv, ($k | split(",") | sort)]')"
  expect 200 '[.resources[] | .namespaced and (.verbs | index("patch") != null and index("watch") != null)] | all' true
done

log "server-side apply creates a missing object"
req PATCH "$WEB?fieldManager=sreworks" "$APPLY" "$(deployment web sreworks 1 nginx:1.25)"
expect 201 '[.metadata.generation, .spec.replicas, .metadata.namespace]' '[1,1,"default"]'
uid=$(jqb .metadata.uid)
rv1=$(jqb .metadata.resourceVersion)
[[ $uid =~ ^[0-9a-f-]{36}$ ]] || fail "metadata.uid '$uid' is not a UUID"
[[ $rv1 =~ ^[0-9]+$ ]] || fail "metadata.resourceVersion '$rv1' is not a number"
[[ $(jqb .metadata.creationTimestamp) =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$ ]] || fail "bad creationTimestamp"
req GET "$WEB"
expect 200 '[.metadata.uid, .metadata.resourceVersion]' "[\"$uid\",\"$rv1\"]"

log "a second apply with a changed spec bumps generation and resourceVersion, keeps the uid"
req PATCH "$WEB?fieldManager=sreworks" "$APPLY" "$(deployment web sreworks 3 nginx:1.27)"
expect 200 '[.metadata.uid, .metadata.generation, .spec.replicas, .spec.template.spec.containers[0].image]' \
  "[\"$uid\",2,3,\"nginx:1.27\"]"
rv2=$(jqb .metadata.resourceVersion)
((rv2 > rv1)) || fail "resourceVersion did not increase: $rv1 then $rv2"

log "re-applying the same object changes nothing (no new resourceVersion)"
req PATCH "$WEB?fieldManager=sreworks" "$APPLY" "$(deployment web sreworks 3 nginx:1.27)"
expect 200 '[.metadata.generation, .metadata.resourceVersion]' "[2,\"$rv2\"]"

log "another field manager changing an owned field gets a conflict, not a silent overwrite"
req PATCH "$WEB?fieldManager=intruder" "$APPLY" '{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":9}}'
expect 409 '[.reason, .details.causes[0].field]' '["Conflict",".spec.replicas"]'

log "apply without fieldManager and a merge patch of a missing object are refused"
req PATCH "$WEB" "$APPLY" "$(deployment web sreworks 3 nginx:1.27)"
expect 400 .reason '"BadRequest"'
req PATCH /apis/apps/v1/namespaces/default/deployments/nope application/merge-patch+json '{"spec":{"replicas":2}}'
expect 404 .reason '"NotFound"'

log "list by label selector"
req PATCH "/apis/apps/v1/namespaces/default/deployments/other?fieldManager=helm" "$APPLY" "$(deployment other helm 1 busybox)"
expect 201 .metadata.generation 1
req GET "/apis/apps/v1/namespaces/default/deployments?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dsreworks"
expect 200 '[.kind, [.items[].metadata.name]]' '["DeploymentList",["web"]]'
req GET "/apis/apps/v1/deployments?labelSelector=app.kubernetes.io%2Fmanaged-by%21%3Dsreworks"
expect 200 '[.items[].metadata.name]' '["other"]'
req GET "/apis/apps/v1/deployments"
expect 200 '[.items[].metadata.name] | sort' '["other","web"]'

log "status set through the control endpoint; generation unchanged"
req PUT "/_control/status$WEB" application/json \
  '{"observedGeneration":2,"replicas":3,"updatedReplicas":3,"readyReplicas":3,"availableReplicas":3}'
expect 200 '[.status.observedGeneration, .status.availableReplicas, .metadata.generation]' '[2,3,2]'
rv3=$(jqb .metadata.resourceVersion)
((rv3 > rv2)) || fail "setting status did not bump resourceVersion ($rv2 then $rv3)"
req GET "$WEB"
expect 200 '.status.updatedReplicas' 3

log "a metadata-only apply keeps the status and the generation"
req PATCH "$WEB?fieldManager=sreworks" "$APPLY" "$(deployment web sreworks 3 nginx:1.27 2)"
expect 200 '[.metadata.generation, .metadata.annotations["sreworks.io/revision"], .status.readyReplicas]' '[2,"2",3]'

log "watch from a resourceVersion replays the later events, then ends at timeoutSeconds"
curl -sS --max-time 10 -o "$work/watch" \
  "$BASE/apis/apps/v1/namespaces/default/deployments?watch=true&resourceVersion=$rv2&timeoutSeconds=1&labelSelector=app%3Dweb" ||
  fail "the watch did not end at its timeoutSeconds"
got=$(jq -sc '[.[] | [.type, .object.metadata.name, .object.status.observedGeneration]]' "$work/watch")
[[ $got == '[["MODIFIED","web",2],["MODIFIED","web",2]]' ]] || fail "watch events: $got"

log "delete"
req DELETE "$WEB"
expect 200 .metadata.name '"web"'
req GET "$WEB"
expect 404 .reason '"NotFound"'
req GET "/apis/apps/v1/namespaces/default/deployments?labelSelector=app%3Dweb"
expect 200 '.items | length' 0

log "a delayed request is logged at once, held, and goes on when the delay is removed"
req PUT /_control/delay application/json '{"method":"GET","path":"/configmaps/held$","seconds":60}'
expect 200 '[.method, .delays]' '["GET",1]'
held_id=$(curl -sS --max-time 10 "$BASE/_control/requests" | jq '.items[-1].id')
curl -sS --max-time 30 -o "$work/held" -w '%{http_code}' "$BASE/api/v1/namespaces/default/configmaps/held" >"$work/held-code" &
held=$!
deadline=$((SECONDS + 10))
until curl -sS --max-time 10 "$BASE/_control/requests?since=$held_id" | jq -e '.items | any(.path | endswith("/configmaps/held"))' >/dev/null; do
  ((SECONDS < deadline)) || fail "the held request did not reach the request log within 10s"
  sleep 0.1
done
kill -0 "$held" 2>/dev/null || fail "the delayed request was answered while its delay was in place"
req DELETE /_control/delay
expect 200 .released 1
wait "$held" || fail "the held request was not answered after the delay was removed (curl gave up after 30s)"
[[ $(cat "$work/held-code") == 404 ]] || fail "the released request got HTTP $(cat "$work/held-code"), want 404"
req PUT /_control/delay application/json '{"path":"(","seconds":5}'
expect 400 .reason '"BadRequest"'

log "the request log shows the executor-facing requests with their content types"
req GET /_control/requests
expect 200 '[.items[] | select(.path | startswith("/_control"))] | length' 0
expect 200 "[.items[] | select(.method == \"PATCH\" and .path == \"$WEB\") | [.contentType, .query.fieldManager, .body.spec.replicas]][0]" \
  '["application/apply-patch+yaml","sreworks",1]'
expect 200 "[.items[] | select(.method == \"DELETE\") | .path]" "[\"$WEB\"]"
last=$(jqb '.items[-1].id')
req GET "/_control/requests?since=$last"
expect 200 '.items | length' 0

log "k8s emulator smoke test passed"
