#!/usr/bin/env python3
"""A Kubernetes API emulator over real HTTP for sreworks' black-box executor tests.

Usage: emulator.py [PORT]      (PORT 0 or absent: a free port)
The first line on stdout is the port it listens on (127.0.0.1). SIGTERM/SIGINT stop it.

Built on kmock (pinned in requirements.txt). Who does what:
  kmock   HTTP serving, parsing a URL into resource/namespace/name/action, recording every request,
          discovery (/api/v1, /apis, /apis/<g>, /apis/<g>/<v>, /version), the in-memory object store
          (with each object's history), GET of one object, Status-shaped error bodies, an event bus.
  ours    every write (POST, PUT, PATCH, DELETE) — kmock's would merge dicts blindly, answer 404 to an
          apply of a missing object and assign no metadata — so here: server-side apply (create or
          merge, field ownership per fieldManager, conflicts → 409 unless force=true), merge and JSON
          patches, the status subresource, server metadata (uid, resourceVersion from one increasing
          counter, generation bumped when anything but metadata/status changes, creationTimestamp),
          finalizers, delete preconditions; LIST/WATCH with labelSelector, fieldSelector,
          resourceVersion and timeoutSeconds; and the test controls under /_control/.
Test controls (never in the request log):
  PUT /_control/status/<API path of an object>   body = the object's new status (replaces it)
  GET /_control/requests[?since=ID]              the requests so far: id, method, path, query,
                                                 contentType, body (parsed JSON, else text)
  PUT /_control/delay                            body {"method": "PATCH", "path": REGEX, "seconds": N}:
                                                 matching API requests are recorded, then held up to
                                                 N seconds before they are served
  DELETE /_control/delay                         drops every delay; the requests they hold go on now
"""

import asyncio
import base64
import collections
import copy
import datetime
import json
import re
import secrets
import signal
import sys
import traceback
import uuid
from typing import Any, NamedTuple

import aiohttp.web
import attrs
import jsonpatch
import kmock
from kmock._internal import parsing  # private: patched below, version pinned in requirements.txt


@attrs.define
class Delay:
    """Holds API requests matching `method` (or '*') and `path` (searched) for up to `seconds`."""
    method: str
    path: re.Pattern
    seconds: float
    released: asyncio.Event = attrs.field(factory=asyncio.Event)

    def matches(self, request: kmock.Request) -> bool:
        return self.method in ('*', request.method.value) and self.path.search(request.url.path) is not None


class Kind(NamedTuple):
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    status: bool  # has a status subresource: writes to the object itself leave status alone

    @property
    def api_version(self) -> str:
        return f'{self.group}/{self.version}' if self.group else self.version


KINDS = [
    Kind('', 'v1', 'namespaces', 'Namespace', False, True),
    Kind('', 'v1', 'configmaps', 'ConfigMap', True, False),
    Kind('', 'v1', 'secrets', 'Secret', True, False),
    Kind('', 'v1', 'services', 'Service', True, True),
    Kind('', 'v1', 'persistentvolumeclaims', 'PersistentVolumeClaim', True, True),
    Kind('apps', 'v1', 'deployments', 'Deployment', True, True),
    Kind('apps', 'v1', 'statefulsets', 'StatefulSet', True, True),
    Kind('batch', 'v1', 'jobs', 'Job', True, True),
    Kind('networking.k8s.io', 'v1', 'ingresses', 'Ingress', True, True),
    Kind('autoscaling', 'v2', 'horizontalpodautoscalers', 'HorizontalPodAutoscaler', True, True),
]
BY_RESOURCE = {(k.group, k.version, k.plural): k for k in KINDS}
NAMESPACES = BY_RESOURCE['', 'v1', 'namespaces']
NS_RESOURCE = kmock.resource('', 'v1', 'namespaces')
VERBS = {'create', 'delete', 'get', 'list', 'patch', 'update', 'watch'}
APPLY, MERGE, STRATEGIC, JSON_PATCH = ('application/apply-patch+yaml', 'application/merge-patch+json',
                                      'application/strategic-merge-patch+json', 'application/json-patch+json')
SERVER_META = ('uid', 'creationTimestamp', 'generation', 'resourceVersion', 'deletionTimestamp',
               'deletionGracePeriodSeconds', 'managedFields', 'selfLink')
USER_META = ('labels', 'annotations', 'finalizers', 'ownerReferences')  # fields a manager can own
EVENT_WINDOW = 10_000  # watch history kept for ?resourceVersion=; older → 410 Expired, as etcd compaction
REASONS = {400: 'BadRequest', 404: 'NotFound', 405: 'MethodNotAllowed', 409: 'Conflict',
           410: 'Expired', 415: 'UnsupportedMediaType', 422: 'Invalid'}
MISSING = object()

# kmock cannot parse the Namespace resource's own URLs: /api/v1/namespaces raises, and
# /api/v1/namespaces/x reads as "namespace x, no resource". Fix those shapes, defer to kmock otherwise.
_kmock_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    p = path.strip('/').split('/')
    if p[:3] == ['api', 'v1', 'namespaces'] and (len(p) <= 4 or len(p) == 5 and p[4] in ('status', 'finalize')):
        return parsing.ParsedPath('', 'v1', 'namespaces', None, *(p[3:5] + [None, None])[:2])
    return _kmock_parse_path(path)


parsing.parse_path = _parse_path


def error(status: int, message: str, reason: str | None = None, **details: Any) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=status, reason=reason or REASONS[status], message=message, details=details)


def header(request: kmock.Request, name: str, default: str = '') -> str:
    return next((v for k, v in request.headers.items() if k.lower() == name.lower()), default)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def leaves(obj: Any, prefix: tuple = ()) -> dict[tuple, Any]:
    """Field paths to values; lists and scalars are atomic (no merge keys, unlike a real server)."""
    if not isinstance(obj, dict) or not obj:
        return {prefix: obj} if prefix else {}
    return {p: v for k, sub in obj.items() for p, v in leaves(sub, prefix + (k,)).items()}


def owned(obj: dict) -> dict:
    """The part of an object field managers own: everything but identity, server metadata and status."""
    out = {k: v for k, v in obj.items() if k not in ('apiVersion', 'kind', 'metadata', 'status')}
    meta = {k: v for k, v in (obj.get('metadata') or {}).items() if k in USER_META}
    return {**out, 'metadata': meta} if meta else out


def merge(base: Any, patch: Any, nulls_delete: bool) -> Any:
    """Apply's merge (nulls kept) or RFC 7386 merge patch (nulls delete)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(base) if isinstance(base, dict) else {}
    for k, v in patch.items():
        if v is None and nulls_delete:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v, nulls_delete)
    return out


def spec_of(obj: dict) -> dict:
    """What a generation counts: a real server bumps it on spec changes, never on metadata or status."""
    return {k: v for k, v in obj.items() if k not in ('apiVersion', 'kind', 'metadata', 'status')}


def with_status(obj: dict, status: Any) -> dict:
    out = {k: v for k, v in obj.items() if k != 'status'}
    return out if status is None else {**out, 'status': status}


def remove_path(obj: dict, path: tuple) -> None:
    parent = obj
    for k in path[:-1]:
        parent = parent.get(k) if isinstance(parent, dict) else None
    if isinstance(parent, dict):
        parent.pop(path[-1], None)
        if not parent and len(path) > 1:
            remove_path(obj, path[:-1])


def parse_selectors(params: dict) -> list[tuple]:
    """labelSelector (=, ==, !=, in, notin, key, !key) and fieldSelector (metadata.name/namespace)."""
    reqs = []
    term = re.compile(r'\s*(?:!\s*(?P<absent>[\w./-]+)|(?P<key>[\w./-]+)\s*(?:(?P<op>==|!=|=)\s*(?P<val>[\w.-]*)'
                      r'|\s+(?P<set>in|notin)\s*\((?P<vals>[^)]*)\))?)\s*')
    for t in re.split(r',(?![^(]*\))', params.get('labelSelector', '')):
        if not t.strip():
            continue
        if not (m := term.fullmatch(t)):
            raise error(400, f'unable to parse requirement: {t!r}')
        if m['absent']:
            reqs.append(('label', m['absent'], '!', None))
        elif m['set']:
            reqs.append(('label', m['key'], m['set'], {v.strip() for v in m['vals'].split(',')}))
        else:
            reqs.append(('label', m['key'], m['op'] or 'exists', m['val']))
    for t in filter(None, params.get('fieldSelector', '').split(',')):
        if not (m := re.fullmatch(r'\s*metadata\.(name|namespace)\s*(==|!=|=)\s*([\w.-]*)\s*', t)):
            raise error(400, f'field selector not supported by the emulator: {t!r}')
        reqs.append(('field', m[1], m[2], m[3]))
    return reqs


def selected(obj: dict, reqs: list[tuple]) -> bool:
    meta = obj.get('metadata') or {}
    for where, key, op, want in reqs:
        values = meta.get('labels') or {} if where == 'label' else {key: meta.get(key)}
        have = values.get(key, MISSING)
        if op in ('exists', 'in', '=', '==') and have is MISSING or op == '!' and have is not MISSING:
            return False
        if op in ('=', '==') and have != want or op == '!=' and have == want or \
                op == 'in' and have not in want or op == 'notin' and have in want:
            return False
    return True


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    _rv: int = 0  # one counter for all objects, as etcd's revision
    _expired_rv: int = 0  # watches from below this answer 410
    _events: collections.deque = attrs.field(factory=lambda: collections.deque(maxlen=EVENT_WINDOW))
    _owners: dict = attrs.field(factory=dict)  # object key → {field path: {managers}}
    _delays: list = attrs.field(factory=list)  # Delay rules from PUT /_control/delay, first match wins

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for k in KINDS:
            self.resources[kmock.resource(k.group, k.version, k.plural)] = kmock.ResourceInfo(
                kind=k.kind, singular=k.kind.lower(), namespaced=k.namespaced, verbs=VERBS,
                subresources={'status'} if k.status else set())
        self['get /_control/requests'] << self._control_requests
        self['put', re.compile(r'/_control/status/.+')] << self._control_status
        self['put /_control/delay'] << self._control_delay
        self['delete /_control/delay'] << self._control_release

    async def seed(self) -> None:
        """The namespaces every cluster has, so objects can be written into `default` at once."""
        async with self._lock:
            for name in ('default', 'kube-system', 'kube-public'):
                await self._commit(NAMESPACES, (NS_RESOURCE, None, name), None, {'metadata': {'name': name}}, {})

    async def close_watches(self) -> None:
        for k in KINDS:
            await self._buses[kmock.resource(k.group, k.version, k.plural)].put({'type': '_CLOSE'})

    # ---- kmock overrides: discovery detail kube-rs needs, real Status reasons, our writes
    async def _serve_api(self, request: kmock.Request) -> dict:
        # k8s-openapi's APIVersions requires serverAddressByClientCIDRs; kmock omits it.
        addr = f'{request.url.host}:{request.url.port}'
        return {'kind': 'APIVersions', 'versions': ['v1'],
                'serverAddressByClientCIDRs': [{'clientCIDR': '0.0.0.0/0', 'serverAddress': addr}]}

    async def _serve_version(self, request: kmock.Request) -> dict:
        found = await super()._serve_version(request)
        return {**found, 'groupVersion': found['groupVersion'].lstrip('/')}  # kmock says "/v1" for core

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if not isinstance(exc, kmock.KubernetesError):
            traceback.print_exception(exc, file=sys.stderr)
            return await super()._render_error(exc)
        reason = 'NotFound' if isinstance(exc, kmock.KubernetesNotFoundError) else exc.reason
        return aiohttp.web.json_response(
            {'apiVersion': 'v1', 'kind': 'Status', 'metadata': {}, 'status': 'Failure', 'code': exc.status,
             'reason': reason, 'message': exc.message, 'details': exc.details or {}}, status=exc.status)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # Already recorded (kmock logs before handling): a held request shows in the log at once.
        # Held outside the lock, so everything else is served meanwhile.
        if not request.url.path.startswith('/_control/'):
            if held := next((d for d in self._delays if d.matches(request)), None):
                try:
                    await asyncio.wait_for(held.released.wait(), held.seconds)
                except TimeoutError:
                    pass
        if (request.method.value == 'GET' and request.name is not None and request.subresource is None
                and request.params.get('watch') not in ('true', '1')):
            return await self._get_one(request)
        if request.resource is None or request.method.value not in ('POST', 'PUT', 'PATCH', 'DELETE'):
            return await super()._handle(request)
        async with self._lock:
            status, obj = await self._write(request)
        return aiohttp.web.json_response(obj, status=status)

    async def _get_one(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # kmock finds one object by checking every stored object against the request (slow beyond a
        # few hundred objects); the emulator looks it up by key instead.
        kind = self._kind(request)
        if kind.namespaced and request.namespace is None:
            raise error(404, f'{kind.plural} are namespaced: the URL needs /namespaces/<ns>/')
        obj = self._live((request.resource, request.namespace, request.name))
        if obj is None:
            raise error(404, f'{kind.plural} "{request.name}" not found',
                        name=request.name, group=kind.group, kind=kind.plural)
        return aiohttp.web.json_response(obj)

    # ---- writes (ours)
    def _kind(self, request: kmock.Request) -> Kind:
        r = request.resource
        kind = BY_RESOURCE.get((r.group, r.version, r.plural)) if r else None
        if kind is None or (request.namespace is not None and not kind.namespaced):
            raise error(404, f'the server could not find the requested resource ({request.url.path})')
        return kind

    def _live(self, key: tuple) -> dict | None:
        obj = self._objects[key] if key in self._objects else None
        return None if obj is None or obj.deleted else copy.deepcopy(obj.raw)

    async def _write(self, request: kmock.Request) -> tuple[int, dict]:
        kind, params = self._kind(request), request.params
        if request.subresource not in (None, 'status') or (request.name is None) != (request.method == 'POST'):
            raise error(405, f'{request.method.value} {request.url.path} is not emulated')
        if kind.namespaced and request.namespace is None:
            raise error(404, f'{kind.plural} are namespaced: the URL needs /namespaces/<ns>/')
        if kind.namespaced and not self._live((NS_RESOURCE, None, request.namespace)):
            raise error(404, f'namespaces "{request.namespace}" not found', name=request.namespace, kind='namespaces')
        ctype = header(request, 'Content-Type').split(';')[0].strip()
        try:
            body = json.loads(request.body) if request.body else None
        except ValueError:
            raise error(400, 'the body is not JSON (the emulator reads JSON only, which is also YAML)')
        manager = params.get('fieldManager') or header(request, 'User-Agent', 'unknown').split('/')[0]
        meta = (body.get('metadata') or {}) if isinstance(body, dict) else {}
        if meta.get('namespace') not in (None, request.namespace):
            raise error(400, 'the namespace of the object does not match the namespace of the request')
        name = request.name or meta.get('name') or (
            meta.get('generateName') and meta['generateName'] + secrets.token_hex(3))
        if not name:
            raise error(422, 'name or generateName is required', reason='Invalid')
        key = (request.resource, request.namespace, name)
        old, dry = self._live(key), params.get('dryRun') == 'All'
        details = {'name': name, 'group': kind.group, 'kind': kind.plural}
        if request.method == 'DELETE':
            return await self._delete(kind, key, old, body or {}, details)
        if request.method == 'POST':
            if old is not None:
                raise error(409, f'{kind.plural} "{name}" already exists', reason='AlreadyExists', **details)
            if not isinstance(body, dict) or meta.get('resourceVersion'):
                raise error(400, 'the body must be an object without metadata.resourceVersion')
            new = {**body, 'metadata': {**meta, 'name': name}}
            return await self._commit(kind, key, None, new, self._owners_after(key, None, new, manager), dry)
        if meta.get('resourceVersion') and old and meta['resourceVersion'] != old['metadata']['resourceVersion']:
            raise error(409, 'the object has been modified; please apply your changes to the latest version',
                        **details)
        if request.method == 'PATCH' and ctype == APPLY and request.subresource is None:
            return await self._apply(kind, key, old, body, params, details, dry)
        if old is None:
            raise error(404, f'{kind.plural} "{name}" not found', **details)
        if request.method == 'PUT':
            new = body
        elif ctype in (MERGE, STRATEGIC, APPLY) and isinstance(body, dict):
            new = merge(old, body, nulls_delete=True)  # strategic merge approximated: lists replaced
        elif ctype == JSON_PATCH and isinstance(body, list):
            try:
                new = jsonpatch.apply_patch(old, body)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
                raise error(422, f'json patch failed: {e}', reason='Invalid')
        else:
            raise error(415, f'content type {ctype!r} with this body is not supported for {request.method.value}')
        if not isinstance(new, dict):
            raise error(400, 'the body must be an object')
        if request.subresource == 'status':
            new = with_status(old, new.get('status'))
        elif kind.status:  # writes to the object itself leave its status alone
            new = with_status(new, old.get('status'))
        return await self._commit(kind, key, old, new, self._owners_after(key, old, new, manager), dry)

    async def _apply(self, kind: Kind, key: tuple, old: dict | None, cfg: Any, params: dict,
                     details: dict, dry: bool) -> tuple[int, dict]:
        manager, force = params.get('fieldManager'), params.get('force') == 'true'
        if not manager:
            raise error(400, 'fieldManager is required for apply requests')
        if not isinstance(cfg, dict) or (cfg.get('apiVersion'), cfg.get('kind')) != (kind.api_version, kind.kind):
            raise error(400, f'apply needs apiVersion {kind.api_version!r} and kind {kind.kind!r} in the body')
        if (cfg.get('metadata') or {}).get('name') != key[2]:
            raise error(400, 'metadata.name in the body must match the name in the URL')
        if kind.status:
            cfg = {k: v for k, v in cfg.items() if k != 'status'}
        owners = {p: set(w) for p, w in self._owners.get(key, {}).items()}
        want, have = leaves(owned(cfg)), leaves(owned(old or {}))
        conflicts = [(p, sorted(owners.get(p, set()) - {manager})) for p, v in want.items()
                     if have.get(p, MISSING) not in (MISSING, v) and owners.get(p, set()) - {manager}]
        if conflicts and not force:
            causes = [{'type': 'FieldManagerConflict', 'field': '.' + '.'.join(p),
                       'message': f'conflict with {", ".join(map(repr, who))}'} for p, who in conflicts]
            raise error(409, f'Apply failed with {len(causes)} conflict(s): ' +
                        '; '.join(f'{c["message"]}: {c["field"]}' for c in causes), causes=causes, **details)
        new = copy.deepcopy(old) if old else {}
        for p, who in list(owners.items()):
            if manager in who and p not in want:  # the manager stopped applying it: it goes if nobody else owns it
                who.discard(manager)
                if not who:
                    remove_path(new, p)
                    del owners[p]
        new = merge(new, cfg, nulls_delete=False)
        for p, v in want.items():
            owners[p] = owners.get(p, set()) | {manager} if have.get(p, MISSING) == v else {manager}
        return await self._commit(kind, key, old, new, owners, dry)

    def _owners_after(self, key: tuple, old: dict | None, new: dict, manager: str) -> dict:
        """A non-apply write takes over the fields whose value it changed (no conflicts, as the real one)."""
        owners = {p: set(w) for p, w in self._owners.get(key, {}).items()}
        have = leaves(owned(old or {}))
        for p, v in leaves(owned(new)).items():
            if have.get(p, MISSING) != v:
                owners[p] = {manager}
        return owners

    async def _commit(self, kind: Kind, key: tuple, old: dict | None, new: dict, owners: dict,
                      dry: bool = False, server_meta: dict | None = None) -> tuple[int, dict]:
        """Stamps server metadata on a computed new state, stores it and tells the watchers."""
        new = copy.deepcopy(new)
        new['apiVersion'], new['kind'] = kind.api_version, kind.kind
        meta = new['metadata'] = {**(new.get('metadata') or {}), 'name': key[2]}
        meta.pop('namespace', None) if key[1] is None else meta.update(namespace=key[1])
        for f in SERVER_META:
            meta.pop(f, None)
            if old is not None and f in old['metadata']:
                meta[f] = old['metadata'][f]
        meta.update(server_meta or {})  # what clients may not set, only the server (deletionTimestamp)
        if kind.kind == 'Secret' and 'stringData' in new:  # the API server folds stringData into data
            new['data'] = {**(new.get('data') or {}), **{k: base64.b64encode(v.encode()).decode()
                                                         for k, v in new.pop('stringData').items()}}
        if kind.kind == 'Namespace' and old is None:
            new.setdefault('status', {'phase': 'Active'})
        if old is None:
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        elif new == old:  # nothing changed: no new resourceVersion, no event (as the real server)
            if not dry:
                self._owners[key] = owners
            return 200, old
        else:
            meta['generation'] = old['metadata'].get('generation', 1) + (spec_of(new) != spec_of(old))
        if dry:
            return (201 if old is None else 200), new
        self._rv += 1
        meta['resourceVersion'] = str(self._rv)
        if meta.get('deletionTimestamp') and not meta.get('finalizers'):  # the last finalizer went
            return await self._remove(key, new)
        if key in self._objects:
            self._objects[key].history.append(new)
        else:
            self._objects[key] = new
        live = set(leaves(owned(new)))
        self._owners[key] = {p: w for p, w in owners.items() if p in live}
        await self._emit('ADDED' if old is None else 'MODIFIED', key[0], new)
        return (201 if old is None else 200), new

    async def _delete(self, kind: Kind, key: tuple, old: dict | None, opts: dict,
                      details: dict) -> tuple[int, dict]:
        if old is None:
            raise error(404, f'{kind.plural} "{key[2]}" not found', **details)
        for field, have in (('uid', old['metadata']['uid']), ('resourceVersion', old['metadata']['resourceVersion'])):
            want = (opts.get('preconditions') or {}).get(field)
            if want and want != have:
                raise error(409, f'Precondition failed: {field} in precondition: {want}, in object meta: {have}',
                            **details)
        if old['metadata'].get('finalizers'):  # the finalizers' owners must clear them first
            if old['metadata'].get('deletionTimestamp'):
                return 200, old
            return await self._commit(kind, key, old, old, self._owners.get(key, {}),
                                      server_meta={'deletionTimestamp': now()})
        self._rv += 1
        old['metadata']['resourceVersion'] = str(self._rv)
        return await self._remove(key, old)

    async def _remove(self, key: tuple, last: dict) -> tuple[int, dict]:
        self._objects[key].history.append(last)
        self._objects[key].delete()  # kmock's soft delete: the history stays for in-process assertions
        self._owners.pop(key, None)
        await self._emit('DELETED', key[0], last)
        return 200, last

    async def _emit(self, type_: str, resource: kmock.resource, obj: dict) -> None:
        if len(self._events) == self._events.maxlen:
            self._expired_rv = self._events[0][0]
        self._events.append((self._rv, resource, {'type': type_, 'object': obj}))
        await self._buses[resource].put({'type': type_, 'object': obj})

    # ---- reads (ours on top of kmock's routing; GET of one object stays kmock's _serve_fetch)
    def _matches(self, request: kmock.Request, reqs: list, obj: dict) -> bool:
        meta = obj.get('metadata') or {}
        return ((request.namespace is None or meta.get('namespace') == request.namespace) and
                (request.name is None or meta.get('name') == request.name) and selected(obj, reqs))

    def _current(self, request: kmock.Request, reqs: list) -> list[dict]:
        return [obj.raw for (res, _, _), obj in self._objects.items()
                if res == request.resource and not obj.deleted and self._matches(request, reqs, obj.raw)]

    async def _serve_list(self, request: kmock.Request) -> Any:
        if request.params.get('watch') in ('1', 'True'):  # kmock takes only watch=true for a watch
            return self._serve_watch(request)
        kind, reqs = self._kind(request), parse_selectors(request.params)
        async with self._lock:
            return {'apiVersion': kind.api_version, 'kind': f'{kind.kind}List',
                    'metadata': {'resourceVersion': str(self._rv)}, 'items': self._current(request, reqs)}

    async def _serve_watch(self, request: kmock.Request):
        self._kind(request)
        reqs, rv = parse_selectors(request.params), request.params.get('resourceVersion') or '0'
        if not rv.isdigit():
            raise error(400, f'resourceVersion {rv!r} is not a number')
        timeout = float(request.params.get('timeoutSeconds') or 0) or None
        bus = self._buses[request.resource]
        async with self._lock:
            if rv == '0':  # no starting point: the current objects as ADDED, then what happens next
                backlog = [{'type': 'ADDED', 'object': o} for o in self._current(request, reqs)]
            elif int(rv) < self._expired_rv:
                backlog = [{'type': 'ERROR', 'object': {'apiVersion': 'v1', 'kind': 'Status', 'status': 'Failure',
                            'code': 410, 'reason': 'Expired', 'message': f'too old resource version: {rv}'}}]
            else:
                backlog = [e for r, res, e in self._events if r > int(rv) and res == request.resource
                           and self._matches(request, reqs, e['object'])]
            marker = await bus.mark()  # under the lock: no write can fall between backlog and live events
        yield b''  # sends the headers: the client sees the watch open even before any event
        try:
            for event in backlog:
                yield event
            if backlog and backlog[0]['type'] == 'ERROR':
                return
            live = aiter(bus.stream(since=marker))
            deadline = asyncio.get_running_loop().time() + timeout if timeout else None
            while True:
                left = deadline - asyncio.get_running_loop().time() if deadline else None
                try:
                    event = await asyncio.wait_for(anext(live), left)
                except TimeoutError:
                    return  # timeoutSeconds passed: the stream ends, as the real server's
                if event['type'] == '_CLOSE':
                    return
                if self._matches(request, reqs, event['object']):
                    yield event
        finally:
            await bus.unmark(marker)

    # ---- test controls (ours)
    async def _control_status(self, request: kmock.Request) -> dict:
        path = request.url.path.removeprefix('/_control/status')
        p = parsing.parse_path(path)
        target = kmock.Request(resource=kmock.resource(p.group, p.version, p.plural), namespace=p.namespace,
                               name=p.name, url=request.url.with_path(path))
        kind = self._kind(target)
        try:
            status = json.loads(request.body or b'null')
        except ValueError:
            raise error(400, 'the body must be the status as JSON')
        key = (target.resource, p.namespace, p.name)
        async with self._lock:
            if p.name is None or (old := self._live(key)) is None:
                raise error(404, f'no object at {path}')
            _, obj = await self._commit(kind, key, old, with_status(old, status), self._owners.get(key, {}))
        return obj

    async def _control_delay(self, request: kmock.Request) -> dict:
        try:
            spec = json.loads(request.body or b'null')
        except ValueError:
            spec = None
        if not isinstance(spec, dict) or not isinstance(spec.get('path'), str) or \
                not isinstance(spec.get('seconds'), (int, float)) or not 0 < spec['seconds'] <= 3600:
            raise error(400, 'the body must be {"method": "PATCH", "path": REGEX, "seconds": 0 < N <= 3600}')
        method = str(spec.get('method') or '*').upper()
        try:
            path = re.compile(spec['path'])
        except re.error as e:
            raise error(400, f'path is not a regular expression: {e}')
        self._delays.append(Delay(method=method, path=path, seconds=float(spec['seconds'])))
        return {'method': method, 'path': path.pattern, 'seconds': float(spec['seconds']),
                'delays': len(self._delays)}

    async def _control_release(self, request: kmock.Request) -> dict:
        dropped, self._delays = self._delays, []
        for d in dropped:
            d.released.set()
        return {'released': len(dropped)}

    async def _control_requests(self, request: kmock.Request) -> dict:
        since = request.params.get('since', '-1')
        if not since.lstrip('-').isdigit():
            raise error(400, f'since={since!r} is not a request id')
        since = int(since)
        items = []
        for r in self._requests:
            if r.id <= since or r.url.path.startswith('/_control/'):
                continue
            try:
                body = json.loads(r.body) if r.body else None
            except ValueError:
                body = r.text
            items.append({'id': r.id, 'method': r.method.value, 'path': r.url.path, 'query': dict(r.params),
                          'contentType': header(r, 'Content-Type') or None,
                          'authorization': header(r, 'Authorization') or None, 'body': body})
        return {'items': items}


async def main(argv: list[str]) -> None:
    port = int(argv[1]) if len(argv) > 1 else 0
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with Emulator() as emulator, kmock.Server(emulator, host='127.0.0.1', port=port) as server:
        await emulator.seed()
        print(server.port, flush=True)
        await stop.wait()
        await emulator.close_watches()  # else aiohttp's shutdown waits for each watch's client to hang up


if __name__ == '__main__':
    asyncio.run(main(sys.argv))
