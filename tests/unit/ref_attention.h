/* ref_attention — exact (double) attention for one query row and one head,
 * the reference the CPU backend's attention and attention_ext are checked
 * against (test_backend_cpu.c, test_cpu_moe.c). Header-only. */
#ifndef REF_ATTENTION_H
#define REF_ATTENTION_H

#include <math.h>

#include "engine/quant.h"

/* q [hd] (rounded to fp16 first, as the backends do) against keys t0..pos of
 * the fp16 caches kc/vc, whose row t starts at t * kv_stride + kv_off;
 * softmax(q.k * scale) over those keys (and the sink logit *sink when given)
 * applied to v, into out[hd]; s holds pos + 1 scores (scratch) */
static inline void ref_attention_row(const float *q, const uint16_t *kc, const uint16_t *vc, int kv_stride, int kv_off,
                                     int hd, int t0, int pos, double scale, const float *sink, double *s, double *out) {
    double mx = sink ? *sink : -1e300, z = 0;
    for (int t = t0; t <= pos; t++) {
        double d = 0;
        for (int i = 0; i < hd; i++)
            d += (double)qt_f16_to_f32(qt_f32_to_f16(q[i])) * qt_f16_to_f32(kc[t * kv_stride + kv_off + i]);
        s[t] = d * scale;
        if (s[t] > mx) mx = s[t];
    }
    for (int t = t0; t <= pos; t++) z += (s[t] = exp(s[t] - mx));
    if (sink) z += exp(*sink - mx);
    for (int i = 0; i < hd; i++) {
        double o = 0;
        for (int t = t0; t <= pos; t++) o += s[t] / z * qt_f16_to_f32(vc[t * kv_stride + kv_off + i]);
        out[i] = o;
    }
}

#endif
