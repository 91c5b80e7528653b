"""A real OAuth1 token from the harness Keystone (its OS-OAUTH1 API, as
python-keystoneclient and keystoneauth1 drive it), for the local-validation
test that says OAuth1 tokens are always validated online
(tests/product/local.rs).

    python oauth1_token.py AUTH_URL [COUNT]

ADMIN_PASSWORD comes from the environment. admin creates a consumer, and
authorizes its request token on project admin with its role admin (Keystone's
policy: authorizing needs admin); the access token authenticates (method
oauth1), COUNT times (default 1). Prints one token a line.
"""
import os
import sys

from keystoneauth1 import session
from keystoneauth1.extras import oauth1 as ksa_oauth1
from keystoneauth1.identity import v3
from keystoneclient.v3 import client


def main():
    auth_url = sys.argv[1]
    admin_sess = session.Session(auth=v3.Password(
        auth_url=auth_url, username="admin", password=os.environ["ADMIN_PASSWORD"],
        user_domain_id="default", project_name="admin", project_domain_id="default"))
    admin = client.Client(session=admin_sess)
    project_id = admin_sess.get_project_id()
    role = [r for r in admin.roles.list() if r.name == "admin"][0]
    consumer = admin.oauth1.consumers.create(description="stonegate oauth1 test")
    request_token = admin.oauth1.request_tokens.create(consumer.id, consumer.secret, project_id)
    authorized = admin.oauth1.request_tokens.authorize(request_token.key, [role.id])
    access = admin.oauth1.access_tokens.create(
        consumer.id, consumer.secret, request_token.key, request_token.secret,
        authorized.oauth_verifier)
    for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 1):
        # A plugin per token: a plugin keeps the token it obtained.
        auth = ksa_oauth1.V3OAuth1(auth_url=auth_url, consumer_key=consumer.id,
                                   consumer_secret=consumer.secret,
                                   access_key=access.key, access_secret=access.secret)
        print(session.Session(auth=auth).get_token())


main()
