// test-libs: llorch_core
/* pkw_plan.h (the CUDA weights-in-shared-memory decode kernel's row split and
 * region sizes), checked on the CPU: for the shapes and block formats the
 * kernel meets and a sweep around them, every row is owned by exactly one
 * block, no block owns more than ceil(R/nblk) rows, a block's copy stays
 * inside its tensor, starts and ends on the rows it owns, moves whole
 * 16-byte chunks plus a tail of fewer than 16 bytes, and never writes more
 * than the region the host reserves. */
#include "testutil.h"

#include "engine/cuda/pkw_plan.h"

/* one matrix of R rows of nb1 bytes at base over nblk blocks */
static void check_matrix(int R, int nblk, size_t nb1, uintptr_t base) {
    const size_t region = pw_plan_region(R, nblk, nb1);
    assert_int_equal(region % 16, 0);
    int next = 0; /* the first row not yet owned */
    for (int b = 0; b < nblk; b++) {
        int r0, r1;
        pw_plan_range(b, nblk, R, &r0, &r1);
        if (r0 != next || r1 < r0 || r1 - r0 > (R + nblk - 1) / nblk)
            fail_msg("R %d nblk %d block %d: rows [%d, %d), expected to start at %d", R, nblk, b, r0, r1, next);
        next = r1;
        if (r1 == r0) continue; /* the kernel copies nothing */
        uintptr_t a0, a1, g1;
        const size_t wrote = pw_plan_copy(base, nb1, r0, r1, &a0, &a1, &g1);
        const uintptr_t g0 = base + (uintptr_t)r0 * nb1;
        if (a0 % 16 || a1 % 16 || a0 < base || a0 > g0 || g0 - a0 >= 16 || g1 != base + (uintptr_t)r1 * nb1 ||
            a1 > g1 || g1 - a1 >= 16 || g1 > base + (uintptr_t)R * nb1)
            fail_msg("R %d nblk %d nb1 %zu block %d: copy [%#lx, %#lx) tail to %#lx for rows at %#lx", R, nblk, nb1, b,
                     (unsigned long)a0, (unsigned long)a1, (unsigned long)g1, (unsigned long)g0);
        /* the last row's end inside the region: (g0 & 15) + rows * nb1 */
        if (wrote > region || (g0 - a0) + (size_t)(r1 - r0) * nb1 > wrote)
            fail_msg("R %d nblk %d nb1 %zu block %d: writes %zu of a %zu-byte region", R, nblk, nb1, b, wrote, region);
    }
    assert_int_equal(next, R);
}

static void test_model_shapes(void **s) {
    (void)s;
    /* Qwen2.5-0.5B: q 896, k/v 128, o 896, gate/up 4864, down 896 rows; row
     * bytes of Q5_0/Q8_0 at K 896 (616/952), Q4_K/Q6_K at K 4864 (2736/3990),
     * and the odd small formats of the op tests; H100: 132 SMs, 1 or 2 blocks each */
    static const int rows[] = {896, 128, 4864, 1152, 14 * 64};
    static const size_t nb1s[] = {616, 952, 2736, 3990, 18, 20, 22, 24, 34, 144, 176, 210};
    static const int grids[] = {132, 264, 114, 228};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        for (size_t j = 0; j < sizeof nb1s / sizeof nb1s[0]; j++)
            for (size_t k = 0; k < sizeof grids / sizeof grids[0]; k++) {
                check_matrix(rows[i], grids[k], nb1s[j], 0x10000);
                check_matrix(rows[i], grids[k], nb1s[j], 0x7fff0); /* 16- but not 32-aligned */
            }
}

static void test_sweep(void **s) {
    (void)s;
    /* every small shape: fewer rows than blocks, one row, every row size 1..64 */
    for (int R = 1; R <= 70; R++)
        for (int nblk = 1; nblk <= 140; nblk += (nblk < 20 ? 1 : 17))
            for (size_t nb1 = 1; nb1 <= 64; nb1++) check_matrix(R, nblk, nb1, 0x1000);
}

static void test_region_is_tight(void **s) {
    (void)s;
    /* the worst case reaches the region exactly (the bound is what the
     * copies need, not loose by accident): a block with ceil(R/nblk) rows
     * whose first byte sits late in its 16-byte chunk and whose last row
     * ends in a tail; 7 rows of 5 bytes over 3 blocks: the last block has
     * rows 4..6 at offset 20 (4 mod 16), 15 bytes, 32 written = the region */
    int hit = 0;
    for (size_t nb1 = 1; nb1 <= 48; nb1++) {
        const int R = 7, nblk = 3;
        for (int b = 0; b < nblk; b++) {
            int r0, r1;
            pw_plan_range(b, nblk, R, &r0, &r1);
            uintptr_t a0, a1, g1;
            if (pw_plan_copy(0x2000, nb1, r0, r1, &a0, &a1, &g1) == pw_plan_region(R, nblk, nb1)) hit++;
        }
    }
    assert_true(hit > 0);
    uintptr_t a0, a1, g1;
    assert_int_equal(pw_plan_copy(0x2000, 5, 4, 7, &a0, &a1, &g1), 32);
    assert_int_equal(pw_plan_region(7, 3, 5), 32);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_shapes),
        cmocka_unit_test(test_sweep),
        cmocka_unit_test(test_region_is_tight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
