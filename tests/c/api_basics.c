/* System, error and log entry points, plus a C++-free compile of the whole header. */
#include "bitnet.h"
#include "check.h"
#include <string.h>

static int log_calls = 0;
static void on_log(enum bitnet_log_level level, const char *text, void *user_data) {
  (void)level;
  (void)text;
  *(int *)user_data += 1;
}

int main(void) {
  bitnet_backend_init();

  CHECK(bitnet_last_error() == NULL);
  CHECK(bitnet_last_status() == BITNET_OK);

  const char *info = bitnet_print_system_info();
  CHECK(info != NULL && strncmp(info, "CPU :", 5) == 0 && strstr(info, "kernels = ") != NULL);
  CHECK(bitnet_supports_mmap());

  int64_t t0 = bitnet_time_us();
  int64_t t1 = bitnet_time_us();
  CHECK(t0 > 0 && t1 >= t0);

  bitnet_log_set(on_log, &log_calls);
  bitnet_log_set(NULL, NULL);

  bitnet_clear_error();
  CHECK(bitnet_last_error() == NULL);
  (void)log_calls;

  bitnet_backend_free();
  CHECK_DONE();
}
