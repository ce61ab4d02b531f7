/*
 * The web console: the browser application served under /ui/ from assets
 * embedded at build time (server/console/ui, turned into C by embed.cmake),
 * and the few endpoints no other API serves: sign-in with an access key
 * for a session cookie, sign-out, the session's state and CSRF token, and
 * what the session's key may do on a repository. Everything else the
 * console does goes through the ECR JSON API and /v2, authorized by the
 * session (server/auth/session.h). It exports console_api, offered each
 * request before /v2 and ECR.
 */
#ifndef BERTH_CONSOLE_H
#define BERTH_CONSOLE_H

#include "server/http/http.h"

extern const struct http_api console_api;

#endif
