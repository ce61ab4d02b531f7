# berth-python: modern
"""ECR managed signing (PutSigningConfiguration, GetSigningConfiguration,
DeleteSigningConfiguration, DescribeImageSigningStatus) against the real berth, with the
machine image's boto3 and AWS CLI v1. A push that a rule matches is signed: the signature
is a Notary Project JWS envelope stored as an OCI referrer of the image, verified here with
Python's cryptography and the openssl command (notation itself is not in Debian): the
signature over the protected header and payload, the payload naming the image's media
type, digest and size, and the certificate chain in x5c (berth's generated self-signed
code-signing certificate, or a configured RSA chain). Signing is a job: IN_PROGRESS until it
ran (and after kill -9, made by the restarted server), a failed signature is made when the
image is pushed again, and SIGHUP reads the profiles' key files again."""

import base64
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import berth_harness as h
import ecr_helpers as e

NOTARY_SIGNATURE = "application/vnd.cncf.notary.signature"
JWS = "application/jose+json"
ARN = "arn:aws:signer:us-east-1:%s:/signing-profiles/%s"


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def profile_arn(name):
    return ARN % (e.REGISTRY_ID, name)


class SigningCase(e.ModernEcrTestCase):
    """Helpers: push, find the signature referrer, verify its envelope."""

    def setUp(self):
        try:
            self.ecr.delete_signing_configuration()
        except self.ecr.exceptions.SigningConfigurationNotFoundException:
            pass

    def configure(self, *rules):
        out = self.ecr.put_signing_configuration(signingConfiguration={"rules": list(rules)})
        self.assertEqual(out["signingConfiguration"]["rules"], list(rules))

    def raw_statuses(self, repo, digest):
        out = self.ecr.describe_image_signing_status(repositoryName=repo,
                                                     imageId={"imageDigest": digest})
        self.assertEqual(out["imageId"], {"imageDigest": digest})
        self.assertEqual(out["repositoryName"], repo)
        self.assertEqual(out["registryId"], e.REGISTRY_ID)
        return out["signingStatuses"]

    def statuses(self, repo, digest):
        """The statuses once the signing job has made every signature it was asked for
        (none IN_PROGRESS)."""
        got = []

        def settled():
            got[:] = self.raw_statuses(repo, digest)
            return all(s["status"] != "IN_PROGRESS" for s in got)
        h.wait_until(settled, 60, interval=0.05, what="signing of %s" % digest)
        return got

    def signatures(self, repo, image):
        self.statuses(repo, image.digest)  # the job has run
        resp = self.reg.referrers(repo, image.digest, artifactType=NOTARY_SIGNATURE)
        self.assertStatus(resp, 200)
        return resp.json()["manifests"]

    def envelope(self, repo, image):
        """The one signature of image: (signature manifest, envelope JSON, envelope bytes)."""
        sigs = self.signatures(repo, image)
        self.assertEqual(len(sigs), 1, sigs)
        self.assertEqual(sigs[0]["artifactType"], NOTARY_SIGNATURE)
        resp = self.reg.get_manifest(repo, sigs[0]["digest"])
        self.assertStatus(resp, 200)
        manifest = resp.json()
        self.assertEqual(manifest["artifactType"], NOTARY_SIGNATURE)
        self.assertEqual(manifest["subject"], {"mediaType": image.media_type,
                                               "digest": image.digest,
                                               "size": len(image.manifest)})
        self.assertEqual(manifest["config"]["mediaType"], "application/vnd.oci.empty.v1+json")
        self.assertEqual([layer["mediaType"] for layer in manifest["layers"]], [JWS])
        blob = self.reg.get_blob(repo, manifest["layers"][0]["digest"])
        self.assertStatus(blob, 200)
        self.assertEqual(h.digest_of(blob.body), manifest["layers"][0]["digest"])
        return manifest, json.loads(blob.body), blob.body

    def verify(self, manifest, env, image, alg):
        """Check the envelope as a Notary Project verifier would; return the chain."""
        header = json.loads(b64url_decode(env["protected"]))
        self.assertEqual(header["alg"], alg)
        self.assertEqual(header["cty"], "application/vnd.cncf.notary.payload.v1+json")
        self.assertEqual(header["crit"], ["io.cncf.notary.signingScheme"])
        self.assertEqual(header["io.cncf.notary.signingScheme"], "notary.x509")
        signed_at = datetime.datetime.fromisoformat(
            header["io.cncf.notary.signingTime"].replace("Z", "+00:00"))
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(abs((now - signed_at).total_seconds()), 600)
        payload = json.loads(b64url_decode(env["payload"]))
        self.assertEqual(payload, {"targetArtifact": {"mediaType": image.media_type,
                                                      "digest": image.digest,
                                                      "size": len(image.manifest)}})
        chain = [x509.load_der_x509_certificate(base64.b64decode(c))
                 for c in env["header"]["x5c"]]
        self.assertTrue(env["header"]["io.cncf.notary.signingAgent"].startswith("berth/"))
        signing_input = (env["protected"] + "." + env["payload"]).encode("ascii")
        sig = b64url_decode(env["signature"])
        key = chain[0].public_key()
        if alg.startswith("ES"):
            half = len(sig) // 2
            der = utils.encode_dss_signature(int.from_bytes(sig[:half], "big"),
                                             int.from_bytes(sig[half:], "big"))
            key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        else:
            key.verify(sig, signing_input,
                       padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                   salt_length=hashes.SHA256.digest_size),
                       hashes.SHA256())
        # a changed payload does not verify
        with self.assertRaises(Exception):
            tampered = (env["protected"] + "." + env["payload"][:-2] + "AA").encode("ascii")
            if alg.startswith("ES"):
                key.verify(der, tampered, ec.ECDSA(hashes.SHA256()))
            else:
                key.verify(sig, tampered, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                      salt_length=32), hashes.SHA256())
        # the chain: each certificate issued by the next, the last self-signed
        for cert, issuer in zip(chain, chain[1:] + chain[-1:]):
            cert.verify_directly_issued_by(issuer)
        leaf = chain[0]
        self.assertTrue(leaf.extensions.get_extension_for_class(x509.KeyUsage)
                        .value.digital_signature)
        self.assertIn(ExtendedKeyUsageOID.CODE_SIGNING,
                      leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        self.assertFalse(leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        # the thumbprint annotation lists the chain
        thumbs = json.loads(manifest["annotations"]["io.cncf.notary.x509chain.thumbprint#S256"])
        self.assertEqual(thumbs, [hashlib.sha256(c.public_bytes(serialization.Encoding.DER))
                                  .hexdigest() for c in chain])
        return chain

    def openssl_verify(self, env, digest_name):
        """The same signature checked by the openssl command (ECDSA: DER-encoded)."""
        work = tempfile.mkdtemp(prefix="berth-sig-")
        self.addCleanup(shutil.rmtree, work, True)
        leaf = x509.load_der_x509_certificate(base64.b64decode(env["header"]["x5c"][0]))
        paths = {n: os.path.join(work, n) for n in ("pub.pem", "input", "sig")}
        with open(paths["pub.pem"], "wb") as f:
            f.write(leaf.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
        with open(paths["input"], "wb") as f:
            f.write((env["protected"] + "." + env["payload"]).encode("ascii"))
        sig = b64url_decode(env["signature"])
        args = ["openssl", "dgst", "-" + digest_name, "-verify", paths["pub.pem"]]
        if isinstance(leaf.public_key(), ec.EllipticCurvePublicKey):
            half = len(sig) // 2
            sig = utils.encode_dss_signature(int.from_bytes(sig[:half], "big"),
                                             int.from_bytes(sig[half:], "big"))
        else:
            args += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]
        with open(paths["sig"], "wb") as f:
            f.write(sig)
        res = subprocess.run(args + ["-signature", paths["sig"], paths["input"]],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("Verified OK", res.stdout)
        # and the certificate chain, by `openssl verify`: the leaf up to the last
        # certificate of x5c (the root, self-signed) as the one trusted
        chain = [x509.load_der_x509_certificate(base64.b64decode(c))
                 for c in env["header"]["x5c"]]

        def pem_file(name, certs):
            path = os.path.join(work, name)
            with open(path, "wb") as f:
                for cert in certs:
                    f.write(cert.public_bytes(serialization.Encoding.PEM))
            return path
        args = ["openssl", "verify", "-CAfile", pem_file("root.pem", chain[-1:])]
        if len(chain) > 2:
            args += ["-untrusted", pem_file("middle.pem", chain[1:-1])]
        leaf_pem = pem_file("leaf.pem", chain[:1])
        res = subprocess.run(args + [leaf_pem], capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(res.stdout.strip(), "%s: OK" % leaf_pem)
        # a chain without its root does not verify
        if len(chain) > 1:
            other = subprocess.run(["openssl", "verify", "-CAfile", leaf_pem, leaf_pem],
                                   capture_output=True, text=True, timeout=60)
            self.assertNotEqual(other.returncode, 0, other.stdout)


class SigningConfigurationTest(SigningCase):
    def test_put_get_delete(self):
        self.assertBotoError("SigningConfigurationNotFoundException",
                             "get_signing_configuration")
        self.assertCliError("SigningConfigurationNotFoundException",
                            "delete-signing-configuration")
        rules = [{"signingProfileArn": profile_arn("teamProfile"),
                  "repositoryFilters": [{"filter": "team/*", "filterType": "WILDCARD_MATCH"},
                                        {"filter": "*prod*", "filterType": "WILDCARD_MATCH"}]},
                 {"signingProfileArn": profile_arn("everything")}]
        out = self.aws("put-signing-configuration", "--signing-configuration",
                       json.dumps({"rules": rules}))
        self.assertEqual(out, {"signingConfiguration": {"rules": rules}})
        got = self.ecr.get_signing_configuration()
        self.assertEqual(got["registryId"], e.REGISTRY_ID)
        self.assertEqual(got["signingConfiguration"], {"rules": rules})
        # replaced as a whole; an empty rule list is a configuration
        self.configure()
        self.assertEqual(self.aws("get-signing-configuration")["signingConfiguration"],
                         {"rules": []})
        self.configure(*rules)
        out = self.aws("delete-signing-configuration")
        self.assertEqual(out, {"registryId": e.REGISTRY_ID,
                               "signingConfiguration": {"rules": rules}})
        self.assertBotoError("SigningConfigurationNotFoundException",
                             "delete_signing_configuration")

    def test_validation(self):
        good = {"signingProfileArn": profile_arn("p1")}
        bad = [
            ({"rules": [good] * 11}, "InvalidParameterException"),
            ({"rules": [{"signingProfileArn": "arn:aws:signer:us-east-1:1:/signing-profiles/p"}]},
             "InvalidParameterException"),
            ({"rules": [{"signingProfileArn": ARN % (e.REGISTRY_ID, "x")}]},
             "InvalidParameterException"),
            ({"rules": [{"signingProfileArn": "arn:aws:iam::000000000000:role/x"}]},
             "InvalidParameterException"),
            ({"rules": [dict(good, repositoryFilters=[])]}, "InvalidParameterException"),
            ({"rules": [dict(good, repositoryFilters=[{"filter": "Team/*",
                                                       "filterType": "WILDCARD_MATCH"}])]},
             "InvalidParameterException"),
            ({"rules": [dict(good, repositoryFilters=[{"filter": "team//x",
                                                       "filterType": "WILDCARD_MATCH"}])]},
             "InvalidParameterException"),
            ({"rules": [dict(good, repositoryFilters=[{"filter": "team/*",
                                                       "filterType": "REGEX"}])]},
             "InvalidParameterException"),
            ({"rules": [{"repositoryFilters": [{"filter": "a", "filterType": "WILDCARD_MATCH"}]}]},
             "InvalidParameterException"),
        ]
        for config, code in bad:
            with self.subTest(config=config):
                self.assertAwsError(self.call("PutSigningConfiguration",
                                              {"signingConfiguration": config}), 400, code)
        self.assertAwsError(self.call("PutSigningConfiguration", {}), 400,
                            "InvalidParameterException")
        self.assertBotoError("SigningConfigurationNotFoundException",
                             "get_signing_configuration")
        # the longest names the model allows
        arn = ARN % (e.REGISTRY_ID, "a" * (200 - len(ARN % (e.REGISTRY_ID, ""))))
        self.configure({"signingProfileArn": arn,
                        "repositoryFilters": [{"filter": "a-b_c.d/*/e*",
                                               "filterType": "WILDCARD_MATCH"}] * 100})

    def test_status_errors(self):
        repo = self.create_repo()
        self.assertBotoError("RepositoryNotFoundException", "describe_image_signing_status",
                             repositoryName=repo + "-missing", imageId={"imageTag": "v1"})
        self.assertBotoError("ImageNotFoundException", "describe_image_signing_status",
                             repositoryName=repo, imageId={"imageTag": "v1"})
        self.assertAwsError(self.call("DescribeImageSigningStatus", {"repositoryName": repo}),
                            400, "InvalidParameterException")


class GeneratedProfileTest(SigningCase):
    """Profiles with no configured key: berth's own P-256 key and self-signed certificate."""

    def test_push_is_signed(self):
        self.configure({"signingProfileArn": profile_arn("berthTest"),
                        "repositoryFilters": [{"filter": "itest/push-is-signed-*",
                                               "filterType": "WILDCARD_MATCH"}]})
        repo = self.create_repo()
        image = h.build_image()
        self.push(repo, image, tag="v1")
        statuses = self.statuses(repo, image.digest)
        self.assertEqual(statuses, [{"signingProfileArn": profile_arn("berthTest"),
                                     "status": "COMPLETE"}])
        cli = self.aws("describe-image-signing-status", "--repository-name", repo,
                       "--image-id", "imageTag=v1")
        self.assertEqual(cli["signingStatuses"], statuses)
        self.assertEqual(cli["imageId"], {"imageDigest": image.digest, "imageTag": "v1"})

        manifest, env, _ = self.envelope(repo, image)
        chain = self.verify(manifest, env, image, "ES256")
        self.assertEqual(len(chain), 1)
        self.assertEqual(chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
                         "berthTest")
        self.openssl_verify(env, "sha256")

        # the signature is an image of the repository, a referrer of the image, not signed
        sig_digest = self.signatures(repo, image)[0]["digest"]
        detail = self.ecr.describe_images(repositoryName=repo,
                                          imageIds=[{"imageDigest": sig_digest}])
        self.assertEqual(detail["imageDetails"][0]["subjectManifestDigest"], image.digest)
        self.assertEqual(self.statuses(repo, sig_digest), [])

        # the same profile signs the next image with the same certificate
        other = h.build_image()
        self.push(repo, other, tag="v2")
        _, env2, _ = self.envelope(repo, other)
        self.assertEqual(env2["header"]["x5c"], env["header"]["x5c"])
        # pushing an image again does not sign it again
        self.push(repo, image, tag="v3")
        self.assertEqual(len(self.signatures(repo, image)), 1)

    def test_rules_pick_profiles(self):
        self.configure({"signingProfileArn": profile_arn("first"),
                        "repositoryFilters": [{"filter": "*-picked-*",
                                               "filterType": "WILDCARD_MATCH"}]},
                       {"signingProfileArn": profile_arn("second")},
                       {"signingProfileArn": profile_arn("first"),
                        "repositoryFilters": [{"filter": "*-x",
                                               "filterType": "WILDCARD_MATCH"}]})
        picked = self.repo("-picked-x")
        self.ecr.create_repository(repositoryName=picked)
        plain = self.create_repo()
        image = h.build_image()
        self.push(picked, image, tag="v1")
        self.push(plain, image, tag="v1")
        arns = [s["signingProfileArn"] for s in self.statuses(picked, image.digest)]
        self.assertEqual(arns, sorted([profile_arn("first"), profile_arn("second")]))
        self.assertEqual(len(self.signatures(picked, image)), 2)
        self.assertEqual([s["signingProfileArn"] for s in self.statuses(plain, image.digest)],
                         [profile_arn("second")])
        # PutImage is a push too
        index = h.Index([image])
        self.ecr.put_image(repositoryName=plain, imageManifest=index.manifest.decode(),
                           imageManifestMediaType=index.media_type, imageTag="multi")
        self.assertEqual([s["status"] for s in self.statuses(plain, index.digest)], ["COMPLETE"])
        manifest, env, _ = self.envelope(plain, index)
        self.verify(manifest, env, index, "ES256")

    def test_no_configuration_no_signature(self):
        repo = self.create_repo()
        image = h.build_image()
        self.push(repo, image, tag="v1")
        self.assertEqual(self.statuses(repo, image.digest), [])
        self.assertEqual(self.signatures(repo, image), [])
        self.configure({"signingProfileArn": profile_arn("later"),
                        "repositoryFilters": [{"filter": "elsewhere/*",
                                               "filterType": "WILDCARD_MATCH"}]})
        other = h.build_image()
        self.push(repo, other, tag="v2")
        self.assertEqual(self.statuses(repo, other.digest), [])


def write_profile(directory, name):
    """<name>.pem: a fresh RSA 2048 key, its leaf and a root; returns the leaf."""
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "itest root " + name)])
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256()))
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(root_name).public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                           critical=False)
            .sign(root_key, hashes.SHA256()))
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    key_pem = leaf_key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    tmp = os.path.join(directory, name + ".pem.tmp")
    with open(tmp, "wb") as f:
        f.write(key_pem + pem(leaf) + pem(root))
    os.replace(tmp, os.path.join(directory, name + ".pem"))
    return leaf


def make_chain(directory):
    """rsaProfile.pem: an RSA 2048 leaf issued by a root CA (key, leaf, root), and
    broken.pem: a certificate without its key."""
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "itest root")])
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(root_key, hashes.SHA256()))
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "itest signer")]))
            .issuer_name(root_name).public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                           critical=False)
            .sign(root_key, hashes.SHA256()))
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    key_pem = leaf_key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    with open(os.path.join(directory, "rsaProfile.pem"), "wb") as f:
        f.write(key_pem + pem(leaf) + pem(root))
    with open(os.path.join(directory, "broken.pem"), "wb") as f:
        f.write(pem(root))
    return leaf, root


class ConfiguredProfileTest(SigningCase):
    """signing.profiles_dir: a configured RSA chain, and a profile file without a key."""

    @classmethod
    def setUpClass(cls):
        cls.profiles = tempfile.mkdtemp(prefix="berth-profiles-")
        cls.leaf, cls.root = make_chain(cls.profiles)
        cls.server_config = {"signing": {"profiles_dir": cls.profiles}}
        try:
            super().setUpClass()
        finally:
            cls.addClassCleanup(shutil.rmtree, cls.profiles, True)

    def test_rsa_chain(self):
        self.configure({"signingProfileArn": profile_arn("rsaProfile")})
        repo = self.create_repo()
        image = h.build_image()
        self.push(repo, image, tag="v1")
        self.assertEqual([s["status"] for s in self.statuses(repo, image.digest)], ["COMPLETE"])
        manifest, env, _ = self.envelope(repo, image)
        chain = self.verify(manifest, env, image, "PS256")
        der = serialization.Encoding.DER
        self.assertEqual([c.public_bytes(der) for c in chain],
                         [self.leaf.public_bytes(der), self.root.public_bytes(der)])
        self.openssl_verify(env, "sha256")

    def test_unusable_profile_fails(self):
        self.configure({"signingProfileArn": profile_arn("broken")})
        repo = self.create_repo()
        image = h.build_image()
        self.push(repo, image, tag="v1")  # the push itself succeeds
        statuses = self.statuses(repo, image.digest)
        self.assertEqual(len(statuses), 1)
        self.assertEqual(statuses[0]["status"], "FAILED")
        self.assertEqual(statuses[0]["failureCode"], "SIGNING_PROFILE_UNAVAILABLE")
        self.assertIn("no private key", statuses[0]["failureReason"])
        self.assertEqual(self.signatures(repo, image), [])
        self.assertStatus(self.reg.get_manifest(repo, "v1"), 200)


class ProfileReloadTest(SigningCase):
    """A profile's key file read again on SIGHUP; an image whose signing failed is signed
    when pushed again."""

    @classmethod
    def setUpClass(cls):
        cls.profiles = tempfile.mkdtemp(prefix="berth-profiles-")
        cls.server_config = {"signing": {"profiles_dir": cls.profiles}}
        try:
            super().setUpClass()
        finally:
            cls.addClassCleanup(shutil.rmtree, cls.profiles, True)

    def leaf_of(self, repo, image):
        _, env, _ = self.envelope(repo, image)
        der = base64.b64decode(env["header"]["x5c"][0])
        return x509.load_der_x509_certificate(der)

    def sighup(self):
        import signal
        before = self.server.log_text().count("event=signing_reload")
        self.server.proc.send_signal(signal.SIGHUP)
        h.wait_until(lambda: self.server.log_text().count("event=signing_reload") > before, 30,
                     what="the SIGHUP reload")

    def test_key_rotation_on_sighup(self):
        if self.server.replicas > 1:
            self.skipTest("SIGHUP reaches one process: on replicas each reloads its own "
                          "profiles when it gets one")
        first = write_profile(self.profiles, "rotating")
        self.configure({"signingProfileArn": profile_arn("rotating")})
        repo = self.create_repo()
        one, two, three = h.build_image(), h.build_image(), h.build_image()
        self.push(repo, one, tag="one")
        self.assertEqual(self.leaf_of(repo, one), first)
        # a new key in the file: the loaded one signs until SIGHUP
        second = write_profile(self.profiles, "rotating")
        self.push(repo, two, tag="two")
        self.assertEqual(self.leaf_of(repo, two), first)
        self.sighup()
        self.push(repo, three, tag="three")
        self.assertEqual(self.leaf_of(repo, three), second)
        manifest, env, _ = self.envelope(repo, three)
        self.verify(manifest, env, three, "PS256")

    def test_failed_signing_is_retried_on_push(self):
        # a certificate without its key: unusable
        leaf = write_profile(self.profiles, "fixedLater")
        with open(os.path.join(self.profiles, "fixedLater.pem"), "wb") as f:
            f.write(leaf.public_bytes(serialization.Encoding.PEM))
        self.configure({"signingProfileArn": profile_arn("fixedLater")})
        repo = self.create_repo()
        image = h.build_image()
        self.push(repo, image, tag="v1")
        statuses = self.statuses(repo, image.digest)
        self.assertEqual([(s["status"], s["failureCode"]) for s in statuses],
                         [("FAILED", "SIGNING_PROFILE_UNAVAILABLE")])
        leaf = write_profile(self.profiles, "fixedLater")
        # pushed again (here: PutImage of the same manifest under another tag)
        self.ecr.put_image(repositoryName=repo, imageManifest=image.manifest.decode(),
                           imageManifestMediaType=image.media_type, imageTag="v2")
        self.assertEqual(self.statuses(repo, image.digest),
                         [{"signingProfileArn": profile_arn("fixedLater"),
                           "status": "COMPLETE"}])
        self.assertEqual(self.leaf_of(repo, image), leaf)
        # and once signed, a push does not sign it again
        self.push(repo, image, tag="v3")
        self.assertEqual(len(self.signatures(repo, image)), 1)


class HeldSigningTest(SigningCase):
    """Signing is a job: IN_PROGRESS while it waits (held by BERTH_TEST_HOLD_SIGNING), and a
    signature queued before kill -9 is made after the restart."""

    @classmethod
    def setUpClass(cls):
        cls.hold_dir = tempfile.mkdtemp(prefix="berth-hold-")
        cls.hold = os.path.join(cls.hold_dir, "hold")
        open(cls.hold, "w").close()
        cls.server_env = {"BERTH_TEST_HOLD_SIGNING": cls.hold}
        try:
            super().setUpClass()
        finally:
            cls.addClassCleanup(shutil.rmtree, cls.hold_dir, True)

    def test_in_progress_then_complete(self):
        self.configure({"signingProfileArn": profile_arn("held")})
        repo = self.create_repo()
        image, other = h.build_image(), h.build_image()
        self.push(repo, image, tag="v1")
        self.push(repo, other, tag="v2")
        h.wait_until(lambda: "event=test_hold point=signing" in self.server.log_text(), 30,
                     what="the signing job to reach its hold")
        for img in (image, other):
            self.assertEqual(self.raw_statuses(repo, img.digest),
                             [{"signingProfileArn": profile_arn("held"),
                               "status": "IN_PROGRESS"}])
        self.assertEqual(self.signatures_now(repo, image), [])
        # kill -9 with both queued: the restarted job makes them
        self.server.restart_after_crash()
        type(self).reg = self.server.registry()
        type(self).ecr = e.c.ecr_client(self.server, *e.c.DUMMY_KEY)
        self.assertEqual(self.raw_statuses(repo, other.digest)[0]["status"], "IN_PROGRESS")
        os.unlink(self.hold)
        for img in (image, other):
            self.assertEqual([s["status"] for s in self.statuses(repo, img.digest)],
                             ["COMPLETE"])
            manifest, env, _ = self.envelope(repo, img)
            self.verify(manifest, env, img, "ES256")

    def signatures_now(self, repo, image):
        resp = self.reg.referrers(repo, image.digest, artifactType=NOTARY_SIGNATURE)
        self.assertStatus(resp, 200)
        return resp.json()["manifests"]


if __name__ == "__main__":
    h.main()
