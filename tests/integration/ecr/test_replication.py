# berth-python: modern
"""ECR replication configuration (PutReplicationConfiguration, DescribeRegistry) against
the real berth, with the machine image's boto3 and AWS CLI v1: ECR's validation and errors,
the configuration kept across a restart. The copying is replication/test_replication_copy.py."""

import json

import berth_harness as h
import ecr_helpers as e

OTHER_ID = "210987654321"


def dest(region="eu-west-1", registry=OTHER_ID):
    return {"region": region, "registryId": registry}


def prefix(value):
    return {"filter": value, "filterType": "PREFIX_MATCH"}


class ReplicationConfigurationTest(e.ModernEcrTestCase):
    def setUp(self):
        self.ecr.put_replication_configuration(replicationConfiguration={"rules": []})

    def put(self, *rules):
        out = self.ecr.put_replication_configuration(
            replicationConfiguration={"rules": list(rules)})
        self.assertEqual(out["replicationConfiguration"], {"rules": list(rules)})
        return out

    def described(self):
        out = self.ecr.describe_registry()
        self.assertEqual(out["registryId"], e.REGISTRY_ID)
        return out["replicationConfiguration"]

    def test_put_then_describe(self):
        rules = [{"destinations": [dest(), dest("us-west-2", e.REGISTRY_ID)],
                  "repositoryFilters": [prefix("team/"), prefix("prod-")]},
                 {"destinations": [dest("ap-south-1")]}]
        self.put(*rules)
        self.assertEqual(self.described(), {"rules": rules})
        # the CLI sees the same, and replaces it (a put is the whole configuration)
        self.assertEqual(self.aws("describe-registry")["replicationConfiguration"],
                         {"rules": rules})
        cli = self.aws("put-replication-configuration", "--replication-configuration",
                       json.dumps({"rules": [{"destinations": [dest()]}]}))
        self.assertEqual(cli["replicationConfiguration"], {"rules": [{"destinations": [dest()]}]})
        self.assertEqual(self.described(), {"rules": [{"destinations": [dest()]}]})
        # an empty rule list clears it
        self.put()
        self.assertEqual(self.described(), {"rules": []})

    def test_unknown_members_are_not_stored(self):
        resp = self.call("PutReplicationConfiguration", {"replicationConfiguration": {
            "rules": [{"destinations": [dict(dest(), extra=1)], "other": True}]}})
        self.assertEqual(resp.status, 200, resp.describe())
        self.assertEqual(self.described(), {"rules": [{"destinations": [dest()]}]})

    def test_same_registry_refused(self):
        err = self.assertBotoError(
            "InvalidParameterException", "put_replication_configuration",
            replicationConfiguration={"rules": [{"destinations": [dest(e.REGION,
                                                                       e.REGISTRY_ID)]}]})
        self.assertEqual(err["Message"],
                         "Invalid parameter at 'replicationConfiguration' failed to satisfy "
                         "constraint: 'Replication destination cannot be the same as the "
                         "source registry'")
        self.assertEqual(self.described(), {"rules": []})

    def test_validation(self):
        bad = [
            # region pattern and length
            ({"rules": [{"destinations": [dest("EU-WEST-1")]}]}, "InvalidParameterException"),
            ({"rules": [{"destinations": [dest("e")]}]}, "InvalidParameterException"),
            ({"rules": [{"destinations": [dest("a" * 26)]}]}, "InvalidParameterException"),
            # registryId: 12 digits
            ({"rules": [{"destinations": [dest(registry="12345")]}]},
             "InvalidParameterException"),
            ({"rules": [{"destinations": [dest(registry="12345678901a")]}]},
             "InvalidParameterException"),
            # filters: PREFIX_MATCH only, the pattern, 2..256, 1..100 of them
            ({"rules": [{"destinations": [dest()],
                         "repositoryFilters": [{"filter": "team", "filterType": "WILDCARD"}]}]},
             "InvalidParameterException"),
            ({"rules": [{"destinations": [dest()], "repositoryFilters": [prefix("Team")]}]},
             "InvalidParameterException"),
            ({"rules": [{"destinations": [dest()], "repositoryFilters": [prefix("a//b")]}]},
             "InvalidParameterException"),
            ({"rules": [{"destinations": [dest()], "repositoryFilters": [prefix("-a/b")]}]},
             "InvalidParameterException"),
            ({"rules": [{"destinations": [dest()], "repositoryFilters": [prefix("a")]}]},
             "InvalidParameterException"),
            ({"rules": [{"destinations": [dest()], "repositoryFilters": []}]},
             "InvalidParameterException"),
            ({"rules": [{"destinations": [dest()],
                         "repositoryFilters": [prefix("p%d" % i) for i in range(101)]}]},
             "InvalidParameterException"),
            # at most 10 rules, 100 destinations a rule, 25 unique destinations in all
            ({"rules": [{"destinations": [dest()]}] * 11}, "InvalidParameterException"),
            ({"rules": [{"destinations": [dest("r%02d" % (i % 20)) for i in range(101)]}]},
             "InvalidParameterException"),
            ({"rules": [{"destinations": [dest("r%02d" % i) for i in range(13)]},
                        {"destinations": [dest("s%02d" % i) for i in range(13)]}]},
             "InvalidParameterException"),
        ]
        for config, code in bad:
            with self.subTest(config=json.dumps(config)[:120]):
                resp = self.call("PutReplicationConfiguration",
                                 {"replicationConfiguration": config})
                self.assertAwsError(resp, 400, code)
        # missing members
        for body in ({}, {"replicationConfiguration": {}},
                     {"replicationConfiguration": {"rules": [{}]}},
                     {"replicationConfiguration": {"rules": [{"destinations": [{}]}]}},
                     {"replicationConfiguration": {"rules": [{"destinations": [
                         {"region": "eu-west-1"}]}]}},
                     {"replicationConfiguration": {"rules": [{"destinations": [dest()],
                                                              "repositoryFilters": [{}]}]}}):
            with self.subTest(body=body):
                resp = self.call("PutReplicationConfiguration", body)
                self.assertEqual(resp.status, 400, resp.describe())
        # wrong shapes
        for body in ({"replicationConfiguration": {"rules": ["x"]}},
                     {"replicationConfiguration": {"rules": [{"destinations": ["x"]}]}}):
            with self.subTest(body=body):
                self.assertAwsError(self.call("PutReplicationConfiguration", body), 400,
                                    "SerializationException")
        # nothing of that was stored
        self.assertEqual(self.described(), {"rules": []})
        # and the limits themselves are accepted
        rules = [{"destinations": [dest("r%02d" % i)] if i < 9 else
                  [dest("r%02d" % j) for j in range(9, 25)],
                  "repositoryFilters": [prefix("p%d/" % j) for j in range(100)]}
                 for i in range(10)]
        self.put(*rules)
        self.put({"destinations": [dest()], "repositoryFilters": [prefix("a" * 256)]},
                 {"destinations": [], "repositoryFilters": [prefix("ab")]},
                 {"destinations": [dest()], "repositoryFilters": [prefix("team/-x_y.z")]})

    def test_cli_errors(self):
        self.assertCliError("InvalidParameterException", "put-replication-configuration",
                            "--replication-configuration",
                            json.dumps({"rules": [{"destinations": [dest(e.REGION,
                                                                         e.REGISTRY_ID)]}]}))

    def test_kept_across_restart(self):
        rules = [{"destinations": [dest()], "repositoryFilters": [prefix("keep")]}]
        self.put(*rules)
        self.server.stop()
        self.server.start(reuse_port=True)
        self.assertEqual(self.described(), {"rules": rules})


if __name__ == "__main__":
    h.main()
