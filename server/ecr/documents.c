/*
 * The stored documents several ECR operations share the handling of:
 * registry settings (the registry policy, the replication and signing
 * configurations) read and written with the call failed in ECR's words,
 * and prefix-keyed documents (repository creation templates, pull-through
 * cache rules) rendered and created. Pool threads; see ecr_int.h.
 */
#include "ecr_int.h"

#include <stdlib.h>

#include "common/timeutil.h"
#include "storage/meta/meta_scan.h"

bool ecr_setting_read(struct ecr_call *call, const char *key, bool take, char **text)
{
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return false;
    }
    char *got = NULL;
    enum berth_err rc = take ? meta_setting_take(m, key, &got) : meta_setting_get(m, key, &got);
    if (rc != BERTH_OK) {
        free(got);
        ecr_server_error(call, rc);
        return false;
    }
    *text = got;
    return true;
}

bool ecr_setting_write(struct ecr_call *call, const char *key, const char *text)
{
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return false;
    }
    enum berth_err rc = meta_setting_set(m, key, text, time_now_ms());
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return false;
    }
    return true;
}

char *ecr_setting_write_rules(struct ecr_call *call, const char *key, json_t *rules)
{
    json_t *stored = json_pack("{s:o}", "rules", rules);
    char *text = stored != NULL ? json_dumps(stored, JSON_COMPACT) : NULL;
    json_decref(stored);
    if (text == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return NULL;
    }
    if (!ecr_setting_write(call, key, text)) {
        free(text);
        return NULL;
    }
    return text;
}

json_t *ecr_prefix_doc_json(const struct meta_prefix_doc *d, const char *prefix_key,
                            const char *registry)
{
    json_t *doc = json_loads(d->body, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    json_t *out = json_object();
    if (out == NULL || json_object_set_new(out, prefix_key, json_string(d->prefix)) != 0 ||
        json_object_update(out, doc) != 0 ||
        (registry != NULL && json_object_set_new(out, "registryId", json_string(registry)) != 0) ||
        json_object_set_new(out, "createdAt", ecr_time(d->created_at)) != 0 ||
        json_object_set_new(out, "updatedAt", ecr_time(d->updated_at)) != 0) {
        json_decref(out);
        out = NULL;
    }
    json_decref(doc);
    return out;
}

bool ecr_prefix_doc_created(struct ecr_call *call, enum berth_err rc, const char *prefix,
                            const struct ecr_prefix_kind *kind)
{
    if (rc == BERTH_EEXIST) {
        return ecr_fail(call, kind->exists_type,
                        "%s with prefix '%s' already exists in the registry with id '%s'",
                        kind->one, prefix, ecr_registry(call));
    }
    if (rc == BERTH_ETOOBIG) {
        return ecr_fail(call, "LimitExceededException",
                        "The registry with id '%s' already has the maximum of %d %s",
                        ecr_registry(call), kind->max, kind->many);
    }
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return false;
    }
    return true;
}
