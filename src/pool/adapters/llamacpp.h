/* llamacpp — internal header shared by the llamacpp adapter (llamacpp.c:
 * process, readiness) and its translating proxy (llamacpp_proxy.c). */
#ifndef LLORCH_POOL_LLAMACPP_H
#define LLORCH_POOL_LLAMACPP_H

#include <pthread.h>
#include <stdatomic.h>

#include "pool/adapters/adapter.h"

struct lcpp {
    struct pool *p;
    char worker_id[40], token[65], model_ref[POOL_REF_MAX], memarch[16];
    uint64_t estimate;
    int upstream_port;
    char upstream[64];              /* http://127.0.0.1:<port> of llama-server */
    http_server *proxy;             /* what the pool reports as the worker's uri */
    uint64_t start_ns;
    pthread_t ready_thr;
    int ready_started;
    atomic_int stop;                /* cleanup: every thread winds down */
    pthread_mutex_t mu;             /* guards the job fields below */
    pthread_cond_t cv;
    int jobs_running;               /* job threads alive (cleanup waits for 0) */
    int busy;                       /* batch = 1 */
    char cur_job[65];
    atomic_int cancel;              /* the current job is cancelled (or its client left) */
};

/* Starts the proxy on 127.0.0.1:0; its URL into uri. */
int lcpp_proxy_start(struct lcpp *L, char *uri, size_t cap, char *err, size_t errlen);
/* Stops the proxy and waits for its job threads. */
void lcpp_proxy_stop(struct lcpp *L);

#endif
