/* store_schema — ordered list of the store's migrations (see store_schema.c). */
#ifndef LLORCH_ORCH_STORE_SCHEMA_H
#define LLORCH_ORCH_STORE_SCHEMA_H

#include <stddef.h>

struct store_migration {
    int version;          /* 1, 2, ... strictly increasing */
    const char *summary;
    const char *sql;      /* one or more statements */
};

const struct store_migration *store_migrations(size_t *n);

#endif
