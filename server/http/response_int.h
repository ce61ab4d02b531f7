/*
 * Responses (server/http/response.c): struct http_response is
 * libmicrohttpd's response under a name of this layer, so handlers never
 * see the library; the builders of http.h (bytes, files, streamed bodies)
 * and the list of streamed bodies that server_stop ends.
 */
#ifndef BERTH_SERVER_HTTP_RESPONSE_INT_H
#define BERTH_SERVER_HTTP_RESPONSE_INT_H

struct MHD_Response;
struct http_response;
struct server;

static inline struct http_response *http_wrap_response(struct MHD_Response *r)
{
    return (struct http_response *)(void *)r;
}

static inline struct MHD_Response *http_mhd_response(struct http_response *r)
{
    return (struct MHD_Response *)(void *)r;
}

/* From now on file bodies are read by berth in large blocks rather than
 * sent by libmicrohttpd from the file (TLS: see response.c). */
void http_resp_files_by_reader(void);

/* End every streamed body: the sleeping ones are woken to fail (the
 * client sees a cut body), later reads fail at once. Returns how many were
 * asleep. */
int http_streams_abort(struct server *srv);

#endif
