/*
 * TLS through GnuTLS under libmicrohttpd (see tls.h). The certificate
 * pair is handed to GnuTLS by a retrieve callback, so a reload swaps it
 * for new handshakes without restarting the daemon; the callback also
 * requires and verifies a client certificate when a client CA is set.
 * Each connection gets its own transport, which carries what those
 * callbacks need. (Plain HTTP on the TLS port never reaches GnuTLS: the
 * listener, accept.c, answers it.)
 */
#include "server/http/tls.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <strings.h>

#include <jansson.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "server/auth/auth.h"
#include "server/metrics/metrics.h"

/* Certificates in a chain file, and the size of a PEM file read. */
#define TLS_CHAIN_MAX 16
#define TLS_PEM_MAX (1u << 20)

/* X25519 first among the groups: the server's order decides, and a TLS 1.3
 * client whose key share is not for the server's first group it supports
 * gets a HelloRetryRequest, one more round trip per connection. OpenSSL's
 * and Go's clients (curl, the AWS CLI, docker, containerd, podman, crane)
 * offer an X25519 share; GnuTLS's own order put P-256 first. */
const char TLS_PRIORITIES[] =
    "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"
    "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-GROUP-ALL:+GROUP-X25519:"
    "+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:+GROUP-X448:+GROUP-FFDHE2048:"
    "+GROUP-FFDHE3072:+GROUP-FFDHE4096:+GROUP-FFDHE6144:+GROUP-FFDHE8192:%SERVER_PRECEDENCE";

/* One loaded certificate chain and key. Superseded pairs stay on the
 * older list until tls_free: a handshake may still be using them. */
struct tls_pair {
    gnutls_pcert_st pcerts[TLS_CHAIN_MAX];
    unsigned count;
    gnutls_privkey_t key;
    struct tls_pair *older;
};

/* One loaded client CA bundle (mutual TLS), kept like the pairs: a
 * verification may still be using a superseded one. */
struct tls_ca {
    gnutls_x509_trust_list_t list;
    struct tls_ca *older;
};

/* One row of tls.client_principals: a name the client certificate must
 * carry (its subject's common name, or a DNS name among its subject
 * alternative names), exactly, and the access key id it acts as. */
struct tls_principal {
    bool dns;
    char *name;
    char akid[TLS_PRINCIPAL_MAX + 1];
};

/* The whole table, as one reload installed it; superseded tables stay
 * (older) until tls_free, as handshakes in progress may read them. */
struct tls_principals {
    struct tls_principal *rows;
    size_t count;
    struct tls_principals *older;
};

struct tls {
    char *cert_file;
    char *key_file;
    char *ca_file; /* NULL without mutual TLS */
    pthread_mutex_t mu;
    struct tls_pair *current;          /* under mu */
    struct tls_ca *ca;                 /* under mu; NULL without mutual TLS */
    struct tls_principals *principals; /* under mu; never NULL once made */
};

/* A connection's transport: GnuTLS's pointer for it, so the callbacks of
 * a handshake find the server's TLS state and the socket; and what the
 * client's verified certificate maps to. */
struct tls_conn {
    struct tls *tls;
    int fd;
    char principal[TLS_PRINCIPAL_MAX + 1]; /* "" when none */
};

bool tls_configured(const struct berth_config *cfg)
{
    return cfg->tls_cert_file != NULL && cfg->tls_cert_file[0] != '\0';
}

static void pair_free(struct tls_pair *p)
{
    while (p != NULL) {
        struct tls_pair *older = p->older;
        for (unsigned i = 0; i < p->count; i++) {
            gnutls_pcert_deinit(&p->pcerts[i]);
        }
        gnutls_privkey_deinit(p->key);
        free(p);
        p = older;
    }
}

static enum berth_err read_pem(const char *what, const char *path, char **out, size_t *len,
                               char *err, size_t cap)
{
    enum berth_err rc = file_read_bounded(path, TLS_PEM_MAX, out, len);
    if (rc != BERTH_OK) {
        snprintf(err, cap, "tls: cannot read %s %s (%s)", what, path, berth_strerror(rc));
        return rc == BERTH_ENOMEM ? rc : BERTH_EINVAL;
    }
    return BERTH_OK;
}

/* Load and check a chain and key: the pair must match, which GnuTLS
 * checks when both are set on a credentials object. */
static enum berth_err pair_load(const char *cert_file, const char *key_file, struct tls_pair **out,
                                char *err, size_t cap)
{
    char *cert_pem = NULL, *key_pem = NULL;
    size_t cert_len = 0, key_len = 0;
    gnutls_certificate_credentials_t check = NULL;
    struct tls_pair *p = NULL;
    enum berth_err rc = read_pem("certificate", cert_file, &cert_pem, &cert_len, err, cap);
    if (rc == BERTH_OK) {
        rc = read_pem("key", key_file, &key_pem, &key_len, err, cap);
    }
    if (rc != BERTH_OK) {
        goto out;
    }
    gnutls_datum_t cert = {(unsigned char *)cert_pem, (unsigned)cert_len};
    gnutls_datum_t key = {(unsigned char *)key_pem, (unsigned)key_len};
    rc = BERTH_EINVAL;
    int grc = gnutls_certificate_allocate_credentials(&check);
    if (grc < 0) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    grc = gnutls_certificate_set_x509_key_mem(check, &cert, &key, GNUTLS_X509_FMT_PEM);
    if (grc < 0) {
        snprintf(err, cap, "tls: %s and %s do not make a certificate and key pair (%s)", cert_file,
                 key_file, gnutls_strerror(grc));
        goto out;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    p->count = TLS_CHAIN_MAX;
    grc = gnutls_pcert_list_import_x509_raw(p->pcerts, &p->count, &cert, GNUTLS_X509_FMT_PEM,
                                            GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
    if (grc < 0) {
        p->count = 0;
        snprintf(err, cap, "tls: %s: %s (the server certificate first, then its issuers)",
                 cert_file, gnutls_strerror(grc));
        goto out;
    }
    grc = gnutls_privkey_init(&p->key);
    if (grc >= 0) {
        grc = gnutls_privkey_import_x509_raw(p->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    }
    if (grc < 0) {
        snprintf(err, cap, "tls: %s: %s", key_file, gnutls_strerror(grc));
        goto out;
    }
    *out = p;
    p = NULL;
    rc = BERTH_OK;
out:
    pair_free(p);
    if (check != NULL) {
        gnutls_certificate_free_credentials(check);
    }
    if (key_pem != NULL) {
        memset(key_pem, 0, key_len);
    }
    free(key_pem);
    free(cert_pem);
    return rc;
}

static void ca_free(struct tls_ca *ca)
{
    while (ca != NULL) {
        struct tls_ca *older = ca->older;
        gnutls_x509_trust_list_deinit(ca->list, 1);
        free(ca);
        ca = older;
    }
}

/* Load a client CA bundle: at least one certificate. */
static enum berth_err ca_load(const char *path, struct tls_ca **out, char *err, size_t cap)
{
    char *pem = NULL;
    size_t len = 0;
    enum berth_err rc = read_pem("client CA", path, &pem, &len, err, cap);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct tls_ca *ca = calloc(1, sizeof(*ca));
    if (ca == NULL || gnutls_x509_trust_list_init(&ca->list, 0) < 0) {
        free(ca);
        free(pem);
        return BERTH_ENOMEM;
    }
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
    /* a bundle without one certificate would make every client fail */
    int grc = gnutls_x509_trust_list_add_trust_mem(ca->list, &d, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
    free(pem);
    if (grc <= 0) {
        snprintf(err, cap, "tls: %s holds no usable CA certificate (%s)", path,
                 grc < 0 ? gnutls_strerror(grc) : "empty");
        ca_free(ca);
        return BERTH_EINVAL;
    }
    *out = ca;
    return BERTH_OK;
}

static void principals_free(struct tls_principals *tab)
{
    while (tab != NULL) {
        struct tls_principals *older = tab->older;
        for (size_t i = 0; i < tab->count; i++) {
            free(tab->rows[i].name);
        }
        free(tab->rows);
        free(tab);
        tab = older;
    }
}

/* tls.client_principals: [{"common_name" or "dns_name": name, "access_key_id": id}, ...]
 * into a new table (*out, the caller frees it); has_ca says whether a
 * client CA is configured. */
static enum berth_err principals_load(const json_t *list, bool has_ca, struct tls_principals **out,
                                      char *err, size_t cap)
{
    if (list != NULL && !json_is_null(list) && !json_is_array(list)) {
        snprintf(err, cap, "tls: tls.client_principals must be an array");
        return BERTH_EINVAL;
    }
    size_t n = json_is_array(list) ? json_array_size(list) : 0;
    if (n > 0 && !has_ca) {
        snprintf(err, cap, "tls: tls.client_principals needs tls.client_ca_file");
        return BERTH_EINVAL;
    }
    struct tls_principals *tab = calloc(1, sizeof(*tab));
    if (tab == NULL || (tab->rows = calloc(n + 1, sizeof(*tab->rows))) == NULL) {
        free(tab);
        return BERTH_ENOMEM;
    }
    size_t i;
    json_t *row;
    enum berth_err rc = BERTH_OK;
    json_array_foreach(list, i, row)
    {
        const json_t *cn = json_object_get(row, "common_name");
        const json_t *dns = json_object_get(row, "dns_name");
        const json_t *akid = json_object_get(row, "access_key_id");
        const json_t *name = cn != NULL ? cn : dns;
        if (!json_is_object(row) || json_object_size(row) != 2 || (cn == NULL) == (dns == NULL) ||
            !json_is_string(name) || json_string_length(name) == 0 ||
            json_string_length(name) > TLS_NAME_MAX ||
            strlen(json_string_value(name)) != json_string_length(name) || !json_is_string(akid) ||
            !auth_akid_valid(json_string_value(akid))) {
            snprintf(err, cap,
                     "tls: tls.client_principals[%zu] must be {\"common_name\" or "
                     "\"dns_name\": a name of 1..%d characters, \"access_key_id\": a key id}",
                     i, TLS_NAME_MAX);
            rc = BERTH_EINVAL;
            break;
        }
        struct tls_principal *p = &tab->rows[tab->count];
        p->dns = dns != NULL;
        p->name = strdup(json_string_value(name));
        if (p->name == NULL) {
            rc = BERTH_ENOMEM;
            break;
        }
        str_copy(p->akid, sizeof(p->akid), json_string_value(akid));
        tab->count++;
    }
    if (rc != BERTH_OK) {
        principals_free(tab);
        return rc;
    }
    *out = tab;
    return BERTH_OK;
}

enum berth_err tls_new(const struct berth_config *cfg, struct tls **out, char *err, size_t cap)
{
    if (!tls_configured(cfg) || cfg->tls_key_file == NULL || cfg->tls_key_file[0] == '\0') {
        snprintf(err, cap, "tls: tls.cert_file and tls.key_file go together");
        return BERTH_EINVAL;
    }
    struct tls *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return BERTH_ENOMEM;
    }
    pthread_mutex_init(&t->mu, NULL);
    t->cert_file = strdup(cfg->tls_cert_file);
    t->key_file = strdup(cfg->tls_key_file);
    enum berth_err rc = BERTH_ENOMEM;
    if (t->cert_file == NULL || t->key_file == NULL) {
        goto fail;
    }
    if (cfg->tls_client_ca_file != NULL && cfg->tls_client_ca_file[0] != '\0') {
        t->ca_file = strdup(cfg->tls_client_ca_file);
        if (t->ca_file == NULL) {
            goto fail;
        }
        rc = ca_load(t->ca_file, &t->ca, err, cap);
        if (rc != BERTH_OK) {
            goto fail;
        }
    }
    rc = principals_load(cfg->tls_client_principals, t->ca_file != NULL, &t->principals, err, cap);
    if (rc != BERTH_OK) {
        goto fail;
    }
    rc = pair_load(t->cert_file, t->key_file, &t->current, err, cap);
    if (rc != BERTH_OK) {
        goto fail;
    }
    *out = t;
    return BERTH_OK;
fail:
    tls_free(t);
    return rc;
}

enum berth_err tls_reload(struct tls *t, const json_t *principals, char *err, size_t cap)
{
    struct tls_pair *p = NULL;
    struct tls_ca *ca = NULL;
    struct tls_principals *tab = NULL;
    enum berth_err rc = pair_load(t->cert_file, t->key_file, &p, err, cap);
    if (rc == BERTH_OK && t->ca_file != NULL) {
        rc = ca_load(t->ca_file, &ca, err, cap);
    }
    if (rc == BERTH_OK) {
        rc = principals_load(principals, t->ca_file != NULL, &tab, err, cap);
    }
    if (rc != BERTH_OK) {
        pair_free(p);
        ca_free(ca);
        return rc; /* all or nothing: what is in use stays */
    }
    pthread_mutex_lock(&t->mu);
    p->older = t->current;
    t->current = p;
    if (ca != NULL) {
        ca->older = t->ca;
        t->ca = ca;
    }
    tab->older = t->principals;
    t->principals = tab;
    pthread_mutex_unlock(&t->mu);
    return BERTH_OK;
}

bool tls_mutual(const struct tls *t)
{
    return t->ca_file != NULL;
}

void tls_free(struct tls *t)
{
    if (t == NULL) {
        return;
    }
    pair_free(t->current);
    ca_free(t->ca);
    pthread_mutex_destroy(&t->mu);
    free(t->cert_file);
    free(t->key_file);
    free(t->ca_file);
    principals_free(t->principals);
    free(t);
}

/* ---- handshakes ---- */

/* Read what the client sent, so that closing the socket after a refusal
 * ends the connection with a FIN the client reads after our last bytes,
 * not a reset that may overtake them. */
static void drain_input(int fd)
{
    char sink[4096];
    for (int i = 0; i < 16; i++) {
        ssize_t r = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (r <= 0 && !(r < 0 && errno == EINTR)) {
            break;
        }
    }
}

/* Whether the certificate carries name: as a subject common name (exact),
 * or with dns as a DNS subject alternative name (DNS names ignore case). A
 * value holding a NUL byte never matches. */
static bool cert_names(gnutls_x509_crt_t crt, const char *name, bool dns)
{
    char buf[TLS_NAME_MAX + 2];
    size_t want = strlen(name);
    for (unsigned i = 0; i < 64; i++) {
        size_t sz = sizeof(buf);
        int grc;
        if (dns) {
            grc = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &sz, NULL);
            if (grc == GNUTLS_E_SHORT_MEMORY_BUFFER) {
                continue;
            }
            if (grc < 0) {
                return false;
            }
            if (grc == GNUTLS_SAN_DNSNAME && sz == want && memchr(buf, '\0', sz) == NULL &&
                strncasecmp(buf, name, sz) == 0) {
                return true;
            }
        } else {
            grc = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, i, 0, buf, &sz);
            if (grc == GNUTLS_E_SHORT_MEMORY_BUFFER) {
                continue;
            }
            if (grc < 0) {
                return false;
            }
            if (sz == want && memchr(buf, '\0', sz) == NULL && memcmp(buf, name, sz) == 0) {
                return true;
            }
        }
    }
    return false;
}

/* The first row of the principals table tab the verified leaf certificate
 * matches, copied into c->principal. */
static void map_principal(struct tls_conn *c, const struct tls_principals *tab,
                          gnutls_x509_crt_t leaf)
{
    for (size_t i = 0; i < tab->count; i++) {
        const struct tls_principal *p = &tab->rows[i];
        if (cert_names(leaf, p->name, p->dns)) {
            str_copy(c->principal, sizeof(c->principal), p->akid);
            log_debug("event=tls_client_principal %s=%s key=%s", p->dns ? "dns_name" : "cn",
                      p->name, p->akid);
            return;
        }
    }
}

/* Verify the client's chain against the current client CA bundle, for
 * client authentication, valid now. 0 with *status set, or a GnuTLS error. */
static int verify_chain(struct tls_conn *c, const gnutls_datum_t *raw, unsigned n, unsigned *status)
{
    gnutls_x509_crt_t crts[TLS_CHAIN_MAX];
    unsigned count = 0;
    int grc = 0;
    for (; count < n && count < TLS_CHAIN_MAX; count++) {
        grc = gnutls_x509_crt_init(&crts[count]);
        if (grc < 0) {
            break;
        }
        grc = gnutls_x509_crt_import(crts[count], &raw[count], GNUTLS_X509_FMT_DER);
        if (grc < 0) {
            count++;
            break;
        }
    }
    if (grc >= 0) {
        struct tls *t = c->tls;
        /* the bundle and the table of one reload together; superseded
         * ones live until tls_free */
        pthread_mutex_lock(&t->mu);
        struct tls_ca *ca = t->ca;
        const struct tls_principals *tab = t->principals;
        pthread_mutex_unlock(&t->mu);
        gnutls_typed_vdata_st purpose = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
                                         .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT};
        grc =
            gnutls_x509_trust_list_verify_crt2(ca->list, crts, count, &purpose, 1, 0, status, NULL);
        if (grc >= 0 && *status == 0) {
            map_principal(c, tab, crts[0]);
        }
    }
    for (unsigned i = 0; i < count; i++) {
        gnutls_x509_crt_deinit(crts[i]);
    }
    return grc;
}

/* Mutual TLS: the client's certificate must chain to a client CA (the
 * bundle as last loaded: tls_reload reads it again) and be valid now.
 * Runs inside the handshake once the client's certificate message is read;
 * a refusal sends the fatal alert TLS names for it (certificate_required,
 * unknown_ca, certificate_expired, bad_certificate) and fails the
 * handshake. */
static int verify_client(gnutls_session_t session)
{
    struct tls_conn *c = gnutls_transport_get_ptr(session);
    unsigned int n = 0, status = 0;
    const char *why = NULL;
    gnutls_alert_description_t alert = GNUTLS_A_BAD_CERTIFICATE;
    const gnutls_datum_t *raw = gnutls_certificate_get_peers(session, &n);
    if (c == NULL) {
        why = "client_certificate_unverifiable";
    } else if (raw == NULL || n == 0) {
        why = "no_client_certificate";
        alert = gnutls_protocol_get_version(session) == GNUTLS_TLS1_3
                    ? GNUTLS_A_CERTIFICATE_REQUIRED
                    : GNUTLS_A_HANDSHAKE_FAILURE;
    } else if (verify_chain(c, raw, n, &status) < 0) {
        why = "client_certificate_unverifiable";
    } else if (status != 0) {
        if (status & GNUTLS_CERT_EXPIRED) {
            why = "client_certificate_expired";
            alert = GNUTLS_A_CERTIFICATE_EXPIRED;
        } else if (status & (GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNER_NOT_CA)) {
            why = "client_certificate_unknown_ca";
            alert = GNUTLS_A_UNKNOWN_CA;
        } else {
            why = "client_certificate_invalid";
        }
    }
    if (why == NULL) {
        return 0;
    }
    log_info("event=tls_refused reason=%s", why);
    metrics_auth_failure(why);
    gnutls_alert_send(session, GNUTLS_AL_FATAL, alert);
    if (c != NULL) {
        drain_input(c->fd);
    }
    return -1;
}

/* GnuTLS asks for the server's certificate while it reads the ClientHello,
 * before it sends any CertificateRequest: the place to require a client
 * certificate for this session. */
static int retrieve_cert(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                         gnutls_pcert_st **pcert, unsigned int *pcert_length,
                         gnutls_privkey_t *privkey)
{
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    /* the transport pointer is the connection's (tls_connection_start) */
    struct tls_conn *c = gnutls_transport_get_ptr(session);
    if (c == NULL) {
        return -1;
    }
    struct tls *t = c->tls;
    if (t->ca_file != NULL) {
        /* asked for here (libmicrohttpd is given no trust list, so the
         * request names no CA and clients offer whatever certificate they
         * have) and checked by verify_client against the current bundle,
         * which refuses with an alert the client can name */
        gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUEST);
        gnutls_session_set_verify_function(session, verify_client);
    }
    pthread_mutex_lock(&t->mu);
    struct tls_pair *p = t->current;
    pthread_mutex_unlock(&t->mu);
    *pcert = p->pcerts;
    *pcert_length = p->count;
    *privkey = p->key;
    return 0;
}

void *tls_cert_callback(void)
{
    gnutls_certificate_retrieve_function2 *fn = retrieve_cert;
    return (void *)(intptr_t)fn;
}

/* ---- transport ---- */

static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *buf, size_t n)
{
    struct tls_conn *c = ptr;
    return recv(c->fd, buf, n, 0);
}

static ssize_t tls_push(gnutls_transport_ptr_t ptr, const void *buf, size_t n)
{
    struct tls_conn *c = ptr;
    return send(c->fd, buf, n, MSG_NOSIGNAL);
}

static int tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
    struct tls_conn *c = ptr;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int r;
    do {
        r = poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
    } while (r < 0 && errno == EINTR);
    return r;
}

bool tls_connection_start(struct tls *t, void *session, int fd, struct tls_conn **out)
{
    struct tls_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return false;
    }
    c->tls = t;
    c->fd = fd;
    /* The server's handshake flight is several small writes (ServerHello,
     * certificate, verify, finished): with Nagle's algorithm on, all but
     * the first waited for the client's delayed ACK, 40 ms per connection
     * (libmicrohttpd sets TCP_NODELAY only when it sends a response). */
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        log_debug("event=tls_nodelay_failed errno=%d", errno);
    }
    gnutls_session_t s = session;
    gnutls_transport_set_ptr(s, c);
    gnutls_transport_set_pull_function(s, tls_pull);
    gnutls_transport_set_push_function(s, tls_push);
    gnutls_transport_set_pull_timeout_function(s, tls_pull_timeout);
    *out = c;
    return true;
}

const char *tls_connection_principal(const struct tls_conn *c)
{
    return c != NULL && c->principal[0] != '\0' ? c->principal : NULL;
}

void tls_connection_end(struct tls_conn **c)
{
    free(*c);
    *c = NULL;
}

/* ---- the watchdog's probe ---- */

/* Wait until fd is ready for what the session wants next, or the
 * deadline; false on timeout. */
static bool probe_wait(gnutls_session_t s, int fd, int64_t deadline_ns)
{
    int64_t left_ms = (deadline_ns - time_mono_ns()) / 1000000;
    if (left_ms <= 0) {
        return false;
    }
    struct pollfd p = {.fd = fd, .events = gnutls_record_get_direction(s) == 1 ? POLLOUT : POLLIN};
    int n;
    do {
        n = poll(&p, 1, (int)left_ms);
    } while (n < 0 && errno == EINTR);
    return n > 0;
}

static enum tls_probe_result probe_failure(int grc)
{
    if (grc == GNUTLS_E_FATAL_ALERT_RECEIVED || grc == GNUTLS_E_WARNING_ALERT_RECEIVED ||
        grc == GNUTLS_E_CERTIFICATE_REQUIRED) {
        return TLS_PROBE_ANSWERED;
    }
    if (grc == GNUTLS_E_PREMATURE_TERMINATION || grc == GNUTLS_E_PUSH_ERROR ||
        grc == GNUTLS_E_PULL_ERROR || grc == GNUTLS_E_UNEXPECTED_PACKET_LENGTH) {
        return TLS_PROBE_CLOSED;
    }
    return TLS_PROBE_ERROR;
}

/* The server's first flight arrived: enough to know a pool thread took
 * the handshake. Stopping there spares a server that requires client
 * certificates a refusal (and its log line and failure count) per probe. */
static int probe_server_hello(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                              const gnutls_datum_t *msg)
{
    (void)s;
    (void)htype;
    (void)when;
    (void)incoming;
    (void)msg;
    return GNUTLS_E_USER_ERROR;
}

enum tls_probe_result tls_probe(int fd, bool mutual, const char *request, int64_t deadline_ns)
{
    gnutls_certificate_credentials_t cred = NULL;
    gnutls_session_t s = NULL;
    enum tls_probe_result r = TLS_PROBE_ERROR;
    if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
        gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NONBLOCK) < 0 ||
        gnutls_set_default_priority(s) < 0 ||
        gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred) < 0) {
        goto out;
    }
    gnutls_transport_set_int(s, fd);
    if (mutual) {
        gnutls_handshake_set_hook_function(s, GNUTLS_HANDSHAKE_SERVER_HELLO, GNUTLS_HOOK_POST,
                                           probe_server_hello);
    }
    int grc;
    while ((grc = gnutls_handshake(s)) < 0) {
        if (mutual && grc == GNUTLS_E_USER_ERROR) {
            r = TLS_PROBE_ANSWERED; /* the ServerHello came */
            goto out;
        }
        if (grc != GNUTLS_E_AGAIN && grc != GNUTLS_E_INTERRUPTED) {
            r = probe_failure(grc);
            goto out;
        }
        if (!probe_wait(s, fd, deadline_ns)) {
            r = TLS_PROBE_TIMEOUT;
            goto out;
        }
    }
    size_t len = strlen(request), sent = 0;
    while (sent < len) {
        ssize_t n = gnutls_record_send(s, request + sent, len - sent);
        if (n >= 0) {
            sent += (size_t)n;
        } else if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED) {
            r = probe_failure((int)n);
            goto out;
        } else if (!probe_wait(s, fd, deadline_ns)) {
            r = TLS_PROBE_TIMEOUT;
            goto out;
        }
    }
    char head[16];
    size_t got = 0;
    while (got < 12) { /* "HTTP/1.1 200" */
        ssize_t n = gnutls_record_recv(s, head + got, 12 - got);
        if (n > 0) {
            got += (size_t)n;
        } else if (n == 0) {
            r = TLS_PROBE_CLOSED;
            goto out;
        } else if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED) {
            r = probe_failure((int)n);
            goto out;
        } else if (!probe_wait(s, fd, deadline_ns)) {
            r = TLS_PROBE_TIMEOUT;
            goto out;
        }
    }
    r = memcmp(head, "HTTP/1.", 7) == 0 ? TLS_PROBE_ANSWERED : TLS_PROBE_CLOSED;
out:
    if (s != NULL) {
        gnutls_deinit(s);
    }
    if (cred != NULL) {
        gnutls_certificate_free_credentials(cred);
    }
    return r;
}
