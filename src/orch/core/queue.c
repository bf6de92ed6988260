/* queue — see queue.h.
 *
 * Per class: a doubly linked FIFO (service order) and a Fenwick tree over
 * "slots" (slot = the job's sequence number minus the class's base) holding 1
 * for every live job, so position-within-class = prefix sum before its slot.
 * When the slot space is used up the live jobs are renumbered 0..n-1 and the
 * tree rebuilt (O(n), amortised over the pushes that filled the space).
 * A chained hash on the id finds a node for cancel/position in O(1). */
#include "orch/core/queue.h"

#include "common/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct qnode {
    struct qnode *prev, *next;  /* class FIFO */
    struct qnode *hnext;        /* hash chain */
    uint64_t slot;
    enum job_prio prio;
    void *data;
    char id[JOB_ID_MAX + 1];
};

struct qclass {
    struct qnode *head, *tail;
    size_t len;
    uint64_t next_slot;   /* next free slot */
    uint64_t cap;         /* Fenwick size (power of two) */
    int32_t *bit;         /* 1-based Fenwick tree, cap+1 entries */
};

struct queue {
    pthread_mutex_t mu;
    int64_t capacity;
    struct qclass cls[JOB__PRIO_COUNT];
    struct qnode **buckets;
    size_t nbuckets, count;
};

/* ---- Fenwick ---------------------------------------------------------- */
static void bit_add(struct qclass *c, uint64_t slot, int32_t d) {
    for (uint64_t i = slot + 1; i <= c->cap; i += i & (~i + 1)) c->bit[i] += d;
}
static int64_t bit_prefix(const struct qclass *c, uint64_t slot) { /* sum over [0, slot) */
    int64_t s = 0;
    for (uint64_t i = slot; i > 0; i -= i & (~i + 1)) s += c->bit[i];
    return s;
}

/* renumber live nodes 0..len-1 into a tree of at least 2*len+16 slots */
static int class_compact(struct qclass *c) {
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)c->len + 16) cap *= 2;
    int32_t *bit = calloc(cap + 1, sizeof *bit);
    if (!bit) return -ENOMEM;
    free(c->bit);
    c->bit = bit;
    c->cap = cap;
    uint64_t s = 0;
    for (struct qnode *n = c->head; n; n = n->next) {
        n->slot = s++;
        bit_add(c, n->slot, 1);
    }
    c->next_slot = s;
    return 0;
}

/* ---- hash ------------------------------------------------------------- */
static uint64_t hash_id(const char *s) { /* FNV-1a */
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static struct qnode **hash_slot(struct queue *q, const char *id) {
    struct qnode **p = &q->buckets[hash_id(id) & (q->nbuckets - 1)];
    while (*p && strcmp((*p)->id, id) != 0) p = &(*p)->hnext;
    return p;
}

static int hash_grow(struct queue *q) {
    size_t nb = q->nbuckets * 2;
    struct qnode **b = calloc(nb, sizeof *b);
    if (!b) return -ENOMEM;
    for (size_t i = 0; i < q->nbuckets; i++) {
        struct qnode *n = q->buckets[i];
        while (n) {
            struct qnode *nx = n->hnext;
            size_t k = hash_id(n->id) & (nb - 1);
            n->hnext = b[k];
            b[k] = n;
            n = nx;
        }
    }
    free(q->buckets);
    q->buckets = b;
    q->nbuckets = nb;
    return 0;
}

/* ---- lifecycle -------------------------------------------------------- */
int queue_new(int64_t capacity, struct queue **out) {
    *out = NULL;
    if (capacity < -1) return -EINVAL;
    struct queue *q = calloc(1, sizeof *q);
    if (!q) return -ENOMEM;
    pthread_mutex_init(&q->mu, NULL);
    q->capacity = capacity;
    q->nbuckets = 64;
    q->buckets = calloc(q->nbuckets, sizeof *q->buckets);
    int ok = q->buckets != NULL;
    for (int i = 0; ok && i < JOB__PRIO_COUNT; i++) ok = class_compact(&q->cls[i]) == 0;
    if (!ok) { queue_free(q); return -ENOMEM; }
    *out = q;
    return 0;
}

void queue_free(struct queue *q) {
    if (!q) return;
    for (int i = 0; i < JOB__PRIO_COUNT; i++) {
        struct qnode *n = q->cls[i].head;
        while (n) {
            struct qnode *nx = n->next;
            free(n);
            n = nx;
        }
        free(q->cls[i].bit);
    }
    free(q->buckets);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* ---- operations (caller holds the lock) -------------------------------- */
static void unlink_node(struct queue *q, struct qnode *n) {
    struct qclass *c = &q->cls[n->prio];
    if (n->prev) n->prev->next = n->next; else c->head = n->next;
    if (n->next) n->next->prev = n->prev; else c->tail = n->prev;
    c->len--;
    bit_add(c, n->slot, -1);
    struct qnode **p = hash_slot(q, n->id);
    LLORCH_ASSERT(*p == n);
    *p = n->hnext;
    q->count--;
}

static void take(struct queue *q, struct qnode *n, char *id_out, void **data, enum job_prio *prio) {
    unlink_node(q, n);
    if (id_out) memcpy(id_out, n->id, strlen(n->id) + 1);
    if (data) *data = n->data;
    if (prio) *prio = n->prio;
    free(n);
}

static int64_t position_of(const struct queue *q, const struct qnode *n) {
    int64_t ahead = bit_prefix(&q->cls[n->prio], n->slot);
    for (int p = 0; p < (int)n->prio; p++) ahead += (int64_t)q->cls[p].len;
    return ahead;
}

int queue_push(struct queue *q, const char *id, enum job_prio prio, void *data, int64_t *position) {
    if (!job_id_valid(id, JOB_ID_MAX) || (unsigned)prio >= JOB__PRIO_COUNT) return -EINVAL;
    pthread_mutex_lock(&q->mu);
    int rc = 0;
    if (*hash_slot(q, id)) rc = -EEXIST;
    else if (q->capacity >= 0 && (int64_t)q->count >= q->capacity) rc = -ENOSPC;
    else if (q->count + 1 > q->nbuckets && hash_grow(q) < 0) rc = -ENOMEM;
    struct qclass *c = &q->cls[prio];
    if (rc == 0 && c->next_slot >= c->cap && class_compact(c) < 0) rc = -ENOMEM;
    struct qnode *n = rc == 0 ? calloc(1, sizeof *n) : NULL;
    if (rc == 0 && !n) rc = -ENOMEM;
    if (rc == 0) {
        memcpy(n->id, id, strlen(id) + 1);
        n->prio = prio;
        n->data = data;
        n->slot = c->next_slot++;
        bit_add(c, n->slot, 1);
        n->prev = c->tail;
        if (c->tail) c->tail->next = n; else c->head = n;
        c->tail = n;
        c->len++;
        struct qnode **hs = hash_slot(q, id);
        *hs = n;
        q->count++;
        if (position) *position = position_of(q, n);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int queue_pop(struct queue *q, char *id_out, void **data, enum job_prio *prio) {
    pthread_mutex_lock(&q->mu);
    int rc = -ENOENT;
    for (int p = 0; p < JOB__PRIO_COUNT && rc; p++)
        if (q->cls[p].head) {
            take(q, q->cls[p].head, id_out, data, prio);
            rc = 0;
        }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int queue_pop_first(struct queue *q, queue_pred_fn pred, void *ctx, char *id_out, void **data, enum job_prio *prio) {
    pthread_mutex_lock(&q->mu);
    int rc = -ENOENT;
    for (int p = 0; p < JOB__PRIO_COUNT && rc; p++)
        for (struct qnode *n = q->cls[p].head; n; n = n->next)
            if (pred(ctx, n->id, n->prio, n->data)) {
                take(q, n, id_out, data, prio);
                rc = 0;
                break;
            }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int queue_remove(struct queue *q, const char *id, void **data) {
    if (!id) return -ENOENT;
    pthread_mutex_lock(&q->mu);
    struct qnode *n = *hash_slot(q, id);
    if (n) take(q, n, NULL, data, NULL);
    pthread_mutex_unlock(&q->mu);
    return n ? 0 : -ENOENT;
}

int64_t queue_position(struct queue *q, const char *id) {
    if (!id) return -ENOENT;
    pthread_mutex_lock(&q->mu);
    struct qnode *n = *hash_slot(q, id);
    int64_t pos = n ? position_of(q, n) : -ENOENT;
    pthread_mutex_unlock(&q->mu);
    return pos;
}

size_t queue_len(struct queue *q, int prio) {
    pthread_mutex_lock(&q->mu);
    size_t n = prio < 0 ? q->count : (prio < JOB__PRIO_COUNT ? q->cls[prio].len : 0);
    pthread_mutex_unlock(&q->mu);
    return n;
}

int64_t queue_capacity(struct queue *q) { return q->capacity; }
