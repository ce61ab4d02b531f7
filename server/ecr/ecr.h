/*
 * The ECR JSON API (awsJson1_1), as the HTTP layer serves it: every request
 * with an X-Amz-Target header outside /v2 and the probes' paths, and every
 * other POST outside them.
 */
#ifndef BERTH_ECR_H
#define BERTH_ECR_H

#include "server/http/http.h"

extern const struct http_api ecr_api;

#endif
