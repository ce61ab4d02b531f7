#!/bin/sh
# An example berth scan hook (scan.hook). It shows the contract, not a real
# vulnerability scanner: see docs/scanning.md for wrapping trivy or grype.
#
# berth runs the hook once per image with these environment variables:
#   BERTH_SCAN_LAYOUT      an OCI image layout directory (also the working directory)
#   BERTH_SCAN_REF         the image's org.opencontainers.image.ref.name in index.json
#   BERTH_SCAN_REPOSITORY  BERTH_SCAN_DIGEST  BERTH_SCAN_MEDIA_TYPE  BERTH_SCAN_TAG
# and expects ECR's findings JSON on stdout and exit status 0. Anything else
# (a non-zero exit, invalid JSON) makes the scan FAILED, with the last line
# written to stderr in the status description.
#
# This example reads the image's layers in order, keeps the last dpkg status
# and apk installed database (honouring whiteouts of those files), and
# reports every installed package whose exact version an advisory file lists.
# Advisory file: $SCAN_HOOK_ADVISORIES (default /etc/berth/scan-advisories.txt),
# one advisory per line, fields separated by blanks, '#' starts a comment:
#   <package> <version> <SEVERITY> <ID> <description ...>
# e.g.  openssl 3.0.11-1~deb12u1 HIGH CVE-2023-5363 openssl: incorrect cipher key length
#
# Needs POSIX sh, awk, sed and grep, plus three tools POSIX does not
# define: GNU tar (tar -O; gzip and, for zstd layers, zstd), sha256sum and
# stat -c (GNU coreutils or BusyBox both have them). Its JSON reading is
# deliberately simple: it takes the sha256 digests that follow the
# manifest's "layers" key.
set -eu

fail() {
    echo "scan-hook-example: $*" >&2
    exit 2
}

layout=${BERTH_SCAN_LAYOUT:?"not run by berth: BERTH_SCAN_LAYOUT is not set"}
digest=${BERTH_SCAN_DIGEST:?"BERTH_SCAN_DIGEST is not set"}
advisories=${SCAN_HOOK_ADVISORIES:-/etc/berth/scan-advisories.txt}
[ -r "$advisories" ] || fail "cannot read the advisory file $advisories"

blob_path() {
    echo "$layout/blobs/${1%%:*}/${1#*:}"
}

# The layout is the image berth stores: check the manifest against its digest
# and that index.json names it.
manifest=$(blob_path "$digest")
[ -f "$manifest" ] || fail "the manifest blob $digest is not in the layout"
case $digest in
sha256:*)
    sum=$(sha256sum <"$manifest" | cut -d' ' -f1)
    [ "sha256:$sum" = "$digest" ] || fail "the manifest does not match $digest"
    ;;
esac
grep -q "\"$digest\"" "$layout/index.json" || fail "index.json does not list $digest"

work="$layout/.hook-work"
mkdir -p "$work"
dpkg_db="$work/dpkg-status"
apk_db="$work/apk-installed"

# Layers in order; a later layer replaces or deletes (whiteout) the files.
layers=$(tr -d '\n' <"$manifest" | sed 's/.*"layers"//' | awk '{
    s = $0
    while (match(s, /sha256:[0-9a-f]+/)) {
        d = substr(s, RSTART, RLENGTH)
        if (length(d) == 71) print d
        s = substr(s, RSTART + RLENGTH)
    }
}')
for layer in $layers; do
    file=$(blob_path "$layer")
    [ -f "$file" ] || continue # a non-distributable layer berth does not have
    list=$(tar -tf "$file" 2>/dev/null) || fail "layer $layer is not a readable tar archive"
    for pair in "var/lib/dpkg/status:$dpkg_db" "lib/apk/db/installed:$apk_db"; do
        path=${pair%%:*}
        out=${pair#*:}
        dir=${path%/*}
        base=${path##*/}
        if printf '%s\n' "$list" | grep -qxE "(\./)?$dir/(\.wh\.$base|\.wh\.\.wh\.\.opq)"; then
            rm -f "$out"
        fi
        entry=$(printf '%s\n' "$list" | grep -xE "(\./)?$path" | tail -n 1 || true)
        if [ -n "$entry" ]; then
            tar -xOf "$file" "$entry" >"$out" || fail "cannot read $path from layer $layer"
        fi
    done
done

# Installed packages as "name version" lines.
: >"$work/packages"
if [ -f "$dpkg_db" ]; then
    awk '
        /^Package:/ { name = $2 }
        /^Version:/ { version = $2 }
        /^Status:/  { installed = ($NF == "installed") }
        /^$/        { if (name != "" && installed) print name, version; name = ""; installed = 0 }
        END         { if (name != "" && installed) print name, version }
    ' "$dpkg_db" >>"$work/packages"
fi
if [ -f "$apk_db" ]; then
    awk -F: '
        /^P:/ { name = $2 }
        /^V:/ { version = $2 }
        /^$/  { if (name != "") print name, version; name = "" }
        END   { if (name != "") print name, version }
    ' "$apk_db" >>"$work/packages"
fi

updated=$(stat -c %Y "$advisories") # GNU or BusyBox stat: the mtime in epoch seconds

# Match and print ECR's shape: {"findings": [...], "vulnerabilitySourceUpdatedAt": N}.
awk -v updated="$updated" '
    function esc(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, " ", s); return s }
    FNR == NR {
        if ($0 ~ /^[ \t]*(#|$)/) next
        key = $1 " " $2
        desc = ""
        for (i = 5; i <= NF; i++) desc = desc (i > 5 ? " " : "") $i
        n[key]++
        sev[key, n[key]] = $3; id[key, n[key]] = $4; text[key, n[key]] = desc
        next
    }
    {
        key = $1 " " $2
        for (j = 1; j <= n[key]; j++) {
            printf "%s{\"name\":\"%s\",\"description\":\"%s\",\"severity\":\"%s\",", \
                (count++ ? "," : ""), esc(id[key, j]), esc(text[key, j]), sev[key, j]
            printf "\"attributes\":[{\"key\":\"package_name\",\"value\":\"%s\"},", esc($1)
            printf "{\"key\":\"package_version\",\"value\":\"%s\"}]}", esc($2)
        }
    }
    BEGIN { printf "{\"findings\":[" }
    END   { printf "],\"vulnerabilitySourceUpdatedAt\":%s}\n", updated }
' "$advisories" "$work/packages"
