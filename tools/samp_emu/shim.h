// CPU emulation of the CUDA subset the sampler kernels use: one OS thread per
// CUDA thread, blocks run one after another (so `static` = __shared__).
#pragma once
#include <barrier>
#include <thread>
#include <vector>
#include <mutex>
#include <atomic>
#include <cstring>
#include <cstdint>
#include <cmath>
#include <climits>
#include <functional>
#include <memory>
#include <algorithm>
extern "C" {
#include "engine/sampler.h"
}
using std::min; using std::max;
struct dim3e { unsigned x = 0, y = 0, z = 0; };
extern thread_local dim3e threadIdx;
extern dim3e blockIdx_g, gridDim, blockDim;
#define blockIdx blockIdx_g
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __shared__ static
#define __align__(x) __attribute__((aligned(x)))
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
static inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
// fibers: every CUDA thread of a block is a fiber on this one OS thread
extern "C" void emu_switch(void **from_sp, void *to_sp);
struct emu_fiber { void *sp; char *stack; bool done; int tid; };
extern std::vector<emu_fiber> g_fib;
extern void *g_sched_sp;
extern int g_cur;
extern long g_progress;
static inline void emu_yield() { emu_switch(&g_fib[g_cur].sp, g_sched_sp); }
struct emu_bar { int n = 0, arrived = 0; unsigned gen = 0; };
extern emu_bar g_bbar, g_wbar[32];
static inline void emu_bar_wait(emu_bar &b) {
    unsigned g = b.gen;
    g_progress++;
    if (++b.arrived == b.n) { b.arrived = 0; b.gen++; }
    else while (b.gen == g) emu_yield();
}
extern uint64_t g_xb[32][32];
static inline void __syncthreads() { emu_bar_wait(g_bbar); }
static inline int emu_w() { return threadIdx.x / 32; }
static inline int emu_l() { return threadIdx.x % 32; }
static inline void __syncwarp(unsigned m = 0xffffffffu) { (void)m; emu_bar_wait(g_wbar[emu_w()]); }
template <class T> static T emu_shfl(T v, int src) {
    int w = emu_w(), l = emu_l();
    uint64_t b = 0; memcpy(&b, &v, sizeof v); g_xb[w][l] = b;
    __syncwarp();
    T r; uint64_t rb = g_xb[w][src]; memcpy(&r, &rb, sizeof r);
    __syncwarp();
    return r;
}
template <class T> static T __shfl_xor_sync(unsigned m, T v, int o) { if (m != 0xffffffffu) abort(); return emu_shfl(v, emu_l() ^ o); }
template <class T> static T __shfl_up_sync(unsigned m, T v, int o) { if (m != 0xffffffffu) abort(); int l = emu_l(); return emu_shfl(v, l >= o ? l - o : l); }
template <class T> static T __shfl_sync(unsigned m, T v, int s) { if (m != 0xffffffffu) abort(); return emu_shfl(v, s); }
static inline unsigned __ballot_sync(unsigned m, bool p) {
    if (m != 0xffffffffu) abort();
    int w = emu_w(), l = emu_l(); g_xb[w][l] = p; __syncwarp();
    unsigned r = 0; for (int i = 0; i < 32; i++) if (g_xb[w][i]) r |= 1u << i;
    __syncwarp(); return r;
}
static inline unsigned __match_any_sync(unsigned m, unsigned v) {
    if (m != 0xffffffffu) abort();
    int w = emu_w(), l = emu_l(); g_xb[w][l] = v; __syncwarp();
    unsigned r = 0; for (int i = 0; i < 32; i++) if (g_xb[w][i] == v) r |= 1u << i;
    __syncwarp(); return r;
}
template <class T> static T atomicAdd(T *a, T v) { T o = *a; *a = o + v; return o; }
static inline unsigned atomicAdd(unsigned *a, int v) { return atomicAdd(a, (unsigned)v); }
static inline int atomicMin(int *a, int v) { int o = *a; *a = std::min(o, v); return o; }
static inline int atomicMax(int *a, int v) { int o = *a; *a = std::max(o, v); return o; }
static inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
template <class T> static T __ldcg(const T *p) { return *p; }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }
static inline float __fdiv_rn(float a, float b) { volatile float r = a / b; return r; }
static inline unsigned long long __double2ull_rz(double x) { return (unsigned long long)x; }
static inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline float warp_max(float v) { for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o)); return v; }
static inline int warp_sum_i(int v) { for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o); return v; }
static inline void cu_pdl_begin() {}
extern unsigned long long g_dyn[16384];
// launch: blocks in order, nt threads each
extern std::function<void()> *g_fn;
void emu_run_block(int nt);
template <class F> void emu_launch(int nb, int nt, F f) {
    gridDim.x = nb; blockDim.x = nt;
    std::function<void()> fn = f;
    g_fn = &fn;
    for (int b = 0; b < nb; b++) {
        blockIdx_g.x = b;
        emu_run_block(nt);
    }
}
