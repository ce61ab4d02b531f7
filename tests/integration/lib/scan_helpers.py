"""Helpers for the image scanning tests: images with package databases, OSV records and
waiting for a scan. The tests drive berth with clients.py's boto3, aws CLI and skopeo,
unsigned: berth allows anonymous access on loopback.

Images are built here, byte for byte: layers are tar archives (uncompressed, gzip, or zstd
through the zstd program) holding /etc/os-release and a dpkg status or apk installed file.
"""

import gzip
import io
import json
import os
import subprocess
import tarfile

import berth_harness as h

ZSTD_BIN = "/usr/bin/zstd"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
SAMPLE_HOOK = os.path.join(h.REPO_ROOT, "deploy", "scan-hook-example.sh")

UNSUPPORTED = ("UnsupportedImageError: The operating system and/or package manager are not "
               "supported.")
COMPLETE = "The scan was completed successfully."

V3_HIGH = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"       # 7.5
V3_CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"   # 9.8

DEBIAN_OS_RELEASE = (b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
                     b'VERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n')
ALPINE_OS_RELEASE = (b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n'
                     b'PRETTY_NAME="Alpine Linux v3.19"\n')


def dpkg_entry(package, version, source=None, status="install ok installed"):
    lines = ["Package: " + package, "Status: " + status, "Architecture: amd64"]
    if source:
        lines.append("Source: " + source)
    lines.append("Version: " + version)
    return "\n".join(lines) + "\n"


# The dpkg database of the Debian images: openssl and glibc below their fixes, zlib with
# a record that has no fix, bash above its fix, and a package that is not installed.
DPKG_STATUS = "\n".join([
    dpkg_entry("libssl3", "3.0.11-1~deb12u1", "openssl"),
    dpkg_entry("libc6", "2.36-9+deb12u1", "glibc"),
    dpkg_entry("zlib1g", "1:1.2.13.dfsg-1+b1", "zlib (1:1.2.13.dfsg-1)"),
    dpkg_entry("bash", "5.2.15-2+b2"),
    dpkg_entry("libcurl4", "7.88.1-10+deb12u4", "curl", status="deinstall ok config-files"),
]).encode()

# A later layer's database: glibc upgraded past its fix, curl installed.
DPKG_STATUS_UPGRADED = "\n".join([
    dpkg_entry("libssl3", "3.0.11-1~deb12u1", "openssl"),
    dpkg_entry("libc6", "2.36-9+deb12u3", "glibc"),
    dpkg_entry("zlib1g", "1:1.2.13.dfsg-1+b1", "zlib (1:1.2.13.dfsg-1)"),
    dpkg_entry("bash", "5.2.15-2+b2"),
    dpkg_entry("libcurl4", "7.88.1-10+deb12u4", "curl"),
]).encode()

APK_INSTALLED = (b"C:Q1abc=\nP:libssl3\nV:3.1.4-r0\nA:x86_64\no:openssl\n\n"
                 b"C:Q1def=\nP:busybox\nV:1.36.1-r15\nA:x86_64\no:busybox\n\n"
                 b"C:Q1ghi=\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\no:musl\n\n")

OSV_RECORDS = {
    "DSA-5532-1.json": {
        "id": "DSA-5532-1", "aliases": ["CVE-2023-5363"],
        "summary": "openssl - security update",
        "severity": [{"type": "CVSS_V3", "score": V3_HIGH}],
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [
                          {"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]}]}],
        "references": [{"type": "WEB", "url": "https://example.com/web"},
                       {"type": "ADVISORY", "url": "https://www.debian.org/security/2023/dsa-5532"}],
    },
    "DEBIAN-CVE-2023-4911.json": {
        "id": "DEBIAN-CVE-2023-4911", "upstream": ["CVE-2023-4911"],
        "summary": "Looney Tunables", "database_specific": {"severity": "medium"},
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "glibc"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [
                          {"introduced": "0"}, {"fixed": "2.36-9+deb12u3"}]}]}],
    },
    "DEBIAN-CVE-2023-45853.json": {
        "id": "DEBIAN-CVE-2023-45853", "upstream": ["CVE-2023-45853"],
        "summary": "zlib MiniZip overflow",
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "zlib"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}],
    },
    "DEBIAN-CVE-2023-38545.json": {
        "id": "DEBIAN-CVE-2023-38545", "upstream": ["CVE-2023-38545"],
        "summary": "SOCKS5 heap buffer overflow",
        "severity": [{"type": "CVSS_V3", "score": V3_CRITICAL}],
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "curl"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [
                          {"introduced": "0"}, {"fixed": "7.88.1-10+deb12u5"}]}]}],
        "references": [{"type": "ADVISORY", "url": "https://curl.se/docs/CVE-2023-38545.html"}],
    },
    "DEBIAN-CVE-2022-3715.json": {
        "id": "DEBIAN-CVE-2022-3715", "upstream": ["CVE-2022-3715"],
        "summary": "bash valid_parameter_transform overflow",
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "bash"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [
                          {"introduced": "0"}, {"fixed": "5.2.15-2"}]}]}],
    },
    "ALPINE-CVE-2023-5363.json": {
        "id": "ALPINE-CVE-2023-5363", "upstream": ["CVE-2023-5363"],
        "affected": [{"package": {"ecosystem": "Alpine:v3.19", "name": "openssl"},
                      "severity": [{"type": "CVSS_V3", "score": V3_HIGH}],
                      "ranges": [{"type": "ECOSYSTEM", "events": [
                          {"introduced": "0"}, {"fixed": "3.1.4-r1"}]}]}],
    },
    "ALPINE-CVE-2023-42363.json": {
        "id": "ALPINE-CVE-2023-42363", "upstream": ["CVE-2023-42363"],
        "summary": "busybox awk use after free", "database_specific": {"severity": "low"},
        "affected": [{"package": {"ecosystem": "Alpine:v3.19", "name": "busybox"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [
                          {"introduced": "0"}, {"fixed": "1.36.1-r16"}]}]}],
    },
}

# An extra record, imported later to see rescans pick it up.
OSV_LATE = {
    "DEBIAN-CVE-2024-2511.json": {
        "id": "DEBIAN-CVE-2024-2511", "upstream": ["CVE-2024-2511"],
        "summary": "openssl session cache growth", "database_specific": {"severity": "low"},
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [
                          {"introduced": "0"}, {"fixed": "3.0.13-1~deb12u1"}]}]}],
    },
}


def attrs(version, name, vector=None, score=None, fixed=None):
    out = [{"key": "package_version", "value": version}, {"key": "package_name", "value": name}]
    if fixed:  # berth's own attribute: the version that fixes it (none when no fix is known)
        out.append({"key": "fixed_in_version", "value": fixed})
    if vector:
        out += [{"key": "CVSS3_VECTOR", "value": vector}, {"key": "CVSS3_SCORE", "value": score}]
    return out


# What ECR reports for them (severity order, then name).
F_OPENSSL = {"name": "CVE-2023-5363", "description": "openssl - security update",
             "uri": "https://www.debian.org/security/2023/dsa-5532", "severity": "HIGH",
             "attributes": attrs("3.0.11-1~deb12u1", "openssl", V3_HIGH, "7.5",
                                 "3.0.11-1~deb12u2")}
F_GLIBC = {"name": "CVE-2023-4911", "description": "Looney Tunables", "severity": "MEDIUM",
           "attributes": attrs("2.36-9+deb12u1", "glibc", fixed="2.36-9+deb12u3")}
F_ZLIB = {"name": "CVE-2023-45853", "description": "zlib MiniZip overflow",
          "severity": "UNDEFINED", "attributes": attrs("1:1.2.13.dfsg-1", "zlib")}
F_CURL = {"name": "CVE-2023-38545", "description": "SOCKS5 heap buffer overflow",
          "uri": "https://curl.se/docs/CVE-2023-38545.html", "severity": "CRITICAL",
          "attributes": attrs("7.88.1-10+deb12u4", "curl", V3_CRITICAL, "9.8",
                              "7.88.1-10+deb12u5")}
F_OPENSSL_LATE = {"name": "CVE-2024-2511", "description": "openssl session cache growth",
                  "severity": "LOW",
                  "attributes": attrs("3.0.11-1~deb12u1", "openssl", fixed="3.0.13-1~deb12u1")}
F_ALPINE_OPENSSL = {"name": "CVE-2023-5363", "description": "", "severity": "HIGH",
                    "attributes": attrs("3.1.4-r0", "openssl", V3_HIGH, "7.5", "3.1.4-r1")}
F_ALPINE_BUSYBOX = {"name": "CVE-2023-42363", "description": "busybox awk use after free",
                    "severity": "LOW",
                    "attributes": attrs("1.36.1-r15", "busybox", fixed="1.36.1-r16")}

DEBIAN_FINDINGS = [F_OPENSSL, F_GLIBC, F_ZLIB]
UPGRADED_FINDINGS = [F_CURL, F_OPENSSL, F_ZLIB]
ALPINE_FINDINGS = [F_ALPINE_OPENSSL, F_ALPINE_BUSYBOX]


def write_osv(directory, records):
    os.makedirs(directory, exist_ok=True)
    for name, record in records.items():
        with open(os.path.join(directory, name), "w") as f:
            json.dump(record, f)
    return directory


# ---------------------------------------------------------------------------------------------
# Images


def tar_bytes(files):
    """An uncompressed tar of {name: bytes} (directories for parents), deterministic."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for name in sorted(files):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d + "/")
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = 1700000000
                    tar.addfile(info)
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 1700000000
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def zstd_compress(data):
    proc = subprocess.run([ZSTD_BIN, "-q", "-c", "-3"], input=data, capture_output=True,
                          check=True, timeout=30)
    return proc.stdout


def layer(files, compression="gzip"):
    """(blob, media type, diff id) of a layer holding files ({name: bytes})."""
    if compression == "raw":  # bytes given as is (broken layers), announced as gzip
        return files, h.MT_OCI_LAYER_GZIP, h.digest_of(files)
    raw = tar_bytes(files)
    if compression == "gzip":
        return gzip.compress(raw, mtime=0), h.MT_OCI_LAYER_GZIP, h.digest_of(raw)
    if compression == "zstd":
        return zstd_compress(raw), MT_OCI_LAYER_ZSTD, h.digest_of(raw)
    if compression == "none":
        return raw, h.MT_OCI_LAYER_TAR, h.digest_of(raw)
    raise ValueError(compression)


def image(layers, label="x"):
    """An OCI image of the given layers ((blob, media type, diff id) tuples)."""
    blobs = {}
    descs = []
    for blob, mt, _ in layers:
        blobs[h.digest_of(blob)] = blob
        descs.append(h.blob_descriptor(mt, blob))
    config = h.canonical_json({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"test": label}},
        "rootfs": {"type": "layers", "diff_ids": [d for _, _, d in layers]},
    })
    blobs[h.digest_of(config)] = config
    manifest = {"schemaVersion": 2, "mediaType": h.MT_OCI_MANIFEST,
                "config": h.blob_descriptor(h.MT_OCI_CONFIG, config), "layers": descs}
    return h.Image(manifest, blobs, h.MT_OCI_MANIFEST)


def debian_image(compression="gzip", label="debian"):
    return image([layer({"etc/os-release": DEBIAN_OS_RELEASE,
                         "var/lib/dpkg/status": DPKG_STATUS}, compression)], label)


def debian_upgraded_image():
    return image([
        layer({"etc/os-release": DEBIAN_OS_RELEASE, "var/lib/dpkg/status": DPKG_STATUS}, "gzip"),
        layer({"usr/local/bin/app": b"#!/bin/sh\necho app\n"}, "zstd"),
        layer({"var/lib/dpkg/status": DPKG_STATUS_UPGRADED}, "none"),
    ], "upgraded")


def debian_whiteout_image():
    return image([
        layer({"etc/os-release": DEBIAN_OS_RELEASE, "var/lib/dpkg/status": DPKG_STATUS}, "gzip"),
        layer({"var/lib/dpkg/.wh.status": b""}, "none"),
    ], "whiteout")


def alpine_image():
    return image([layer({"etc/os-release": ALPINE_OS_RELEASE,
                         "lib/apk/db/installed": APK_INSTALLED}, "gzip")], "alpine")


def scratch_image():
    return image([layer({"app": b"\x7fELF static binary"}, "none")], "scratch")


def truncated_image():
    good, _, _ = layer({"etc/os-release": DEBIAN_OS_RELEASE,
                        "var/lib/dpkg/status": DPKG_STATUS * 50}, "gzip")
    return image([layer(good[:len(good) // 2], "raw")], "truncated")


def bomb_image(size):
    """A small gzip layer that expands to size bytes of zeros."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("zeros")
        info.size = size
        tar.addfile(info, io.BytesIO(bytes(size)))
    data = raw.getvalue()
    return image([(gzip.compress(data, compresslevel=9, mtime=0), h.MT_OCI_LAYER_GZIP,
                   h.digest_of(data))], "bomb")


def oversized_dpkg_image(size):
    """A Debian image whose dpkg status is over size bytes."""
    paragraph = dpkg_entry("libssl3", "3.0.11-1~deb12u1", "openssl").encode() + b"\n"
    status = paragraph * (size // len(paragraph) + 1)
    return image([layer({"etc/os-release": DEBIAN_OS_RELEASE, "var/lib/dpkg/status": status},
                        "gzip")], "oversized")


def not_tar_image():
    return image([layer(b"this is not a tar archive at all" * 20, "raw")], "not-tar")


# ---------------------------------------------------------------------------------------------
# Waiting for scans


def wait_scan(client, repo, image_id, timeout=30.0):
    """DescribeImageScanFindings until the status is not IN_PROGRESS; return the response."""
    def ended():
        resp = client.describe_image_scan_findings(repositoryName=repo, imageId=image_id)
        return resp if resp["imageScanStatus"]["status"] != "IN_PROGRESS" else None
    return h.wait_until(ended, timeout, what="the scan of %s %s to end" % (repo, image_id))


def findings_of(resp):
    return resp["imageScanFindings"]["findings"]


def names_of(resp):
    """(name, package) of each finding, from findings or (scanType ENHANCED) enhancedFindings."""
    got = resp["imageScanFindings"]
    if "findings" in got:
        return [(f["name"], {a["key"]: a["value"] for a in f["attributes"]}["package_name"])
                for f in got["findings"]]
    return [(f["packageVulnerabilityDetails"]["vulnerabilityId"],
             f["packageVulnerabilityDetails"]["vulnerablePackages"][0]["name"])
            for f in got["enhancedFindings"]]


def names(findings):
    """(name, package) of each of these basic findings."""
    return [(f["name"], {a["key"]: a["value"] for a in f["attributes"]}["package_name"])
            for f in findings]
