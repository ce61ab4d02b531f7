/*
 * Pages of repositories filtered by what the caller may see: the one
 * refill loop behind /v2/_catalog and DescribeRepositories. See
 * repo_list.h.
 */
#include "storage/registry/repo_list.h"

#include <stdio.h>
#include <string.h>

#include "storage/store/store.h"
#include "common/str.h"

struct page {
    repo_list_allow_fn allow;
    repo_list_take_fn take;
    void *arg;
    int64_t limit;
    int64_t count;                 /* repositories taken */
    char seen[NAMES_REPO_MAX + 1]; /* the last name examined */
    char *last;                    /* the last name taken (the caller's buffer) */
    size_t last_cap;
    bool full_with_more; /* a name was examined after the page filled */
    enum berth_err rc;   /* what stopped take */
};

static enum berth_err internal(struct registry_status *s, enum berth_err rc)
{
    s->reason = REG_INTERNAL;
    s->err = rc;
    snprintf(s->message, sizeof(s->message), "repository listing failed (%s)", berth_strerror(rc));
    return rc;
}

static int page_row(void *arg, const struct meta_repo *repo)
{
    struct page *p = arg;
    str_copy(p->seen, sizeof(p->seen), repo->name);
    if (p->count == p->limit) {
        p->full_with_more = true;
        return 1;
    }
    if (p->allow != NULL && !p->allow(p->arg, repo->name)) {
        return 0;
    }
    p->rc = p->take(p->arg, repo);
    if (p->rc != BERTH_OK) {
        return 1;
    }
    str_copy(p->last, p->last_cap, repo->name);
    p->count++;
    return 0;
}

enum berth_err repo_list_page(struct store *st, const char *after, int64_t limit,
                              repo_list_allow_fn allow, repo_list_take_fn take, void *arg,
                              char *last, size_t last_cap, bool *more, struct registry_status *s)
{
    *more = false;
    last[0] = '\0';
    memset(s, 0, sizeof(*s));
    if (limit <= 0) {
        return BERTH_OK;
    }
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return internal(s, BERTH_EUNAVAILABLE);
    }
    struct page p = {
        .allow = allow,
        .take = take,
        .arg = arg,
        .limit = limit,
        .last = last,
        .last_cap = last_cap,
        .rc = BERTH_OK,
    };
    str_copy(p.seen, sizeof(p.seen), after != NULL ? after : "");
    /* A page of the listing may hold names the caller may not see: read
     * further pages until this one is full or the names run out, so a page
     * is short only at the end and the position always advances. */
    bool rows_left = true;
    while (rows_left && p.count < limit && !p.full_with_more) {
        char from[NAMES_REPO_MAX + 1];
        str_copy(from, sizeof(from), p.seen);
        enum berth_err rc = meta_repo_list(m, from, limit, page_row, &p, &rows_left);
        if (rc == BERTH_OK) {
            rc = p.rc;
        }
        if (rc != BERTH_OK) {
            return internal(s, rc);
        }
    }
    *more = p.count == limit && (rows_left || p.full_with_more);
    return BERTH_OK;
}
