"""The pull-through cache through Debian's distribution registry 2.8.2 with its token
authentication (auth.token): a small token issuer started by the test signs ES256 JWTs
with a self-signed certificate that distribution trusts (rootcertbundle, x5c header),
and hands them out for Basic credentials; berth follows the Bearer challenge with the
rule's secret."""

import base64
import datetime
import json
import os
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

import clients as c  # first: it cleans the environment botocore reads

import berth_harness as h
import ecr_helpers as e
import ptc_helpers as p

USER, PASSWORD = "dmz-robot", "dmz-password-1f2e"
SERVICE, ISSUER = "dmz-registry", "test-issuer"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer(p.LoopbackServer):
    """GET /token?service=&scope=repository:NAME:ACTIONS with Basic USER:PASSWORD gives a
    JWT granting what was asked; anything else is 401."""

    def __init__(self, directory):
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth test token issuer")])
        now = datetime.datetime.utcnow()
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_path = os.path.join(directory, "token-ca.pem")
        with open(self.cert_path, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        self.requests = []
        issuer = self

        class Handler(p.QuietHandler):
            def do_GET(self):
                issuer.requests.append(self.path)
                want = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
                if self.headers.get("Authorization") != want:
                    return self.send(401, ctype=None)
                from urllib.parse import urlparse, parse_qs
                q = parse_qs(urlparse(self.path).query)
                access = []
                for scope in q.get("scope", []):
                    kind, name, actions = scope.split(":")
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
                return self.send(200, json.dumps({"token": issuer.token(access),
                                                  "expires_in": 300}).encode())

        self.serve(Handler)

    def token(self, access):
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": USER, "aud": SERVICE, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()), "access": access}
        signing = (b64url(json.dumps(header).encode()) + "." +
                   b64url(json.dumps(claims).encode()))
        r, s = decode_dss_signature(self.key.sign(signing.encode(),
                                                  ec.ECDSA(hashes.SHA256())))
        return signing + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class TokenDistribution(h.Server):
    """distribution with auth.token added to the harness's configuration."""

    def __init__(self, issuer):
        super().__init__(target="distribution")
        self.issuer = issuer

    def _distribution_command(self):
        cmd = super()._distribution_command()
        with open(cmd[-1], "a") as f:
            f.write("\n".join([
                "auth:",
                "  token:",
                "    realm: " + h._yaml_str("http://127.0.0.1:%d/token" % self.issuer.port),
                "    service: " + SERVICE,
                "    issuer: " + ISSUER,
                "    rootcertbundle: " + h._yaml_str(self.issuer.cert_path),
                "",
            ]))
        return cmd


class DistributionTokenTest(e.EcrTestCase):
    def test_pull_through_token_auth_distribution(self):
        issuer = TokenIssuer(self.work)
        self.addCleanup(issuer.close)
        # the image goes in while distribution runs without auth, then it restarts with it
        plain = h.Server(target="distribution")
        self.addCleanup(plain.cleanup)
        plain.start()
        img = h.build_image(layer_count=2)
        plain.registry().push_image("library/app", img, tag="v1")
        plain.stop()
        up = TokenDistribution(issuer)
        self.addCleanup(up.cleanup)
        os.rmdir(up.root)
        os.rename(plain.root, up.root)
        up.start()
        resp = up.registry().get_manifest("library/app", "v1")
        self.assertStatus(resp, 401)
        self.assertIn('Bearer realm="http://127.0.0.1:%d/token"' % issuer.port,
                      resp.header("WWW-Authenticate"))
        rc, out, err = p.berth_secrets(self.server, "put", "dist", "--username", USER,
                                       password=PASSWORD)
        self.assertEqual(rc, 0, err)
        self.ok("CreatePullThroughCacheRule", {"ecrRepositoryPrefix": "dist",
                                               "upstreamRegistryUrl": up.base_url,
                                               "credentialArn": out.strip()})
        resp = self.reg.get_manifest("dist/library/app", "v1")
        self.assertStatus(resp, 200)
        self.assertEqual(resp.header("Docker-Content-Digest"), img.digest)
        for d in [img.config_digest] + img.layer_digests:
            blob = self.reg.get_blob("dist/library/app", d)
            self.assertStatus(blob, 200)
            self.assertEqual(h.digest_of(blob.body), d)
        self.assertTrue(any("scope=repository%3Alibrary%2Fapp%3Apull" in r or
                            "scope=repository:library/app:pull" in r for r in issuer.requests),
                        issuer.requests)
        self.assertTrue(self.ok("ValidatePullThroughCacheRule",
                                {"ecrRepositoryPrefix": "dist"})["isValid"])
        # a wrong password: the issuer refuses, nothing is fetched
        rc, out, err = p.berth_secrets(self.server, "put", "wrong", "--username", USER,
                                       password="not-" + PASSWORD)
        self.assertEqual(rc, 0, err)
        self.ok("CreatePullThroughCacheRule", {"ecrRepositoryPrefix": "wrong",
                                               "upstreamRegistryUrl": up.base_url,
                                               "credentialArn": out.strip()})
        resp = self.reg.get_manifest("wrong/library/app", "v1")
        self.assertStatus(resp, 503)
        self.assertFalse(self.ok("ValidatePullThroughCacheRule",
                                 {"ecrRepositoryPrefix": "wrong"})["isValid"])
        self.assertNotIn(PASSWORD, self.server.log_text())


if __name__ == "__main__":
    h.main()
