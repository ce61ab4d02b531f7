#!/bin/sh
# Install whatever berth needs to build and test that is missing, from
# Debian's archive. Idempotent and silent when everything is present.
#   scripts/setup-deps.sh          build + test dependencies
#   scripts/setup-deps.sh --bench  also what `make bench` needs
set -eu

BUILD_PKGS="git cmake make gcc clang libclang-rt-14-dev pkg-config clang-format
libmicrohttpd-dev libgnutls28-dev libssl-dev libsqlite3-dev libjansson-dev libzstd-dev zlib1g-dev
libarchive-dev libcurl4-openssl-dev libpq-dev"
TEST_PKGS="python3 python3-boto3 awscli skopeo zstd prometheus chromium chromium-driver postgresql
openssl curl systemd man-db groff-base umoci python3-yaml python3-kubernetes docker-compose
docker-registry golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev
python3-cryptography"
# The real clients' suites (tests/integration/clients, ctest label daemons): dockerd and the
# docker CLI, containerd and ctr, podman and buildah, and crane, which the build compiles
# from Debian's go-containerregistry source (bookworm-backports) with golang-go.
CLIENT_PKGS="docker.io containerd podman buildah golang-go
golang-github-google-go-containerregistry-dev"
BACKPORTS_PKGS="golang-github-google-go-containerregistry-dev"
BACKPORTS_LIST=/etc/apt/sources.list.d/berth-bookworm-backports.sources
# The S3 tests (ctest label s3, tests/integration/storage/test_s3.py, make test-s3): a
# single-node OpenStack Swift with s3api (tests/integration/lib/swift_fixture.py).
S3_PKGS="swift-proxy swift-account swift-container swift-object memcached"
# The replicas' suites (tests/integration/cluster, ctest label cluster) put three berths
# behind haproxy (tests/integration/lib/cluster.py), as docs/scale-out.md does.
CLUSTER_PKGS="haproxy"
BENCH_PKGS="docker-registry openssl"

pkgs="$BUILD_PKGS $TEST_PKGS $CLIENT_PKGS $S3_PKGS $CLUSTER_PKGS"
# packaging/test_deploy reads deploy/kubernetes with kubectl: the machine's own when it has
# one (another package may own /usr/bin/kubectl), else Debian's
if ! command -v kubectl >/dev/null 2>&1; then
    pkgs="$pkgs kubernetes-client"
fi
if [ "${1:-}" = "--bench" ]; then
    pkgs="$pkgs $BENCH_PKGS"
fi

missing=""
for p in $pkgs; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
    esac
done
# The tests of the 2024-2026 ECR operations use the machine image's Python
# (the first python3 on PATH; tests/CMakeLists.txt, BERTH_MODERN_PYTHON) with
# boto3/botocore >= 1.40 and AWS CLI v1: it is not a Debian package, so its
# absence is an error here, never a reason to skip those tests.
check_modern_python() {
    modern=$(command -v python3 || true)
    if [ -z "$modern" ] || ! "$modern" - <<'PY' >/dev/null 2>&1
import boto3, botocore, awscli
v = tuple(int(p) for p in boto3.__version__.split(".")[:2])
raise SystemExit(0 if v >= (1, 40) else 1)
PY
    then
        echo "berth setup: the first python3 on PATH (${modern:-none}) lacks boto3 >= 1.40" >&2
        echo "berth setup: and the AWS CLI v1 (awscli) that the tests of the newest ECR" >&2
        echo "berth setup: operations need (the machine image's Python has them)" >&2
        exit 1
    fi
}

# The console's browser tests load axe-core (npm, pinned by
# tests/integration/console/package-lock.json) into Chromium for the
# accessibility check: installed with npm ci when missing or older than the lock.
npm_deps() {
    dir="$(dirname "$0")/../tests/integration/console"
    if [ ! -f "$dir/node_modules/axe-core/axe.min.js" ] ||
        [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        if ! command -v npm >/dev/null 2>&1; then
            echo "berth setup: npm is needed to install axe-core for the console's tests" >&2
            exit 1
        fi
        echo "berth setup: installing the console tests' npm packages (axe-core)" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || exit 1
    fi
}

if [ -z "$missing" ]; then
    npm_deps
    check_modern_python
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "berth setup: these Debian packages are missing:$missing" >&2
    echo "berth setup: run as root (or with passwordless sudo), or install them:" >&2
    echo "    apt-get install -y$missing" >&2
    exit 1
fi

echo "berth setup: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Other engineers' set-ups may hold apt's lock for a while: wait for it.
APT="$SUDO apt-get -o DPkg::Lock::Timeout=600"
update=""
for p in $BACKPORTS_PKGS; do
    case " $missing " in
    *" $p "*)
        if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
            printf '%s\n' "Types: deb" "URIs: http://deb.debian.org/debian" \
                "Suites: bookworm-backports" "Components: main" \
                "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" |
                $SUDO tee "$BACKPORTS_LIST" >/dev/null
            update=1
        fi
        ;;
    esac
done
# docker.io and containerd must not start system-wide daemons (/run/docker.sock,
# /var/lib/docker): the tests start their own. Without a policy-rc.d, one that forbids
# starting services is in place for the install only.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    policy=1
fi
status=0
if [ -n "$update" ]; then
    $APT update -qq >/dev/null || status=$?
fi
# shellcheck disable=SC2086
if [ "$status" -eq 0 ] && ! $APT install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
    $APT update -qq >/dev/null || status=$?
    # shellcheck disable=SC2086
    [ "$status" -ne 0 ] || $APT install -y -qq --no-install-recommends $missing >/dev/null ||
        status=$?
fi
if [ -n "$policy" ]; then
    $SUDO rm -f /usr/sbin/policy-rc.d
fi
[ "$status" -eq 0 ] || exit "$status"
npm_deps
check_modern_python
