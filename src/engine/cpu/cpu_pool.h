/* cpu_pool — a persistent pool of worker threads for the CPU backend.
 *
 * Created once with the backend. cpu_pool_run(fn, arg, nth) runs
 * fn(arg, ith, nth) for ith = 0..nth-1, ith 0 on the calling thread, and
 * returns when all have finished. Workers spin briefly between jobs (the
 * gaps between ops of a forward pass are microseconds) and then sleep on a
 * condition variable, so an idle process burns no CPU.
 */
#ifndef LLORCH_CPU_POOL_H
#define LLORCH_CPU_POOL_H

typedef struct cpu_pool cpu_pool;
typedef void (*cpu_task_fn)(void *arg, int ith, int nth);

/* n_threads = total threads including the caller (>= 1). NULL on failure. */
cpu_pool *cpu_pool_new(int n_threads);
void cpu_pool_free(cpu_pool *p); /* NULL ok */
int cpu_pool_size(const cpu_pool *p);
/* nth is clamped to [1, size]; nth == 1 runs inline. */
void cpu_pool_run(cpu_pool *p, cpu_task_fn fn, void *arg, int nth);

#endif
