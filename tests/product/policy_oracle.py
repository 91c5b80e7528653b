"""The oslo.policy side of the authorization differential (tests/product/policy.rs).

Reads from stdin {"files": [{"text": policy.yaml text, "checks": [check strings]}],
"identities": [{header: value}], "targets": [{key: value}]} and writes to stdout
a JSON list: for each file, check, identity and target (in that order) the
decision of the real oslo.policy: true, false, or null when it raised.

Each identity is the set of headers stonegate injects for it; the credentials are
what a keystonemiddleware-protected service builds from them
(oslo_context.RequestContext.from_environ), enforced as an oslo.policy Enforcer
does with the file's rules loaded by oslo.policy itself (Rules.load, default rule
"default").
"""

import json
import sys
import warnings

from oslo_config import cfg
from oslo_context import context
from oslo_policy import _parser, policy

warnings.simplefilter("ignore")
sys.setrecursionlimit(400)


def main():
    req = json.load(sys.stdin)
    contexts = []
    for headers in req["identities"]:
        environ = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
        contexts.append(context.RequestContext.from_environ(environ))
    out = []
    for f in req["files"]:
        enforcer = policy.Enforcer(cfg.ConfigOpts(), use_conf=False)
        enforcer.rules = policy.Rules.load(f["text"], "default")
        for rule in f["checks"]:
            check = _parser.parse_rule(rule)
            for ctx in contexts:
                for target in req["targets"]:
                    try:
                        out.append(bool(enforcer.enforce(check, dict(target), ctx)))
                    except Exception:
                        out.append(None)
    json.dump(out, sys.stdout)


main()
