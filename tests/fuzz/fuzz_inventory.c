/* libFuzzer target: what the built-in scanner reads from an image. The first
 * byte picks the parser: os-release, a dpkg status file (with or without
 * Status fields required), apk's installed database, one rpm header blob,
 * or a whole rpmdb.sqlite; the rest is its input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scan/packages/scan_inventory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_os(const struct scan_os *os, enum berth_err rc)
{
    const char *const fields[] = {os->id, os->version_id, os->codename, os->ecosystem, os->family};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (memchr(fields[i], '\0', SCAN_OS_VALUE_MAX) == NULL) {
            abort();
        }
    }
    /* a supported OS names its ecosystem and package manager */
    if (rc == BERTH_OK && (os->ecosystem[0] == '\0' || os->manager == SCAN_PKG_NONE)) {
        abort();
    }
}

static void check_pkgs(const struct scan_pkgs *pkgs)
{
    if (pkgs->count > SCAN_MAX_PACKAGES || pkgs->count > pkgs->cap) {
        abort();
    }
    for (size_t i = 0; i < pkgs->count; i++) {
        const struct scan_pkg *p = &pkgs->items[i];
        if (p->name == NULL || p->version == NULL || p->source == NULL || p->name[0] == '\0' ||
            p->version[0] == '\0' || strlen(p->name) > SCAN_PKG_NAME_MAX ||
            strlen(p->source) > SCAN_PKG_NAME_MAX) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    struct scan_pkgs pkgs;
    scan_pkgs_init(&pkgs);
    char reason[256];
    switch (data[0] % 6) {
    case 0: {
        struct scan_os os;
        check_os(&os, scan_os_parse(text, len, &os));
        break;
    }
    case 1:
        (void)scan_dpkg_parse(text, len, false, &pkgs, reason, sizeof(reason));
        break;
    case 2:
        (void)scan_dpkg_parse(text, len, true, &pkgs, reason, sizeof(reason));
        break;
    case 3:
        (void)scan_apk_parse(text, len, &pkgs, reason, sizeof(reason));
        break;
    case 4:
        (void)scan_rpm_header_parse(text, len, &pkgs);
        break;
    default:
        (void)scan_rpmdb_parse(text, len, &pkgs, reason, sizeof(reason));
        break;
    }
    /* on error the list may be partial, but what it holds is whole */
    check_pkgs(&pkgs);
    scan_pkgs_fini(&pkgs);
    return 0;
}
