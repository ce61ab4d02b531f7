"""deploy/kubernetes and deploy/compose, checked offline (the files run for real under dockerd
in packaging/test_docker_image):

- every Kubernetes object is checked field by field against the Kubernetes API's own models
  (Debian's python3-kubernetes: each field's name and type, required fields, enums), so a
  misspelt or misplaced field fails;
- kubectl reads the file (`kubectl create --dry-run=client -o json`) against a stand-in API
  server that only answers discovery (kubectl needs it to map kinds to resources; nothing is
  created), and gives back the same objects;
- what the objects say works with berth: the ConfigMap's variables and the Secret's file,
  given to the built berth as the pod would give them, make a server whose probe paths
  answer 200 and which takes the Secret's key; ports, paths and the user agree with the
  image;
- deploy/helm/berth renders (tests/tools/helm-render: Helm's engine, helm is not in Debian)
  to exactly those objects with its defaults, and follows its values;
- `docker-compose config` accepts the compose file (and refuses a broken one).

Not checked here: a real cluster (scheduling, the volume claim, the probes' timing)."""

import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import unittest
import base64

import yaml
import kubernetes.client.models as k8s

import berth_harness as h
import packaging_helpers as pk

DEPLOY = os.path.join(h.REPO_ROOT, "deploy")
MANIFEST = os.path.join(DEPLOY, "kubernetes", "berth.yaml")
COMPOSE = os.path.join(DEPLOY, "compose", "compose.yaml")
IMAGE_CONFIG = os.path.join(DEPLOY, "image", "berth.json")
IMAGE_UID = 10001

# what kubectl's discovery needs to map the kinds of berth.yaml to resources
DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                             "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": n, "singularName": n[:-1], "namespaced": True, "kind": k,
         "verbs": ["create", "get", "list"]}
        for n, k in (("configmaps", "ConfigMap"), ("secrets", "Secret"),
                     ("services", "Service"),
                     ("persistentvolumeclaims", "PersistentVolumeClaim"))]},
    "/apis/apps/v1": {"kind": "APIResourceList", "groupVersion": "apps/v1", "resources": [
        {"name": "statefulsets", "singularName": "statefulset", "namespaced": True,
         "kind": "StatefulSet", "verbs": ["create", "get", "list"]}]},
    "/version": {"major": "1", "minor": "28", "gitVersion": "v1.28.0"},
}


class DiscoveryOnly(http.server.BaseHTTPRequestHandler):
    writes = []

    def do_GET(self):
        body = DISCOVERY.get(self.path.split("?")[0])
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # a dry run never writes
        DiscoveryOnly.writes.append(self.path)
        self.send_response(405)
        self.end_headers()

    do_PUT = do_PATCH = do_DELETE = do_POST

    def log_message(self, *args):
        pass


def check_model(value, type_name, path, errors):
    """Check value against the Kubernetes model type type_name (as python3-kubernetes names
    it: 'V1StatefulSet', 'list[V1Container]', 'dict(str, str)', 'str', 'int', 'object'...),
    appending one message per problem to errors."""
    if type_name.startswith("list["):
        if not isinstance(value, list):
            errors.append("%s: a list expected" % path)
            return
        for i, item in enumerate(value):
            check_model(item, type_name[5:-1], "%s[%d]" % (path, i), errors)
        return
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            errors.append("%s: a map expected" % path)
            return
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            check_model(item, inner, "%s.%s" % (path, key), errors)
        return
    simple = {"str": str, "bool": bool, "datetime": str, "date": str, "float": (int, float)}
    if type_name in simple:
        if not isinstance(value, simple[type_name]):
            errors.append("%s: %s expected, got %r" % (path, type_name, value))
        return
    if type_name == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append("%s: an integer expected, got %r" % (path, value))
        return
    if type_name == "object":  # IntOrString, quantities, free-form
        return
    klass = getattr(k8s, type_name)
    if not isinstance(value, dict):
        errors.append("%s: an object (%s) expected" % (path, type_name))
        return
    by_json = {v: k for k, v in klass.attribute_map.items()}
    kwargs = {}
    for key, item in value.items():
        attr = by_json.get(key)
        if attr is None:
            errors.append("%s: unknown field %r in %s" % (path, key, type_name))
            continue
        kwargs[attr] = item
        check_model(item, klass.openapi_types[attr], "%s.%s" % (path, key), errors)
    try:
        klass(**kwargs)  # required fields and enumerations
    except ValueError as exc:
        errors.append("%s: %s" % (path, exc))


def model_errors(obj):
    name = "V1" + obj["kind"]
    if obj.get("apiVersion") not in ("v1", "apps/v1"):
        return ["%s: unexpected apiVersion %r" % (obj.get("kind"), obj.get("apiVersion"))]
    errors = []
    check_model(obj, name, obj["kind"], errors)
    return errors


def kubectl_dry_run(test, path):
    """The objects of path as `kubectl create --dry-run=client -o json` gives them back,
    against a stand-in API server that answers discovery only (and sees no write)."""
    kubectl = shutil.which("kubectl")
    test.assertIsNotNone(kubectl, "kubectl is missing (scripts/setup-deps.sh)")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DiscoveryOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    home = tempfile.mkdtemp(prefix="kubectl-home-")
    try:
        env = dict(os.environ, HOME=home, KUBECONFIG=os.path.join(home, "none"))
        proc = subprocess.run(
            [kubectl, "--server", "http://127.0.0.1:%d" % server.server_address[1],
             "create", "--dry-run=client", "--validate=false", "-o", "json", "-f", path],
            env=env, capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(home, ignore_errors=True)
    test.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    test.assertEqual(DiscoveryOnly.writes, [])
    # one JSON document per object, one after the other
    items, text, pos = [], proc.stdout, 0
    decoder = json.JSONDecoder()
    while text[pos:].strip():
        obj, end = decoder.raw_decode(text, pos + len(text[pos:]) - len(text[pos:].lstrip()))
        items += obj["items"] if obj.get("kind") == "List" else [obj]
        pos = end
    return items


def load_manifest(path=MANIFEST):
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


class KubernetesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objects = load_manifest()
        cls.by_kind = {o["kind"]: o for o in cls.objects}
        cls.sts = cls.by_kind["StatefulSet"]
        cls.pod = cls.sts["spec"]["template"]["spec"]
        cls.container = cls.pod["containers"][0]

    def test_objects_match_the_kubernetes_models(self):
        self.assertEqual(sorted(self.by_kind),
                         ["ConfigMap", "Secret", "Service", "StatefulSet"])
        for obj in self.objects:
            with self.subTest(kind=obj["kind"]):
                self.assertEqual(model_errors(obj), [])
        # and the check does catch mistakes
        broken = json.loads(json.dumps(self.sts))
        broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = \
            broken["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe")
        broken["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = "10001"
        del broken["spec"]["selector"]
        errors = "\n".join(model_errors(broken))
        self.assertIn("unknown field 'readinesProbe'", errors)
        self.assertIn("runAsUser: an integer expected", errors)
        self.assertIn("selector", errors)

    def test_kubectl_reads_the_manifest(self):
        items = kubectl_dry_run(self, MANIFEST)
        self.assertEqual([(o["kind"], o["metadata"]["name"]) for o in items],
                         [(o["kind"], o["metadata"]["name"]) for o in self.objects])
        sts = next(o for o in items if o["kind"] == "StatefulSet")
        self.assertEqual(sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"],
                         self.container["readinessProbe"])

    def test_security_and_probes(self):
        pod_sc, sc = self.pod["securityContext"], self.container["securityContext"]
        self.assertTrue(pod_sc["runAsNonRoot"])
        self.assertEqual((pod_sc["runAsUser"], pod_sc["runAsGroup"], pod_sc["fsGroup"]),
                         (IMAGE_UID, IMAGE_UID, IMAGE_UID))
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertEqual(self.container["readinessProbe"]["httpGet"]["path"], "/readyz")
        self.assertEqual(self.container["livenessProbe"]["httpGet"]["path"], "/healthz")
        self.assertIn("requests", self.container["resources"])
        self.assertGreater(self.pod["terminationGracePeriodSeconds"], 30)
        claim = self.sts["spec"]["volumeClaimTemplates"][0]
        mounts = {m["name"]: m["mountPath"] for m in self.container["volumeMounts"]}
        self.assertEqual(mounts[claim["metadata"]["name"]], "/var/lib/berth")
        self.assertEqual(self.sts["spec"]["replicas"], 1, "one berth per data directory")
        # the Service reaches the container's port, which is the one berth listens on
        svc_port = self.by_kind["Service"]["spec"]["ports"][0]
        port = self.container["ports"][0]
        self.assertEqual(svc_port["targetPort"], port["name"])
        env = self.by_kind["ConfigMap"]["data"]
        self.assertEqual(env["BERTH_LISTEN"].rsplit(":", 1)[1], str(port["containerPort"]))
        self.assertEqual(env["BERTH_ROOT"], "/var/lib/berth")

    def test_berth_runs_with_the_pods_configuration(self):
        """The ConfigMap as environment and the Secret's berth.json as the configuration
        file (where the image's BERTH_CONFIG points): every variable is a key berth knows,
        the probes answer, the Secret's key signs in."""
        env_vars = self.by_kind["ConfigMap"]["data"]
        known = set(re.findall(r"\bBERTH_[A-Z0-9_]+\b", subprocess.run(
            [h.find_berth_bin(), "--help"], capture_output=True, text=True).stdout))
        for name in env_vars:
            self.assertIn(name, known, "the ConfigMap sets a variable berth does not read")
        secret_file = self.by_kind["Secret"]["stringData"]["berth.json"]
        keys_mount = next(m for m in self.container["volumeMounts"] if m["name"] == "keys")
        with open(IMAGE_CONFIG) as f:
            json.load(f)
        self.assertEqual(keys_mount["mountPath"], "/etc/berth")  # the image's BERTH_CONFIG dir
        work = tempfile.mkdtemp(prefix="berth-pod-")
        conf = os.path.join(work, "berth.json")
        with open(conf, "w") as f:
            f.write(secret_file)
        key = json.loads(secret_file)["auth"]["keys"][0]
        port = h.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        env.update(env_vars)
        # the data directory and the address are the test's (the pod's are its volume and
        # 0.0.0.0, which the Secret's key would allow)
        env.update(BERTH_CONFIG=conf, BERTH_ROOT=os.path.join(work, "data"),
                   BERTH_LISTEN="127.0.0.1:%d" % port)
        p = pk.Process([h.find_berth_bin(), "serve"], env=env, workdir=work)
        try:
            base = "http://127.0.0.1:%d" % port
            p.wait_ready(base)
            for probe in ("readinessProbe", "livenessProbe"):
                path = self.container[probe]["httpGet"]["path"]
                self.assertEqual(pk.http_get(base + path)[0], 200, probe)
            self.assertEqual(pk.http_get(base + "/v2/")[0], 401)
            auth = base64.b64encode(("%s:%s" % (key["access_key_id"],
                                                key["secret_access_key"])).encode()).decode()
            self.assertEqual(pk.http_get(base + "/v2/",
                                         headers={"Authorization": "Basic " + auth})[0], 200)
            # log.format json from the ConfigMap
            line = next(ln for ln in p.log_text().splitlines() if "server_start" in ln)
            self.assertEqual(json.loads(line)["event"], "server_start")
            self.assertEqual(p.stop(), 0)
        finally:
            p.cleanup()


def normalized(objects):
    """Objects keyed by (kind, name), with a Secret's berth.json parsed (its text is
    formatted differently by the chart and by hand)."""
    out = {}
    for obj in objects:
        obj = json.loads(json.dumps(obj))
        if obj["kind"] == "Secret" and "berth.json" in obj.get("stringData", {}):
            obj["stringData"]["berth.json"] = json.loads(obj["stringData"]["berth.json"])
        out[(obj["kind"], obj["metadata"]["name"])] = obj
    return out


class HelmTest(unittest.TestCase):
    """deploy/helm/berth rendered by tests/tools/helm-render (Helm 3's template engine on
    the same libraries: text/template and sprig; helm is not in Debian): with its default
    values and the release name berth it gives exactly deploy/kubernetes/berth.yaml's
    objects; with the usual values changed (image, TLS secret, persistence, resources,
    an existing keys Secret, the service type, another release name) the objects change as
    they should; every rendering passes the Kubernetes models and kubectl."""

    chart = os.path.join(DEPLOY, "helm", "berth")

    def render(self, release="berth", values=None, sets=()):
        renderer = os.path.join(pk.BUILD_DIR, "tools", "helm-render")
        self.assertTrue(os.access(renderer, os.X_OK),
                        "%s was not built (golang-go and golang-github-masterminds-sprig-dev "
                        "from scripts/setup-deps.sh, then cmake)" % renderer)
        cmd = [renderer, "--release", release]
        tmp = tempfile.mkdtemp(prefix="helm-values-")
        try:
            if values is not None:
                path = os.path.join(tmp, "values.yaml")
                with open(path, "w") as f:
                    yaml.safe_dump(values, f)
                cmd += ["-f", path]
            for item in sets:
                cmd += ["--set-string", item]
            proc = subprocess.run(cmd + [self.chart], capture_output=True, text=True,
                                  timeout=60)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            out_path = os.path.join(tmp, "rendered.yaml")
            with open(out_path, "w") as f:
                f.write(proc.stdout)
            objects = [o for o in yaml.safe_load_all(proc.stdout) if o]
            for obj in objects:
                with self.subTest(kind=obj["kind"], release=release):
                    self.assertEqual(model_errors(obj), [])
            items = kubectl_dry_run(self, out_path)
            self.assertEqual(len(items), len(objects))
            return objects
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_defaults_render_the_plain_manifests(self):
        self.assertEqual(normalized(self.render()), normalized(load_manifest()))

    def test_values(self):
        objects = self.render(release="registry", values={
            "image": {"repository": "mirror.example/tools/berth", "tag": "9.9"},
            "tls": {"secretName": "berth-tls"},
            "persistence": {"size": "500Gi", "storageClass": "fast"},
            "resources": {"requests": {"cpu": "2", "memory": "1Gi"}},
            "auth": {"existingSecret": "my-keys"},
            "service": {"type": "NodePort", "port": 443},
            "config": {"BERTH_LOG_LEVEL": "debug", "BERTH_GC_INTERVAL_SECONDS": 600},
        })
        by = {o["kind"]: o for o in objects}
        self.assertNotIn("Secret", by, "an existing keys Secret: the chart makes none")
        self.assertEqual({o["metadata"]["name"] for o in objects}, {"registry-berth"})
        pod = by["StatefulSet"]["spec"]["template"]["spec"]
        c = pod["containers"][0]
        self.assertEqual(c["image"], "mirror.example/tools/berth:9.9")
        # values merge into the chart's, as with helm: limits stay
        self.assertEqual(c["resources"], {"requests": {"cpu": "2", "memory": "1Gi"},
                                          "limits": {"memory": "1Gi"}})
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertEqual(c[probe]["httpGet"]["scheme"], "HTTPS")
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.assertEqual(volumes["keys"]["secret"]["secretName"], "my-keys")
        self.assertEqual(volumes["tls"]["secret"]["secretName"], "berth-tls")
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        env = by["ConfigMap"]["data"]
        self.assertEqual(os.path.dirname(env["BERTH_TLS_CERT_FILE"]), mounts["tls"])
        self.assertEqual(os.path.dirname(env["BERTH_TLS_KEY_FILE"]), mounts["tls"])
        self.assertEqual(env["BERTH_LOG_LEVEL"], "debug")
        self.assertEqual(env["BERTH_GC_INTERVAL_SECONDS"], "600")
        claim = by["StatefulSet"]["spec"]["volumeClaimTemplates"][0]["spec"]
        self.assertEqual(claim["storageClassName"], "fast")
        self.assertEqual(claim["resources"]["requests"]["storage"], "500Gi")
        svc = by["Service"]["spec"]
        self.assertEqual((svc["type"], svc["ports"][0]["port"]), ("NodePort", 443))
        self.assertEqual(svc["selector"], by["StatefulSet"]["spec"]["selector"]["matchLabels"])
        self.assertEqual(svc["selector"]["app.kubernetes.io/instance"], "registry")

    def test_keys_values_reach_the_secret(self):
        keys = [{"name": "ci", "access_key_id": "AKIDCI00000000000001",
                 "secret_access_key": "s" * 40, "permissions": ["push:team/*", "pull"]}]
        objects = self.render(values={"auth": {"keys": keys}})
        secret = next(o for o in objects if o["kind"] == "Secret")
        self.assertEqual(json.loads(secret["stringData"]["berth.json"]),
                         {"auth": {"keys": keys}})
        # and berth accepts that file as its configuration
        work = tempfile.mkdtemp(prefix="helm-keys-")
        try:
            conf = os.path.join(work, "berth.json")
            with open(conf, "w") as f:
                f.write(secret["stringData"]["berth.json"])
            proc = subprocess.run([h.find_berth_bin(), "keys", "list", "--config", conf,
                                   "--root", os.path.join(work, "data")],
                                  capture_output=True, text=True, timeout=30)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertIn("AKIDCI00000000000001", proc.stdout)
        finally:
            shutil.rmtree(work, ignore_errors=True)


class ComposeTest(unittest.TestCase):
    def compose_config(self, path):
        return subprocess.run(["docker-compose", "-f", path, "config"], capture_output=True,
                              text=True, timeout=120, cwd=os.path.dirname(path))

    def test_compose_file_is_valid(self):
        self.assertIsNotNone(shutil.which("docker-compose"),
                             "docker-compose is missing (scripts/setup-deps.sh)")
        proc = self.compose_config(COMPOSE)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        svc = yaml.safe_load(proc.stdout)["services"]["berth"]
        self.assertTrue(svc["read_only"])
        self.assertEqual(svc["user"], "%d:%d" % (IMAGE_UID, IMAGE_UID))
        self.assertIn("berth-data:/var/lib/berth:rw", svc["volumes"])
        # a broken file is refused
        tmp = tempfile.mkdtemp(prefix="compose-")
        try:
            with open(COMPOSE) as f:
                text = f.read()
            broken = os.path.join(tmp, "compose.yaml")
            with open(broken, "w") as f:
                f.write(text.replace("read_only:", "read_onyl:"))
            proc = self.compose_config(broken)
            self.assertNotEqual(proc.returncode, 0)
            self.assertIn("read_onyl", proc.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        # the example keys file is a configuration berth accepts
        with open(os.path.join(DEPLOY, "compose", "keys.example.json")) as f:
            keys = json.load(f)["auth"]["keys"]
        self.assertEqual(len(keys), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
