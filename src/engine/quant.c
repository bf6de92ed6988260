/* quant.c — the type table, fp16/bf16/E8M0 conversions, and the public entry
 * points, which check arguments and dispatch to the per-type kernels in
 * quant_dequant.c, quant_quantize.c, quant_kquant.c, quant_dot*.c. */
#include <errno.h>
#include <pthread.h>

#include "common/util.h"
#include "engine/quant_impl.h"

/* Static checks that our structs are ggml's byte layouts. */
_Static_assert(sizeof(blk_q4_0) == 18, "q4_0");
_Static_assert(sizeof(blk_q4_1) == 20, "q4_1");
_Static_assert(sizeof(blk_q5_0) == 22, "q5_0");
_Static_assert(sizeof(blk_q5_1) == 24, "q5_1");
_Static_assert(sizeof(blk_q8_0) == 34, "q8_0");
_Static_assert(sizeof(blk_q8_1) == 36, "q8_1");
_Static_assert(sizeof(blk_q2_K) == 84, "q2_K");
_Static_assert(sizeof(blk_q3_K) == 110, "q3_K");
_Static_assert(sizeof(blk_q4_K) == 144, "q4_K");
_Static_assert(sizeof(blk_q5_K) == 176, "q5_K");
_Static_assert(sizeof(blk_q6_K) == 210, "q6_K");
_Static_assert(sizeof(blk_q8_K) == 292, "q8_K");
_Static_assert(sizeof(blk_mxfp4) == 17, "mxfp4");

const int8_t qt__kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

struct qt_traits {
    qt_info_t info;
    qt_dequant_fn dequant;
    qt_quant_fn quantize; /* weight quantizer (qt_quantize_row), NULL when none */
    qt_quant_fn act;      /* activation quantizer (qt_quantize_act), NULL when not a vec_dot_type */
    qt_dot_fn dot_ref;
};

#define T(id, nm, bl, by, vdt, dq, q, a, dr) \
    [id] = {{nm, bl, by, vdt, 0}, dq, q, a, dr}
static const struct qt_traits g_traits[QT__MAX] = {
    T(QT_F32, "f32", 1, 4, QT_F32, qt__dq_f32, qt__q_f32, qt__q_f32, qt__dot_f32_ref),
    T(QT_F16, "f16", 1, 2, QT_F16, qt__dq_f16, qt__q_f16, qt__q_f16, qt__dot_f16_ref),
    T(QT_BF16, "bf16", 1, 2, QT_F32, qt__dq_bf16, qt__q_bf16, NULL, qt__dot_bf16_ref),
    T(QT_Q4_0, "q4_0", QK4_0, 18, QT_Q8_0, qt__dq_q4_0, qt__q_q4_0, NULL, qt__dot_q4_0_ref),
    T(QT_Q4_1, "q4_1", QK4_1, 20, QT_Q8_1, qt__dq_q4_1, qt__q_q4_1, NULL, qt__dot_q4_1_ref),
    T(QT_Q5_0, "q5_0", QK5_0, 22, QT_Q8_0, qt__dq_q5_0, qt__q_q5_0, NULL, qt__dot_q5_0_ref),
    T(QT_Q5_1, "q5_1", QK5_1, 24, QT_Q8_1, qt__dq_q5_1, qt__q_q5_1, NULL, qt__dot_q5_1_ref),
    T(QT_Q8_0, "q8_0", QK8_0, 34, QT_Q8_0, qt__dq_q8_0, qt__q_q8_0, qt__q_q8_0, qt__dot_q8_0_ref),
    T(QT_Q8_1, "q8_1", QK8_1, 36, -1, qt__dq_q8_1, NULL, qt__q_q8_1, NULL),
    T(QT_Q2_K, "q2_K", QK_K, 84, QT_Q8_K, qt__dq_q2_K, qt__q_q2_K, NULL, qt__dot_q2_K_ref),
    T(QT_Q3_K, "q3_K", QK_K, 110, QT_Q8_K, qt__dq_q3_K, qt__q_q3_K, NULL, qt__dot_q3_K_ref),
    T(QT_Q4_K, "q4_K", QK_K, 144, QT_Q8_K, qt__dq_q4_K, qt__q_q4_K, NULL, qt__dot_q4_K_ref),
    T(QT_Q5_K, "q5_K", QK_K, 176, QT_Q8_K, qt__dq_q5_K, qt__q_q5_K, NULL, qt__dot_q5_K_ref),
    T(QT_Q6_K, "q6_K", QK_K, 210, QT_Q8_K, qt__dq_q6_K, qt__q_q6_K, NULL, qt__dot_q6_K_ref),
    T(QT_Q8_K, "q8_K", QK_K, 292, -1, qt__dq_q8_K, NULL, qt__q_q8_K, NULL),
    T(QT_I8, "i8", 1, 1, -1, qt__dq_i8, NULL, NULL, NULL),
    T(QT_I16, "i16", 1, 2, -1, qt__dq_i16, NULL, NULL, NULL),
    T(QT_I32, "i32", 1, 4, -1, qt__dq_i32, NULL, NULL, NULL),
    T(QT_MXFP4, "mxfp4", QK_MXFP4, 17, QT_Q8_0, qt__dq_mxfp4, qt__q_mxfp4, NULL, qt__dot_mxfp4_ref),
};
#undef T

static const struct qt_traits *traits(int type) {
    if (type < 0 || type >= QT__MAX || !g_traits[type].info.name) return NULL;
    return &g_traits[type];
}

/* public info with can_quantize filled from the table (a function-pointer
 * test is not a constant expression under every build config) */
static qt_info_t g_info[QT__MAX];
static pthread_once_t g_info_once = PTHREAD_ONCE_INIT;

static void info_init(void) {
    for (int i = 0; i < QT__MAX; i++) {
        g_info[i] = g_traits[i].info;
        g_info[i].can_quantize = g_traits[i].quantize != NULL;
    }
}

const qt_info_t *qt_info(int type) {
    if (!traits(type)) return NULL;
    pthread_once(&g_info_once, info_init);
    return &g_info[type];
}

size_t qt_row_bytes(int type, int64_t n) {
    const struct qt_traits *t = traits(type);
    if (!t || n < 0 || n % t->info.blck) return 0;
    const uint64_t nb = (uint64_t)(n / t->info.blck);
    if (nb > (uint64_t)(INT64_MAX / t->info.bytes)) return 0; /* hostile ne0: never wrap */
    return (size_t)nb * (size_t)t->info.bytes;
}

/* ---- scalar conversions ----------------------------------------------------- */
float qt_f16_to_f32(uint16_t h) { return qt__h2f(h); }

uint16_t qt_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu)); /* NaN, quieted */
    if (x >= 0x47800000u) return (uint16_t)(sign | 0x7c00u); /* >= 65536 (and inf) -> inf */
    if (x < 0x38800000u) {                                    /* below 2^-14: subnormal half */
        if (x < 0x33000000u) return sign;                     /* <= 2^-25 rounds to 0 */
        uint32_t m = (x & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(x >> 23); /* value = m*2^(e-150); half unit is 2^-24 */
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (x >> 13) - (112u << 10); /* rebias exponent 127 -> 15 */
    uint32_t rem = x & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* may carry into inf: correct */
    return (uint16_t)(sign | h);
}

float qt_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t qt_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* ggml's GGML_E8M0_TO_FP32_HALF: 2^(e-128), i.e. half of the OCP scale
 * 2^(e-127), because the e2m1 table is stored doubled. e=0 and e=1 give the
 * subnormals 2^-128 and 2^-127; e=255 is NOT NaN here but 2^127 (ggml does not
 * special-case it in the half variant). */
float qt_e8m0_to_f32(uint8_t e) {
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* ---- dispatch ---------------------------------------------------------------- */
void qt_dequant_row(int type, const void *src, float *dst, int64_t n) {
    const struct qt_traits *t = traits(type);
    LLORCH_ASSERT(t && n >= 0 && n % t->info.blck == 0);
    t->dequant(src, dst, n);
}

int qt_quantize_row(int type, const float *src, void *dst, int64_t n) {
    const struct qt_traits *t = traits(type);
    if (!t || !t->quantize) return -ENOTSUP;
    if (n < 0 || n % t->info.blck) return -EINVAL;
    t->quantize(src, dst, n);
    return 0;
}

/* Resolved once: SIMD kernels where quant_dot_avx2.c / quant_act_avx2.c
 * have them, else the scalar reference. */
static qt_dot_fn g_dot[QT__MAX];
static qt_quant_fn g_act[QT__MAX];
static pthread_once_t g_dot_once = PTHREAD_ONCE_INIT;

static void dot_init(void) {
    for (int i = 0; i < QT__MAX; i++) {
        qt_dot_fn f = qt__dot_simd(i);
        g_dot[i] = f ? f : g_traits[i].dot_ref;
        qt_quant_fn a = g_traits[i].act ? qt__act_simd(i) : NULL;
        g_act[i] = a ? a : g_traits[i].act;
    }
}

void qt_quantize_act(int vec_dot_type, const float *x, void *dst, int64_t n) {
    const struct qt_traits *t = traits(vec_dot_type);
    LLORCH_ASSERT(t && t->act && n >= 0 && n % t->info.blck == 0);
    pthread_once(&g_dot_once, dot_init);
    g_act[vec_dot_type](x, dst, n);
}

void qt__act_ref(int type, const float *x, void *dst, int64_t n) {
    const struct qt_traits *t = traits(type);
    LLORCH_ASSERT(t && t->act && n >= 0 && n % t->info.blck == 0);
    t->act(x, dst, n);
}

float qt_vec_dot_ref(int type, const void *wrow, const void *xq, int64_t n) {
    const struct qt_traits *t = traits(type);
    LLORCH_ASSERT(t && t->dot_ref && n >= 0 && n % t->info.blck == 0);
    return t->dot_ref(wrow, xq, n);
}

float qt_vec_dot(int type, const void *wrow, const void *xq, int64_t n) {
    pthread_once(&g_dot_once, dot_init);
    LLORCH_ASSERT(type >= 0 && type < QT__MAX && g_dot[type] && n >= 0 && n % g_traits[type].info.blck == 0);
    return g_dot[type](wrow, xq, n);
}
