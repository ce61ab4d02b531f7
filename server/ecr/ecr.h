/*
 * The ECR JSON API (awsJson1_1), as the HTTP layer serves it: every request
 * with an X-Amz-Target header, and every other POST outside /v2.
 */
#ifndef BERTH_ECR_H
#define BERTH_ECR_H

#include "server/http/http.h"

extern const struct http_api ecr_api;

#endif
