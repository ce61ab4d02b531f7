# berth-python: modern
"""ECR account settings (GetAccountSetting, PutAccountSetting) against the real berth, with
the machine image's boto3 and AWS CLI v1 (Debian's clients lack them), and what BLOB_MOUNTING
does to a /v2 cross-repository mount."""

import unittest

import berth_harness as h
import ecr_helpers as e

NAMES = "[BASIC_SCAN_TYPE_VERSION, REGISTRY_POLICY_SCOPE, BLOB_MOUNTING]"


class AccountSettingTest(e.ModernEcrTestCase):
    def test_defaults(self):
        for name, value in (("BASIC_SCAN_TYPE_VERSION", "AWS_NATIVE"),
                            ("REGISTRY_POLICY_SCOPE", "V2")):
            with self.subTest(name=name):
                self.assertEqual(self.aws("get-account-setting", "--name", name),
                                 {"name": name, "value": value})
                out = self.ecr.get_account_setting(name=name)
                self.assertEqual((out["name"], out["value"]), (name, value))

    def test_put_and_get(self):
        for name, value in (("BASIC_SCAN_TYPE_VERSION", "AWS_NATIVE"),
                            ("REGISTRY_POLICY_SCOPE", "V2")):
            out = self.aws("put-account-setting", "--name", name, "--value", value)
            self.assertEqual(out, {"name": name, "value": value})
            self.assertEqual(self.ecr.get_account_setting(name=name)["value"], value)

    def test_errors(self):
        err = self.assertBotoError("InvalidParameterException", "get_account_setting",
                                   name="NO_SUCH_SETTING")
        self.assertEqual(err["Message"], "Invalid parameter at 'name' failed to satisfy "
                         "constraint: 'Member must satisfy enum value set: %s'" % NAMES)
        err = self.assertCliError("InvalidParameterException", "put-account-setting",
                                  "--name", "BLOB_MOUNTING", "--value", "MAYBE")
        self.assertEqual(err[1], "Invalid parameter at 'value' failed to satisfy constraint: "
                                 "'Value for account setting BLOB_MOUNTING must be one of "
                                 "[ENABLED, DISABLED]'")
        # retired values are refused
        self.assertBotoError("InvalidParameterException", "put_account_setting",
                             name="REGISTRY_POLICY_SCOPE", value="V1")
        self.assertBotoError("InvalidParameterException", "put_account_setting",
                             name="BASIC_SCAN_TYPE_VERSION", value="CLAIR")
        # missing members (raw: the clients check them before sending)
        self.assertAwsError(self.call("PutAccountSetting", {"name": "BLOB_MOUNTING"}), 400,
                            "InvalidParameterException")
        self.assertAwsError(self.call("GetAccountSetting", {}), 400,
                            "InvalidParameterException")
        # nothing was changed by the failures
        self.assertEqual(self.ecr.get_account_setting(name="REGISTRY_POLICY_SCOPE")["value"],
                         "V2")


class BlobMountingTest(e.ModernEcrTestCase):
    def mount(self, target, digest, **params):
        return self.reg.start_upload(target, mount=digest, **params)

    def test_disabled_mount_answers_an_upload_session(self):
        source, target = self.repo("-src"), self.repo("-dst")
        data = h.random_bytes(700)
        digest = self.reg.ensure_blob(source, data)
        self.assertEqual(self.ecr.get_account_setting(name="BLOB_MOUNTING")["value"], "ENABLED")

        out = self.aws("put-account-setting", "--name", "BLOB_MOUNTING", "--value", "DISABLED")
        self.assertEqual(out, {"name": "BLOB_MOUNTING", "value": "DISABLED"})
        self.assertEqual(self.aws("get-account-setting", "--name", "BLOB_MOUNTING")["value"],
                         "DISABLED")
        for params in ({"from": source}, {}):
            with self.subTest(params=params):
                resp = self.mount(target, digest, **params)
                self.assertStatus(resp, 202)
                location = self.assertHasHeader(resp, "Location")
                self.assertHasHeader(resp, "Docker-Upload-UUID")
                self.assertStatus(self.reg.head_blob(target, digest), 404)
        # the session is a normal upload: the client sends the bytes
        self.assertStatus(self.reg.finish_upload(location, digest, data), 201)
        self.assertEqual(self.reg.get_blob(target, digest).body, data)

        # enabled again: mounts link the blob
        self.ecr.put_account_setting(name="BLOB_MOUNTING", value="ENABLED")
        other = self.repo("-dst2")
        resp = self.mount(other, digest, **{"from": source})
        self.assertStatus(resp, 201)
        self.assertEqual(self.reg.get_blob(other, digest).body, data)

    def test_setting_survives_a_restart(self):
        self.ecr.put_account_setting(name="BLOB_MOUNTING", value="DISABLED")
        self.addCleanup(self.ecr.put_account_setting, name="BLOB_MOUNTING", value="ENABLED")
        self.restart_server()
        self.assertEqual(self.ecr.get_account_setting(name="BLOB_MOUNTING")["value"], "DISABLED")
        source, target = self.repo("-src"), self.repo("-dst")
        digest = self.reg.ensure_blob(source, h.random_bytes(300))
        self.assertStatus(self.mount(target, digest, **{"from": source}), 202)


if __name__ == "__main__":
    unittest.main()
