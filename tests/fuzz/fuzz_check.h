/* fuzz_check — CHECK(c), an invariant of a fuzz target: when it does not
 * hold, the target prints its name (FZ_NAME, defined before this include),
 * the line and the condition, and aborts (libFuzzer keeps the input). */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#ifndef FZ_NAME
#error "define FZ_NAME (the target's name) before including fuzz_check.h"
#endif

#define CHECK(c)                                                                                                   \
    do {                                                                                                           \
        if (!(c)) {                                                                                                \
            fprintf(stderr, FZ_NAME ": invariant failed at line %d: %s\n", __LINE__, #c);                          \
            abort();                                                                                               \
        }                                                                                                          \
    } while (0)

#endif
