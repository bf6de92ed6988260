/* ll.cuh — flagged activation slots: how the blocks of ONE persistent
 * launch (pkw.cu) hand activations to each other without a grid barrier.
 *
 * A slot is 8 bytes: the fp32 value in the low word, an epoch in the high
 * word, written by ONE 64-bit relaxed store. A 64-bit access is
 * single-copy atomic (PTX memory model), so a reader that sees the epoch
 * it waits for sees the value stored with it: no fence, no counter, no
 * second round trip. Readers poll with relaxed gpu-scope loads (performed
 * at L2: never a stale L1 line) until every slot they need carries the
 * epoch. The same idea as NCCL's "LL" protocol (data and flag in one
 * store), written here for our shapes.
 *
 * Why (docs/PERF.md, H100): a grid barrier (CTA barrier, release
 * reduction on one counter, acquire polling, CTA barrier) cost ~1.1-1.4 us
 * even when every block arrived together, and the activation staging after
 * it another L2 round trip; five per layer were ~6 us of Qwen2.5-0.5B's
 * ~22 us layer. Here a consumer's first poll IS its staging read.
 *
 * Epochs (pkw.cu ll_epoch) are unique per (launch, layer, phase), so a
 * reader can never take a value of another layer or launch; a slot's next
 * write always depends (through the phases in between) on every reader
 * having read it, and the buffers alternate by layer parity besides. */
#ifndef LLORCH_CUDA_LL_CUH
#define LLORCH_CUDA_LL_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "persist.cuh" /* pk_now, PK_SPIN_TRAP_NS: the grid barriers' clock and bound */

typedef unsigned long long ll_slot;

__device__ __forceinline__ void ll_put(ll_slot *p, float v, unsigned e) {
    const ll_slot w = ((ll_slot)e << 32) | __float_as_uint(v);
    asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(p), "l"(w) : "memory");
}

/* two values in one slot, as bf16 (fp32's range: no value saturates;
 * 8 significant bits, and pkw.cu's E quantizes them per 32 to int8 right
 * after): half the bytes to stage where a consumer reads a wide activation
 * (pkw.cu's hb) */
__device__ __forceinline__ void ll_put_h2(ll_slot *p, float v0, float v1, unsigned e) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(v0, v1);
    const ll_slot w = ((ll_slot)e << 32) | *reinterpret_cast<const unsigned *>(&h);
    asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(p), "l"(w) : "memory");
}
__device__ __forceinline__ float2 ll_val_h2(ll_slot w) {
    const unsigned u = (unsigned)w;
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&u));
}

__device__ __forceinline__ ll_slot ll_ld(const ll_slot *p) {
    ll_slot w;
    asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(w) : "l"(p) : "memory");
    return w;
}

/* two slots (16-byte aligned): each 64-bit half is its own atomic access */
__device__ __forceinline__ void ll_ld2(const ll_slot *p, ll_slot &a, ll_slot &b) {
    asm volatile("ld.relaxed.gpu.global.v2.u64 {%0, %1}, [%2];" : "=l"(a), "=l"(b) : "l"(p) : "memory");
}

__device__ __forceinline__ bool ll_is(ll_slot w, unsigned e) { return (unsigned)(w >> 32) == e; }
__device__ __forceinline__ float ll_val(ll_slot w) { return __uint_as_float((unsigned)w); }

/* the spin of one waiting thread: trap after PK_SPIN_TRAP_NS (a producer
 * that never writes is our bug: trap rather than hang the device); sleep ns
 * between polls (0: poll back to back) */
__device__ __forceinline__ void ll_backoff(unsigned &it, unsigned long long &t0, unsigned sleep_ns) {
    if (sleep_ns) __nanosleep(sleep_ns);
    if (++it & 1023u) return;
    if (!t0) t0 = pk_now();
    else if (pk_now() - t0 > PK_SPIN_TRAP_NS) __trap();
}

/* the M pairs pair(k) (k < M; a negative index: none) of src once each
 * slot carries epoch e, into a [k], b [k]. A thread issues all its loads
 * before it checks any, and re-polls only the pairs not ready, so waiting
 * costs round trips in parallel, not in series. */
template <int M, class Pair>
__device__ __forceinline__ void ll_poll(const ll_slot *src, unsigned e, ll_slot (&a)[M], ll_slot (&b)[M], Pair pair,
                                        unsigned sleep_ns) {
#pragma unroll
    for (int k = 0; k < M; k++) {
        a[k] = b[k] = 0;
        if (pair(k) >= 0) ll_ld2(src + 2 * pair(k), a[k], b[k]);
    }
    unsigned it = 0;
    unsigned long long t0 = 0;
    for (;;) {
        bool again = false;
#pragma unroll
        for (int k = 0; k < M; k++) {
            if (pair(k) >= 0 && !(ll_is(a[k], e) && ll_is(b[k], e))) {
                again = true;
                ll_ld2(src + 2 * pair(k), a[k], b[k]);
            }
        }
        if (!again) break;
        ll_backoff(it, t0, sleep_ns);
    }
}

/* f(i, a, b) for every pair i < np of slot pairs of src (16 bytes each:
 * two slots), once both carry epoch e: thread t takes pairs t, t + nt,
 * ..., MAXP per batch, all their polls in flight at once. Every thread of
 * the block calls it; no CTA barrier inside. More polls in flight per pair
 * (3, staggered 50-300 ns) measured 7-9% SLOWER on Qwen2.5-0.5B
 * (docs/PERF.md, session 8): polling traffic costs the hand-offs. */
template <int MAXP, class F>
__device__ __forceinline__ void ll_stage_each(const ll_slot *src, int np, unsigned e, unsigned sleep_ns, F f) {
    const int nt = (int)blockDim.x;
    for (int base = threadIdx.x; base < np; base += MAXP * nt) {
        ll_slot a[MAXP], b[MAXP];
        ll_poll<MAXP>(src, e, a, b, [&](int k) { return base + k * nt < np ? base + k * nt : -1; }, sleep_ns);
#pragma unroll
        for (int k = 0; k < MAXP; k++)
            if (base + k * nt < np) f(base + k * nt, a[k], b[k]);
    }
}

/* xs [n] = the values of src [n] once each slot carries epoch e (n even,
 * src 16-byte aligned; the caller syncs before reading other threads'
 * xs). Returns the thread's sum of squares of what it stored (rmsnorm
 * staging). */
template <int MAXP>
__device__ __forceinline__ float ll_stage(const ll_slot *src, int n, unsigned e, float *xs, unsigned sleep_ns) {
    float ss = 0.0f;
    ll_stage_each<MAXP>(src, n / 2, e, sleep_ns, [&](int i, ll_slot a, ll_slot b) {
        const float v0 = ll_val(a), v1 = ll_val(b);
        reinterpret_cast<float2 *>(xs)[i] = make_float2(v0, v1);
        ss += v0 * v0 + v1 * v1;
    });
    return ss;
}

/* ll_stage for slots of two bf16 values (ll_put_h2): xs [n] from the n / 2
 * slots of src (n % 4 == 0), two slots (four values) at a time */
template <int MAXP>
__device__ __forceinline__ void ll_stage_h2(const ll_slot *src, int n, unsigned e, float *xs, unsigned sleep_ns) {
    ll_stage_each<MAXP>(src, n / 4, e, sleep_ns, [&](int i, ll_slot a, ll_slot b) {
        const float2 v0 = ll_val_h2(a), v1 = ll_val_h2(b);
        reinterpret_cast<float4 *>(xs)[i] = make_float4(v0.x, v0.y, v1.x, v1.y);
    });
}

#endif
