"""The CADF audit product test's Python side (tests/product/audit.rs), run in
the harness venv.

Reads one JSON document on stdin:

    {"audit_map_file": PATH,
     "cases": [{"notifications": [stonegate's request and response notifications],
                "upstream": null | {"method", "path_qs", "headers": {...},
                                    "remote_addr", "status", "request_id"}}]}

and, for every case:

1. rebuilds each of stonegate's payloads as pycadf objects (pycadf's own
   types and their validating descriptors: a wrong type or value raises) and
   checks Event.is_valid() and that as_dict() gives back exactly the payload
   (the credential's token aside: pycadf masks whatever it is given);
2. when "upstream" is given (the request as the upstream received it from
   stonegate), runs keystonemiddleware's audit filter (its AuditMiddleware,
   with the same audit map, notifications captured) on that request in front
   of a WSGI app answering "status", and compares its two payloads with
   stonegate's field by field, leaving out only what differs by design:
   ids, times, the correlation tag's value and the credential's token
   (keystonemiddleware writes a masked token, stonegate its SHA-256
   fingerprint).

Prints {"problems": [...]} and exits 0; the Rust test asserts the list is empty.
"""

import copy
import json
import sys

from keystonemiddleware import audit
from keystonemiddleware.audit import _api
from pycadf import (cadftaxonomy, credential, endpoint, event, host, reason,
                    reporterstep, resource)


def build_resource(d, cls=resource.Resource, **extra):
    kwargs = {}
    if 'host' in d:
        kwargs['host'] = host.Host(**d['host'])
    if 'credential' in d:
        c = d['credential']
        kwargs['credential'] = _api.KeystoneCredential(
            token=c['token'], identity_status=c.get('identity_status'))
    r = cls(id=d['id'], typeURI=d.get('typeURI', cadftaxonomy.UNKNOWN),
            name=d.get('name'), **kwargs, **extra)
    for a in d.get('addresses', []):
        r.add_address(endpoint.Endpoint(url=a['url'], name=a.get('name')))
    return r


def build_event(p):
    i = p['initiator']
    initiator = build_resource(i, cls=_api.ClientResource,
                               project_id=i.get('project_id'),
                               request_id=i.get('request_id'),
                               global_request_id=i.get('global_request_id'))
    ev = event.Event(eventType=p['eventType'], id=p['id'], eventTime=p['eventTime'],
                     action=p['action'], outcome=p['outcome'], initiator=initiator,
                     target=build_resource(p['target']),
                     observer=resource.Resource(id=p['observer']['id']))
    if 'reason' in p:
        ev.reason = reason.Reason(reasonType=p['reason']['reasonType'],
                                  reasonCode=p['reason']['reasonCode'])
    for step in p.get('reporterchain', []):
        ev.add_reporterstep(reporterstep.Reporterstep(
            role=step['role'], reporterTime=step['reporterTime'],
            reporter=resource.Resource(id=step['reporter']['id'])))
    ev.requestPath = p['requestPath']
    for t in p.get('tags', []):
        ev.add_tag(t)
    return ev


def without_token(d):
    d = copy.deepcopy(d)
    d['initiator']['credential'].pop('token', None)
    return d


def comparable(p):
    p = without_token(p)
    for k in ('id', 'eventTime'):
        p.pop(k, None)
    for step in p.get('reporterchain', []):
        step.pop('reporterTime', None)
    p['tags'] = [t.split('=')[0] for t in p.get('tags', [])]
    return p


class Capture:
    def __init__(self):
        self.sent = []

    def notify(self, context, event_type, payload):
        self.sent.append((event_type, payload))


def kmw_events(map_file, up):
    capture = Capture()
    audit._notifier.create_notifier = lambda conf, log: capture

    def app(environ, start_response):
        start_response('%d X' % up['status'], [('Content-Type', 'text/plain')])
        return [b'']

    mw = audit.AuditMiddleware(app, audit_map_file=map_file, use_oslo_messaging='False')
    path, _, query = up['path_qs'].partition('?')
    environ = {
        'REQUEST_METHOD': up['method'], 'PATH_INFO': path, 'QUERY_STRING': query,
        'SCRIPT_NAME': '', 'SERVER_NAME': 'localhost', 'SERVER_PORT': '80',
        'SERVER_PROTOCOL': 'HTTP/1.1', 'wsgi.url_scheme': 'http',
        'wsgi.input': __import__('io').BytesIO(b''), 'wsgi.errors': sys.stderr,
        'REMOTE_ADDR': up['remote_addr'],
        'openstack.request_id': up['request_id'],
    }
    for k, v in up['headers'].items():
        key = k.upper().replace('-', '_')
        if key == 'CONTENT_TYPE' or key == 'CONTENT_LENGTH':
            environ[key] = v
        else:
            environ['HTTP_' + key] = v
    list(mw(environ, lambda *a: None))
    return capture.sent


def diff(path, a, b, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a:
                out.append('%s.%s: only keystonemiddleware has %r' % (path, k, b[k]))
            elif k not in b:
                out.append('%s.%s: only stonegate has %r' % (path, k, a[k]))
            else:
                diff('%s.%s' % (path, k), a[k], b[k], out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff('%s[%d]' % (path, i), x, y, out)
    elif a != b:
        out.append('%s: stonegate %r, keystonemiddleware %r' % (path, a, b))


def main():
    doc = json.load(sys.stdin)
    problems = []
    for n, case in enumerate(doc['cases']):
        ours = case['notifications']
        types = [m['event_type'] for m in ours]
        if types != ['audit.http.request', 'audit.http.response']:
            problems.append('case %d: event types %r' % (n, types))
            continue
        for m in ours:
            where = 'case %d %s' % (n, m['event_type'])
            if m.get('priority') != 'INFO' or not m.get('publisher_id') or not m.get('message_id'):
                problems.append('%s: not an oslo.messaging notification: %r' % (where, m))
            try:
                ev = build_event(m['payload'])
            except Exception as e:  # pycadf's validators raise ValueError
                problems.append('%s: pycadf refused it: %r' % (where, e))
                continue
            if not ev.is_valid():
                problems.append('%s: pycadf Event.is_valid() is False' % where)
            diff(where + ' (pycadf round trip)', without_token(m['payload']),
                 without_token(ev.as_dict()), problems)
        if case.get('upstream'):
            theirs = kmw_events(doc['audit_map_file'], case['upstream'])
            if [t for t, _ in theirs] != types:
                problems.append('case %d: keystonemiddleware sent %r' % (n, [t for t, _ in theirs]))
                continue
            for m, (t, p) in zip(ours, theirs):
                diff('case %d %s' % (n, t), comparable(m['payload']), comparable(p), problems)
    print(json.dumps({'problems': problems}))


if __name__ == '__main__':
    main()
