/* Tiny assertion helpers shared by the C tests. */
#ifndef BITNET_TEST_CHECK_H
#define BITNET_TEST_CHECK_H
#include <stdio.h>
#include <stdlib.h>

static int check_failures = 0;
static int check_count = 0; /* checks run, printed at the end */

#define CHECK(cond)                                                               \
  do {                                                                            \
    check_count++;                                                                \
    if (!(cond)) {                                                                \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__,     \
              __LINE__, #cond, bitnet_last_error() ? bitnet_last_error() : "none"); \
      check_failures++;                                                           \
    }                                                                             \
  } while (0)

/* The call failed with `status` and left a message. */
#define CHECK_FAILED_WITH(status)                                                 \
  do {                                                                            \
    CHECK(bitnet_last_status() == (status));                                      \
    CHECK(bitnet_last_error() != NULL);                                           \
    bitnet_clear_error();                                                         \
  } while (0)

#define CHECK_DONE()                                                              \
  do {                                                                            \
    if (check_failures) {                                                         \
      fprintf(stderr, "%d of %d check(s) failed\n", check_failures, check_count); \
      return 1;                                                                   \
    }                                                                             \
    printf("ok (%d checks)\n", check_count);                                      \
    return 0;                                                                     \
  } while (0)

#endif
