#!/bin/sh
# Build berth's OCI image with no container engine and no network: the `make install`
# tree of BUILD (prefix /usr, stripped), exactly the shared libraries `ldd` says the
# binary loads (with the dynamic loader), an /etc/passwd naming the user berth (10001),
# and the data directory /var/lib/berth owned by it; one layer written with GNU tar
# (fixed owners, modes and times), assembled by umoci.
#   scripts/build-image.sh [BUILD [OUT]]   (defaults: build, BUILD/image)
# Writes OUT/layout (an OCI image layout with the one reference berth:<version>) and OUT/berth-image.tar
# (the same layout as one tar: skopeo's oci-archive:, `podman load`).
set -eu

build=${1:-build}
out=${2:-$build/image}
src=$(cd -P "$(dirname "$0")/.." && pwd)
uid=10001
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct 2>/dev/null || echo 0)}

for tool in umoci tar ldd; do
    command -v "$tool" >/dev/null || { echo "build-image: $tool is missing (scripts/setup-deps.sh)" >&2; exit 1; }
done
[ -x "$build/berth" ] || { echo "build-image: no $build/berth (make build first)" >&2; exit 1; }
version=$("$build/berth" version | awk '{print $2}')
# the layout's reference: what `podman load` and `skopeo copy oci:DIR:REF` name it
ref=berth:$version

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/rootfs
DESTDIR=$root cmake --install "$build" --prefix /usr --strip >/dev/null
# what a container does not use: the systemd files, the manual, the README
rm -rf "$root/usr/lib/systemd" "$root/usr/lib/sysusers.d" "$root/usr/share/man" \
    "$root/usr/share/doc"
cp "$src/deploy/image/berth.json" "$root/etc/berth/berth.json"

# The binary's shared libraries and loader, each at the path the loader finds it at.
ldd "$root/usr/bin/berth" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
    while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
# glibc loads libgcc_s itself to unwind a thread's stack (pthread_exit, cancellation)
for lib in /lib/x86_64-linux-gnu/libgcc_s.so.1; do
    if [ -e "$lib" ] && [ ! -e "$root$lib" ]; then
        cp -L "$lib" "$root$lib"
    fi
done

# mount points a runtime fills (proc, dev, sys), /tmp, the data directory
mkdir -p "$root/tmp" "$root/var/lib/berth" "$root/proc" "$root/dev" "$root/sys"
chmod 1777 "$root/tmp"
chmod 0700 "$root/var/lib/berth"
printf 'root:x:0:0:root:/root:/sbin/nologin\nberth:x:%s:%s:berth:/var/lib/berth:/sbin/nologin\n' \
    "$uid" "$uid" >"$root/etc/passwd"
printf 'root:x:0:\nberth:x:%s:\n' "$uid" >"$root/etc/group"

# One layer: everything root's, but the data directory the berth user's.
tar_opts="--format=pax --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime
--sort=name --numeric-owner --mtime=@$epoch"
# shellcheck disable=SC2086
tar -C "$root" -cf "$stage/layer.tar" $tar_opts --owner=0 --group=0 \
    --exclude=./var/lib/berth .
# shellcheck disable=SC2086
tar -C "$root" -rf "$stage/layer.tar" $tar_opts --owner=$uid --group=$uid ./var/lib/berth

created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
rm -rf "$out"
mkdir -p "$out"
layout=$out/layout
umoci init --layout "$layout"
umoci new --image "$layout:$ref"
umoci raw add-layer --image "$layout:$ref" --history.created "$created" \
    --history.created_by "scripts/build-image.sh (berth $version)" "$stage/layer.tar"
umoci config --image "$layout:$ref" --created "$created" --history.created "$created" \
    --architecture amd64 --os linux --author "berth" \
    --config.user "$uid:$uid" --config.entrypoint /usr/bin/berth --config.cmd serve \
    --config.env BERTH_CONFIG=/etc/berth/berth.json --config.workingdir /var/lib/berth \
    --config.exposedports 5000/tcp --config.volume /var/lib/berth --config.stopsignal SIGTERM \
    --config.label org.opencontainers.image.title=berth \
    --config.label "org.opencontainers.image.version=$version" \
    --config.label "org.opencontainers.image.description=OCI registry with Amazon ECR's API"
umoci gc --layout "$layout"
tar -C "$layout" -cf "$out/berth-image.tar" --sort=name --numeric-owner --owner=0 --group=0 \
    --mtime=@"$epoch" .
echo "berth image $version: $layout (OCI layout, reference $ref), $out/berth-image.tar"
