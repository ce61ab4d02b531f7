"""Helpers for tests of berth's ECR API and auth: `berth keys`, a small SigV4 signer (to
sign with a chosen date), raw ECR calls and /v2 credentials. boto3 clients and the aws CLI
come from clients.py.

Uses berth_harness for servers and HTTP; run the tests with /usr/bin/python3 (Debian's
python3-boto3).
"""

import base64
import datetime
import hashlib
import hmac
import json
import urllib.parse

import clients as c  # first: it cleans the environment botocore reads

import berth_harness as h

REGION = c.REGION
TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."


# ---------------------------------------------------------------------------------------------
# berth keys


def keys_create(server, name, *permissions):
    """`berth keys create NAME PERMISSION...`: assert it printed exactly the two lines
    AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=...; return (key id, secret)."""
    rc, out, err = h.run_berth(["keys", "create", name] + list(permissions), server=server,
                               split=True)
    if rc != 0:
        raise AssertionError("berth keys create %s failed (%d): %s" % (name, rc, err))
    lines = out.splitlines()
    if len(lines) != 2 or not lines[0].startswith("AWS_ACCESS_KEY_ID=") or \
            not lines[1].startswith("AWS_SECRET_ACCESS_KEY="):
        raise AssertionError("berth keys create printed %r" % out)
    return lines[0].split("=", 1)[1], lines[1].split("=", 1)[1]


def keys_delete(server, akid):
    rc, out, err = h.run_berth(["keys", "delete", akid], server=server, split=True)
    if rc != 0:
        raise AssertionError("berth keys delete %s failed (%d): %s" % (akid, rc, err))


def error_code(exc):
    """The AWS error code of a botocore ClientError."""
    return exc.response.get("Error", {}).get("Code")


# ---------------------------------------------------------------------------------------------
# SigV4, for requests boto3 would not make (a shifted clock)


def _hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def sigv4_headers(url, body, akid, secret, op, when=None, region=REGION, extra=None,
                  unsigned=()):
    """Headers of a signed ECR POST as botocore builds them, signed at `when` (a UTC
    datetime; default now). Headers named in `unsigned` (lower case) are sent but left
    out of SignedHeaders, as a careless signer or a tampered request would."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    parts = urllib.parse.urlsplit(url)
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "Host": parts.netloc,
        "X-Amz-Date": amz_date,
        "X-Amz-Target": TARGET_PREFIX + op,
    }
    headers.update(extra or {})
    names = sorted(k.lower() for k in headers if k.lower() not in unsigned)
    lower = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    canonical = "\n".join([
        "POST",
        urllib.parse.quote(parts.path or "/", safe="/~"),
        "",
        "".join("%s:%s\n" % (n, lower[n]) for n in names),
        ";".join(names),
        hashlib.sha256(body).hexdigest(),
    ])
    scope = "%s/%s/ecr/aws4_request" % (amz_date[:8], region)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + secret).encode(), amz_date[:8])
    key = _hmac(_hmac(_hmac(key, region), "ecr"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, "
                                "Signature=%s" % (akid, scope, ";".join(names), signature))
    return headers


def ecr_call(reg, op, payload, headers=None):
    """POST one ECR call with the given headers (unsigned unless they carry a signature);
    return (status, parsed JSON body, Response)."""
    body = json.dumps(payload).encode()
    hdrs = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET_PREFIX + op}
    hdrs.update(headers or {})
    resp = reg.request("POST", "/", headers=hdrs, body=body)
    try:
        doc = resp.json()
    except ValueError:
        doc = None
    return resp.status, doc, resp


def signed_call(server, op, payload, akid, secret, when=None, region=REGION, unsigned=()):
    body = json.dumps(payload).encode()
    headers = sigv4_headers(server.base_url + "/", body, akid, secret, op, when=when,
                            region=region, unsigned=unsigned)
    resp = server.registry().request("POST", "/", headers=headers, body=body)
    return resp.status, resp.json(), resp


# ---------------------------------------------------------------------------------------------
# /v2 credentials


def basic(user, password):
    token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    return {"Authorization": "Basic " + token}


def login_password(ecr):
    """GetAuthorizationToken through boto3 -> the docker login password."""
    data = ecr.get_authorization_token()["authorizationData"]
    user, password = base64.b64decode(data[0]["authorizationToken"]).decode().split(":")
    assert user == "AWS", user
    return password


class AuthRegistry(h.Registry):
    """A harness Registry that adds fixed headers (credentials) to every request."""

    def __init__(self, base_url, headers, keep_alive=False):
        super().__init__(base_url, keep_alive=keep_alive)
        self.auth_headers = dict(headers)

    def request(self, method, path, headers=None, body=None, chunked=False,
                timeout=h.REQUEST_TIMEOUT):
        merged = dict(self.auth_headers)
        merged.update(headers or {})
        return super().request(method, path, headers=merged, body=body, chunked=chunked,
                               timeout=timeout)


class KeyedServerTestCase(h.ServerTestCase):
    """A ServerTestCase whose berth has two access keys made by `berth keys create`:
    cls.admin (every permission) and cls.puller (pull:team/*), each (id, secret); with
    cls.admin_reg (a Registry that sends the admin's key as Basic), cls.ecr (boto3 signing
    as the admin) and cls.host (127.0.0.1:port)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = keys_create(cls.server, "admin")
        cls.puller = keys_create(cls.server, "puller", "pull:team/*")
        cls.admin_reg = AuthRegistry(cls.server.base_url, basic(*cls.admin))
        cls.host = "127.0.0.1:%d" % cls.server.port
        cls.ecr = c.ecr_client(cls.server, *cls.admin)
