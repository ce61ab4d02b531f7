"""The real clients the integration tests drive, built in one place: boto3 ECR clients,
the AWS CLI (/usr/bin/aws, never whatever 'aws' comes first on PATH) and skopeo.

Each is isolated from the developer running the tests. Importing this module removes every
AWS_* variable from os.environ (AWS_PROFILE, AWS_DEFAULT_REGION, credentials, endpoint and
retry settings would otherwise reach botocore and the CLI) and points botocore at empty
configuration and credentials files. The CLI and skopeo run with a private HOME.

Neither AWS client retries: a 5xx from berth must fail the test, not be retried away
(botocore's retries={"max_attempts": N} counts retries, so only total_max_attempts=1 and the
CLI's AWS_MAX_ATTEMPTS=1 mean one attempt).
"""

import atexit
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

for _key in [k for k in os.environ if k.startswith("AWS_")]:
    del os.environ[_key]
os.environ.update({
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
})

import berth_harness as h  # noqa: E402 (after the environment is clean)

AWS_BIN = "/usr/bin/aws"
# Tests of the 2024-2026 ECR operations run under the machine image's Python (tests/CMakeLists.txt
# sets BERTH_MODERN_CLIENTS for them): its boto3 and its AWS CLI v1 (`python -m awscli`) are the
# clients, since Debian's boto3 1.26 and CLI 2.9 lack those operations.
MODERN = os.environ.get("BERTH_MODERN_CLIENTS") == "1"
MODERN_BOTO3_MIN = (1, 40)
SKOPEO_BIN = "/usr/bin/skopeo"
REGION = "us-east-1"  # berth's default registry.region
CLI_TIMEOUT = 120
# Any key works while berth has no access keys (anonymous loopback); tests that want their
# requests signed use this one.
DUMMY_KEY = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")

# CLI v2 adds "(reached max retries: N)" before the colon.
CLI_ERROR_RE = re.compile(r"An error occurred \(([A-Za-z]+)\) when calling the (\w+) operation"
                          r"(?: \(reached max retries: \d+\))?: (.*)", re.S)

_home = None


UNSHARE_BIN = "/usr/bin/unshare"


def private_mounts(cmd, tmpfs, binds=()):
    """cmd in a mount namespace of its own with an empty tmpfs on each directory of tmpfs
    (created if missing), so that a client run as root leaves nothing in them: skopeo and
    podman keep their blob-info cache in /var/lib/containers/cache whatever HOME says,
    dockerd creates /run/docker/plugins. binds: (source, existing target) pairs bound over
    root's files for this command alone (a private /etc/hosts, /etc/docker)."""
    require(UNSHARE_BIN)
    steps = ["mkdir -p %s && mount -t tmpfs -o mode=%s berth-test %s" % (
        p, "1777" if p == "/dev/shm" else "0755", p) for p in tmpfs]
    steps += ["mount --bind %s %s" % (shlex.quote(src), shlex.quote(dst)) for src, dst in binds]
    script = " && ".join(steps)
    return [UNSHARE_BIN, "--mount", "--propagation", "private", "/bin/sh", "-c",
            script + ' && exec "$@"', "berth-private"] + list(cmd)


def require(path):
    """A client the set-up installs (scripts/setup-deps.sh, run by make test) is missing:
    that fails the test, it is no reason to skip it."""
    if not os.access(path, os.X_OK):
        raise AssertionError("%s is missing; scripts/setup-deps.sh installs it" % path)


def private_home():
    """A HOME of this test process's own (removed at exit) holding an empty aws-config."""
    global _home
    if _home is None:
        _home = tempfile.mkdtemp(prefix="berth-clients-")
        atexit.register(shutil.rmtree, _home, True)
        open(os.path.join(_home, "aws-config"), "w").close()
    return _home


def require_modern():
    """The running Python must carry boto3 >= 1.40 and the AWS CLI v1 (the machine image's
    Python; scripts/setup-deps.sh checks it too). Missing is a failure, never a skip."""
    import boto3
    version = tuple(int(p) for p in boto3.__version__.split(".")[:2])
    if version < MODERN_BOTO3_MIN:
        raise AssertionError("%s has boto3 %s; these tests need >= %d.%d (run them under the "
                             "machine image's python3, BERTH_MODERN_PYTHON)" % (
                                 sys.executable, boto3.__version__, *MODERN_BOTO3_MIN))
    try:
        import awscli  # noqa: F401
    except ImportError:
        raise AssertionError("%s has no AWS CLI v1 (awscli)" % sys.executable)


def aws_command():
    """How to run the AWS CLI: /usr/bin/aws, or under MODERN this Python's CLI v1."""
    if MODERN:
        return [sys.executable, "-m", "awscli"]
    require(AWS_BIN)
    return [AWS_BIN]


# ---------------------------------------------------------------------------------------------
# boto3


def ecr_client(server, key=None, secret=None, session_token=None, region=REGION):
    """A boto3 ECR client for server (a harness Server) that makes one attempt per call.
    Requests are signed with key and secret when given, else sent unsigned."""
    import boto3  # Debian's python3-boto3, imported only by tests that use it
    import botocore
    from botocore.config import Config
    options = {"retries": {"total_max_attempts": 1, "mode": "standard"}}
    if key is None:
        options["signature_version"] = botocore.UNSIGNED
    return boto3.session.Session().client(
        "ecr", endpoint_url=server.base_url, region_name=region, aws_access_key_id=key,
        aws_secret_access_key=secret, aws_session_token=session_token, config=Config(**options))


# ---------------------------------------------------------------------------------------------
# The AWS CLI


def aws_env(key=None, secret=None, region=REGION):
    """Environment for /usr/bin/aws (or a shell pipeline that runs it): a private HOME and
    empty configuration, one attempt per call, and these credentials when given."""
    home = private_home()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "HOME": home,
        "AWS_CONFIG_FILE": os.path.join(home, "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "aws-config"),
        "AWS_DEFAULT_REGION": region,
        "AWS_PAGER": "",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    if key is not None:
        env["AWS_ACCESS_KEY_ID"] = key
        env["AWS_SECRET_ACCESS_KEY"] = secret
    return env


class AwsResult:
    """One run of the CLI: exit status rc, stdout out and stderr err as text."""

    def __init__(self, args, rc, out, err):
        self.args = args
        self.rc = rc
        self.out = out
        self.err = err

    def json(self):
        return json.loads(self.out) if self.out.strip() else {}

    def error(self):
        """(code, message) from the CLI's 'An error occurred (X) ...' line, or None."""
        m = CLI_ERROR_RE.search(self.err)
        return (m.group(1), m.group(3).strip()) if m else None

    def describe(self):
        return "aws ecr %s -> %d\nstdout: %s\nstderr: %s" % (
            " ".join(self.args), self.rc, self.out[-3000:], self.err[-3000:])

    __repr__ = describe


def aws(server, *args, key=None, secret=None, region=REGION, endpoint=None, output="json",
        timeout=CLI_TIMEOUT):
    """Run `/usr/bin/aws ecr ARGS` against server (at endpoint, a URL, when given): signed
    with key and secret when given, else with --no-sign-request. Returns an AwsResult; a
    failing command is not an exception."""
    args = [str(a) for a in args]
    cmd = aws_command() + ["ecr"] + args + ["--endpoint-url", endpoint or server.base_url,
                                     "--output", output]
    if key is None:
        cmd.append("--no-sign-request")
    proc = subprocess.run(cmd, env=aws_env(key, secret, region), capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=private_home())
    return AwsResult(args, proc.returncode, proc.stdout.decode("utf-8", "replace"),
                     proc.stderr.decode("utf-8", "replace"))


# ---------------------------------------------------------------------------------------------
# skopeo


class Skopeo:
    """skopeo with a private HOME (its containers configuration and auth file), an
    accept-anything signature policy, no credentials until a login writes auth_file, and a
    private /var/lib/containers (root's blob-info cache: private_mounts)."""

    def __init__(self, work):
        self.home = os.path.join(work, "skopeo-home")
        os.makedirs(self.home, exist_ok=True)
        self.auth_file = os.path.join(self.home, "auth.json")
        self.policy = os.path.join(self.home, "policy.json")
        with open(self.policy, "w") as f:
            json.dump({"default": [{"type": "insecureAcceptAnything"}]}, f)
        self.work = work

    def env(self, base=None):
        """base (default os.environ) with skopeo's private HOME and auth file."""
        env = dict(os.environ if base is None else base)
        env.update({"HOME": self.home, "XDG_RUNTIME_DIR": self.home,
                    "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
                    "REGISTRY_AUTH_FILE": self.auth_file})
        return env

    def run(self, *args, check=True, timeout=CLI_TIMEOUT):
        """Run `skopeo --policy <policy> ARGS`; with check, a non-zero exit is an
        AssertionError. Returns the CompletedProcess (bytes)."""
        require(SKOPEO_BIN)
        cmd = [SKOPEO_BIN, "--policy", self.policy] + [str(a) for a in args]
        proc = subprocess.run(private_mounts(cmd, ("/var/lib/containers",)), env=self.env(),
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s" % (
                " ".join(cmd), proc.returncode, proc.stdout.decode(errors="replace")[-2000:],
                proc.stderr.decode(errors="replace")[-4000:]))
        return proc

    def push(self, server, images_by_tag, repo):
        """Write an OCI layout of {tag: image} and copy every tag (all of an index's
        images, digests preserved) to repo on the server, without credentials."""
        layout = tempfile.mkdtemp(prefix="layout-", dir=self.work)
        h.write_oci_layout(layout, images_by_tag)
        for tag in images_by_tag:
            self.run("copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
                     "--dest-no-creds", "oci:%s:%s" % (layout, tag),
                     "docker://127.0.0.1:%d/%s:%s" % (server.port, repo, tag))
        shutil.rmtree(layout, ignore_errors=True)
