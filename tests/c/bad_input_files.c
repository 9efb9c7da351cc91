/*
 * Truncated and corrupted model files through bitnet_model_load_from_file.
 *
 *   bad_input_files MODEL [STEP_BYTES [N_FLIPS [SEED]]]
 *
 * Truncation: a copy of MODEL is cut to every multiple of STEP_BYTES (default 1024) below its
 * size, and each prefix is loaded: every load must return NULL with a documented status
 * (FORMAT, METADATA or UNSUPPORTED: a short header is a malformed file, a header cut inside a
 * key's value or a tensor directory whose data runs past the end is too) and a message naming
 * the problem. The copy is cut from the top down with ftruncate, so no prefix is written twice.
 *
 * Corruption: N_FLIPS (default 500) seeded single-byte changes (a random byte XOR a random
 * non-zero mask), half of them inside the header (metadata + tensor directory, where a flip
 * changes lengths, counts, types and offsets) and half anywhere. Each load either fails as
 * above, or succeeds (a flipped weight is still a valid file) and then decodes a token without
 * crashing.
 *
 * After every case the process is alive, the thread's error state is consistent, and the
 * original model still loads and decodes (checked every 500 cases and at the end). Prints the
 * counts of cases run. Memory checkers run it with a larger step and fewer flips.
 */
#define _GNU_SOURCE
#include "bitnet.h"
#include "check.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t rng_state;
static uint64_t next_rand(void) { /* splitmix64: reproducible from the seed */
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void quiet(enum bitnet_log_level level, const char *text, void *user_data) {
  (void)level;
  (void)text;
  (void)user_data;
}

static struct bitnet_model_params params(void) { return bitnet_model_default_params(); }

/* One token decoded with a small context: the model is usable. */
static int decodes(struct bitnet_model *model) {
  struct bitnet_context_params cp = bitnet_context_default_params();
  cp.n_ctx = 16;
  cp.n_batch = 16;
  cp.n_threads = cp.n_threads_batch = 1;
  struct bitnet_context *ctx = bitnet_init_from_model(model, cp);
  if (!ctx) return 0;
  const struct bitnet_vocab *vocab = bitnet_model_get_vocab(model);
  bitnet_token tok[2] = {bitnet_vocab_bos(vocab), 3};
  if (tok[0] < 0) tok[0] = 1;
  int ok = bitnet_decode(ctx, bitnet_batch_get_one(tok, 2)) == 0 && bitnet_get_logits_ith(ctx, -1) != NULL;
  bitnet_free(ctx);
  return ok;
}

static int good_load_works(const char *path) {
  struct bitnet_model *m = bitnet_model_load_from_file(path, params());
  int ok = m != NULL && decodes(m);
  bitnet_model_free(m);
  return ok;
}

/* A failed load: NULL, one of the statuses a bad file may give, a message. */
static int failed_as_documented(void) {
  enum bitnet_status s = bitnet_last_status();
  const char *msg = bitnet_last_error();
  int ok = (s == BITNET_ERR_FORMAT || s == BITNET_ERR_METADATA || s == BITNET_ERR_UNSUPPORTED) && msg != NULL &&
           strlen(msg) > 0;
  if (!ok) fprintf(stderr, "unexpected failure: status %d, message %s\n", (int)s, msg ? msg : "(none)");
  bitnet_clear_error();
  return ok;
}

/* Header length (metadata + tensor directory) of a GGUF file; 0 if it cannot be walked. Only to
 * aim half of the flips at the header: the library's own parser is what is under test. */
static size_t gguf_header_len(const uint8_t *d, size_t n) {
  uint64_t n_tensors, n_kv, len;
  if (n < 24) return 0;
  memcpy(&n_tensors, d + 8, 8); /* after the magic and the version */
  memcpy(&n_kv, d + 16, 8);
  size_t o = 24;
  static const size_t scalar[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
#define NEED(k) \
  if (o + (k) > n) return 0
  for (uint64_t i = 0; i < n_kv; i++) {
    NEED(8);
    memcpy(&len, d + o, 8);
    o += 8 + len;
    NEED(4);
    uint32_t t, at;
    memcpy(&t, d + o, 4);
    o += 4;
    uint64_t count = 1;
    if (t == 9) {
      NEED(12);
      memcpy(&at, d + o, 4);
      memcpy(&count, d + o + 4, 8);
      o += 12;
      t = at;
    }
    if (t > 12) return 0;
    for (uint64_t j = 0; j < count; j++) {
      if (t == 8) {
        NEED(8);
        memcpy(&len, d + o, 8);
        o += 8 + len;
      } else {
        o += scalar[t];
      }
    }
  }
  for (uint64_t i = 0; i < n_tensors; i++) {
    NEED(8);
    memcpy(&len, d + o, 8);
    o += 8 + len;
    NEED(4);
    uint32_t nd;
    memcpy(&nd, d + o, 4);
    o += 4 + 8 * (size_t)nd + 4 + 8;
  }
#undef NEED
  return o <= n ? o : 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 5) {
    fprintf(stderr, "usage: %s MODEL [STEP_BYTES [N_FLIPS [SEED]]]\n", argv[0]);
    return 2;
  }
  const char *model_path = argv[1];
  const long step = argc > 2 ? atol(argv[2]) : 1024;
  const long n_flips = argc > 3 ? atol(argv[3]) : 500;
  rng_state = argc > 4 ? strtoull(argv[4], NULL, 10) : 20261124;
  if (step <= 0 || n_flips < 0) return 2;

  /* the whole model in memory, then a private temporary copy to cut and flip */
  FILE *in = fopen(model_path, "rb");
  CHECK(in != NULL);
  if (!in) CHECK_DONE();
  fseek(in, 0, SEEK_END);
  const size_t size = (size_t)ftell(in);
  fseek(in, 0, SEEK_SET);
  uint8_t *data = malloc(size);
  CHECK(data != NULL && fread(data, 1, size, in) == size);
  fclose(in);
  const size_t header = gguf_header_len(data, size);
  CHECK(header > 0 && header < size);

  char tmp[] = "/tmp/bitnet-bad-file-XXXXXX";
  int fd = mkstemp(tmp);
  CHECK(fd >= 0);
  if (fd < 0) CHECK_DONE();
  CHECK(write(fd, data, size) == (ssize_t)size);
  CHECK(good_load_works(tmp)); /* the copy is a good model */

  bitnet_log_set(quiet, NULL); /* thousands of load failures would be logged */
  long prefixes = 0, flips = 0, flips_loaded = 0, flips_in_header = 0;
  int64_t t0 = bitnet_time_us();

  /* ---- every STEP_BYTES prefix, longest first (size itself excluded: that is the good file) */
  size_t top = (size - 1) / (size_t)step * (size_t)step;
  for (size_t len = top;; len -= (size_t)step) {
    CHECK(ftruncate(fd, (off_t)len) == 0);
    bitnet_clear_error();
    struct bitnet_model *m = bitnet_model_load_from_file(tmp, params());
    if (m != NULL) {
      fprintf(stderr, "prefix of %zu bytes loaded\n", len);
      CHECK(m == NULL);
      bitnet_model_free(m);
    } else if (!failed_as_documented()) {
      fprintf(stderr, "  (prefix of %zu bytes)\n", len);
      check_failures++;
    }
    prefixes++;
    if (prefixes % 500 == 0) CHECK(good_load_works(model_path));
    if (len < (size_t)step) break;
  }
  int64_t t1 = bitnet_time_us();

  /* ---- seeded byte flips */
  CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, data, size, 0) == (ssize_t)size);
  for (long i = 0; i < n_flips; i++) {
    size_t at = (i % 2 == 0) ? (size_t)(next_rand() % header) : (size_t)(next_rand() % size);
    uint8_t mask = (uint8_t)(1 + next_rand() % 255);
    uint8_t flipped = data[at] ^ mask;
    CHECK(pwrite(fd, &flipped, 1, (off_t)at) == 1);
    bitnet_clear_error();
    struct bitnet_model *m = bitnet_model_load_from_file(tmp, params());
    if (m != NULL) {
      flips_loaded++;
      /* a changed weight or a still-valid header value: usable, no crash (tokens stay in range) */
      bitnet_clear_error();
      if (!decodes(m)) {
        /* a changed hyper-parameter may make the context impossible: a documented error */
        CHECK(bitnet_last_status() != BITNET_OK && bitnet_last_error() != NULL);
        bitnet_clear_error();
      }
      bitnet_model_free(m);
    } else if (!failed_as_documented()) {
      fprintf(stderr, "  (byte %zu: %02x -> %02x)\n", at, data[at], flipped);
      check_failures++;
    }
    if (at < header) flips_in_header++;
    CHECK(pwrite(fd, &data[at], 1, (off_t)at) == 1); /* restore */
    flips++;
    if (flips % 500 == 0) CHECK(good_load_works(model_path));
  }
  int64_t t2 = bitnet_time_us();

  bitnet_log_set(NULL, NULL);
  CHECK(good_load_works(tmp)); /* restored copy */
  CHECK(good_load_works(model_path));
  close(fd);
  unlink(tmp);
  free(data);
  printf("header %zu of %zu bytes; %ld prefixes (every %ld bytes) in %.1f s; %ld byte flips "
         "(%ld in the header, %ld still loaded) in %.1f s\n",
         header, size, prefixes, step, (t1 - t0) / 1e6, flips, flips_in_header, flips_loaded, (t2 - t1) / 1e6);
  CHECK_DONE();
}
