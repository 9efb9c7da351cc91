/*
 * Hostile calls through the C API (issue 19, items 1-6), each of which ended in a wrong answer,
 * an abort or a memory error before. Every one must now fail with a status and a message, and
 * every rejected batch, shift or state must leave the context byte for byte as it was.
 *
 *   hostile_api MODEL OTHER_MODEL
 *
 * MODEL and OTHER_MODEL: two files of the same geometry and vocabulary but different weights
 * (tiny-spm-i2_s.gguf and tiny-spm-tq2_0-q6k.gguf).
 *
 *  1. positions: a token at INT32_MAX is fine, the next one (get_one) is an error; seq_add past
 *     INT32_MAX is an error; seq_div by 0 or a negative number is an error; a state holding a
 *     cell at INT32_MAX restores, and the next token is again an error.
 *  2. state: sequence ids >= n_seq_max refused (a 4-sequence state into a 1-sequence context);
 *     another model's state refused; trailing bytes refused; bitnet_state_load_file on
 *     /dev/zero and on a cut file fails at once; a sequence state into a bad id refused.
 *  3. n_ctx rounding: 0xFFFFFFFA and 0xFFFFFFE0 are errors naming n_ctx, not 0-cell contexts.
 *  4. impossible sizes (n_ubatch, n_ctx): NULL with a message naming the parameter and the
 *     bytes, no abort; a huge n_batch is only a limit and allocates nothing up front.
 *  5. n_threads = 20000: capped at 512 with a warning.
 *  6. n_seq_id[i] larger than the batch's rows (bitnet_batch_init's n_seq_max) or than the
 *     context's n_seq_max: -1 before any row is read.
 */
#include "bitnet.h"
#include "check.h"

#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int warned_512 = 0;
static void logger(enum bitnet_log_level level, const char *text, void *user_data) {
  (void)user_data;
  if (level == BITNET_LOG_LEVEL_WARN && strstr(text, "512")) warned_512 = 1;
}

static struct bitnet_context *new_ctx(struct bitnet_model *m, uint32_t n_ctx, uint32_t n_seq) {
  struct bitnet_context_params p = bitnet_context_default_params();
  p.n_ctx = n_ctx;
  p.n_batch = 32;
  p.n_seq_max = n_seq;
  p.n_threads = 1;
  p.n_threads_batch = 1;
  return bitnet_init_from_model(m, p);
}

/* The context's state, malloc'd. */
static uint8_t *snapshot(struct bitnet_context *ctx, size_t *n) {
  *n = bitnet_state_get_size(ctx);
  uint8_t *s = malloc(*n);
  CHECK(s && bitnet_state_get_data(ctx, s, *n) == *n);
  return s;
}

/* The context's state equals `s`; frees s. */
static int unchanged(struct bitnet_context *ctx, uint8_t *s, size_t n) {
  size_t m;
  uint8_t *now = snapshot(ctx, &m);
  int same = m == n && memcmp(now, s, n) == 0;
  free(now);
  free(s);
  return same;
}

/* Decodes one token at `pos` in sequence `seq`. */
static int32_t decode_at(struct bitnet_context *ctx, bitnet_token t, bitnet_pos pos, bitnet_seq_id seq) {
  struct bitnet_batch b = bitnet_batch_init(1, 0, 1);
  b.n_tokens = 1;
  b.token[0] = t;
  b.pos[0] = pos;
  b.n_seq_id[0] = 1;
  b.seq_id[0][0] = seq;
  b.logits[0] = 1;
  int32_t r = bitnet_decode(ctx, b);
  bitnet_batch_free(b);
  return r;
}

static int32_t decode_next(struct bitnet_context *ctx, bitnet_token t) {
  return bitnet_decode(ctx, bitnet_batch_get_one(&t, 1));
}

static void positions(struct bitnet_model *m) {
  struct bitnet_context *ctx = new_ctx(m, 64, 2);
  bitnet_memory_t mem = bitnet_get_memory(ctx);
  size_t n;
  uint8_t *s;

  /* 1a: INT32_MAX is a position; the one after it is not. */
  CHECK(decode_at(ctx, 1, INT32_MAX, 0) == 0);
  s = snapshot(ctx, &n);
  CHECK(decode_next(ctx, 450) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(unchanged(ctx, s, n));
  CHECK(bitnet_memory_seq_pos_max(mem, 0) == INT32_MAX);

  /* 1d: that state restores into a fresh context, and the next token is still an error. */
  s = snapshot(ctx, &n);
  struct bitnet_context *other = new_ctx(m, 64, 2);
  CHECK(bitnet_state_set_data(other, s, n) == n);
  free(s);
  CHECK(bitnet_memory_seq_pos_max(bitnet_get_memory(other), 0) == INT32_MAX);
  s = snapshot(other, &n);
  CHECK(decode_next(other, 450) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(unchanged(other, s, n));
  bitnet_free(other);

  /* 1b: shifts past INT32_MAX: an error that moves no cell (the cell at 5 would fit). */
  bitnet_memory_clear(mem, true);
  CHECK(decode_at(ctx, 1, 5, 0) == 0);
  CHECK(decode_at(ctx, 450, 6, 0) == 0);
  s = snapshot(ctx, &n);
  bitnet_clear_error();
  bitnet_memory_seq_add(mem, 0, 0, -1, INT32_MAX);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_memory_seq_add(mem, 0, 0, -1, INT32_MAX - 5);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(unchanged(ctx, s, n));
  CHECK(bitnet_memory_seq_pos_max(mem, 0) == 6);
  bitnet_memory_seq_add(mem, 0, 0, -1, INT32_MAX - 6); /* up to exactly INT32_MAX: fine */
  CHECK(bitnet_last_error() == NULL);
  CHECK(bitnet_memory_seq_pos_max(mem, 0) == INT32_MAX);
  CHECK(bitnet_memory_seq_pos_min(mem, 0) == INT32_MAX - 1);
  s = snapshot(ctx, &n);
  bitnet_memory_seq_add(mem, 0, 0, -1, 1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(unchanged(ctx, s, n));
  CHECK(decode_next(ctx, 450) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_memory_seq_add(mem, 0, 0, -1, -(INT32_MAX - 1)); /* back to 0 and 1 */
  CHECK(bitnet_last_error() == NULL);
  CHECK(bitnet_memory_seq_pos_max(mem, 0) == 1);
  CHECK(decode_next(ctx, 450) == 0); /* the K-shift runs, then position 2 */
  CHECK(bitnet_memory_seq_pos_max(mem, 0) == 2);

  /* 1c: seq_div by zero or a negative number. */
  s = snapshot(ctx, &n);
  bitnet_memory_seq_div(mem, 0, 0, -1, 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_memory_seq_div(mem, 0, 0, -1, -2);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_memory_seq_div(mem, 0, 0, -1, INT32_MIN);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(unchanged(ctx, s, n));
  bitnet_free(ctx);
}

static void state(struct bitnet_model *m, struct bitnet_model *other_model) {
  size_t n, n2;
  uint8_t *s;
  /* 2a: a state with sequence 3 into a context of 1 sequence (and of 2). */
  struct bitnet_context *four = new_ctx(m, 64, 4);
  CHECK(decode_at(four, 1, 0, 3) == 0);
  uint8_t *blob = snapshot(four, &n);
  struct bitnet_context *one = new_ctx(m, 64, 1);
  CHECK(decode_at(one, 1, 0, 0) == 0);
  s = snapshot(one, &n2);
  CHECK(bitnet_state_set_data(one, blob, n) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(unchanged(one, s, n2));

  /* 2c: trailing bytes. */
  struct bitnet_context *same = new_ctx(m, 64, 4);
  uint8_t *longer = malloc(n + 1);
  memcpy(longer, blob, n);
  longer[n] = 0;
  s = snapshot(same, &n2);
  CHECK(bitnet_state_set_data(same, longer, n + 1) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_FORMAT);
  CHECK(unchanged(same, s, n2));
  CHECK(bitnet_state_set_data(same, blob, n) == n); /* exactly: fine */
  free(longer);

  /* 2e: a sequence state into sequence ids the context does not have. */
  size_t ns = bitnet_state_seq_get_size(four, 3);
  uint8_t *seq_blob = malloc(ns);
  CHECK(bitnet_state_seq_get_data(four, seq_blob, ns, 3) == ns);
  s = snapshot(one, &n2);
  CHECK(bitnet_state_seq_set_data(one, seq_blob, ns, 1) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_state_seq_set_data(one, seq_blob, ns, -1) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(unchanged(one, s, n2));
  CHECK(bitnet_state_seq_set_data(one, seq_blob, ns, 0) == ns); /* as sequence 0: fine */
  free(seq_blob);

  /* 2b: another model's state (same geometry and vocabulary, other weights). */
  struct bitnet_context *foreign = new_ctx(other_model, 64, 4);
  CHECK(decode_at(foreign, 1, 0, 0) == 0);
  uint8_t *fblob = snapshot(foreign, &n2);
  s = snapshot(same, &n);
  CHECK(bitnet_state_set_data(same, fblob, n2) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(unchanged(same, s, n));
  free(fblob);

  /* 2d: files. /dev/zero is refused at its first bytes (it used to be read until memory ran
   * out); a cut file and a file with bytes after the state are refused, context unchanged. */
  bitnet_token toks[8];
  size_t n_toks = 99;
  s = snapshot(same, &n);
  time_t t0 = time(NULL);
  CHECK(!bitnet_state_load_file(same, "/dev/zero", toks, 8, &n_toks));
  CHECK(bitnet_last_status() == BITNET_ERR_FORMAT);
  bitnet_clear_error();
  CHECK(time(NULL) - t0 < 10);
  const char *path = "hostile_state.bin";
  bitnet_token hist[3] = {1, 450, 4996};
  CHECK(bitnet_state_save_file(four, path, hist, 3));
  CHECK(!bitnet_state_load_file(same, path, toks, 2, &n_toks)); /* room for 2 of 3 tokens */
  CHECK_FAILED_WITH(BITNET_ERR_BUFFER_TOO_SMALL);
  FILE *f = fopen(path, "ab");
  CHECK(f && fputc(7, f) == 7);
  if (f) fclose(f);
  CHECK(!bitnet_state_load_file(same, path, toks, 8, &n_toks));
  CHECK_FAILED_WITH(BITNET_ERR_FORMAT);
  CHECK(truncate(path, 100) == 0);
  CHECK(!bitnet_state_load_file(same, path, toks, 8, &n_toks));
  CHECK_FAILED_WITH(BITNET_ERR_FORMAT);
  CHECK(unchanged(same, s, n));
  CHECK(bitnet_state_save_file(four, path, hist, 3));
  CHECK(bitnet_state_load_file(same, path, toks, 8, &n_toks) && n_toks == 3 && toks[2] == 4996);
  CHECK(!bitnet_state_load_file(one, path, toks, 8, &n_toks)); /* sequence 3 of 1 */
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  unlink(path);

  free(blob);
  bitnet_free(four);
  bitnet_free(one);
  bitnet_free(same);
  bitnet_free(foreign);
}

static void creation(struct bitnet_model *m) {
  struct bitnet_context_params p = bitnet_context_default_params();
  p.n_threads = p.n_threads_batch = 1;
  const char *msg;
  /* 3: n_ctx rounding. */
  uint32_t bad_ctx[3] = {0xFFFFFFFAu, 0xFFFFFFE0u, 0xFFFFFFFFu};
  for (int i = 0; i < 3; i++) {
    p.n_ctx = bad_ctx[i];
    bitnet_clear_error();
    CHECK(bitnet_init_from_model(m, p) == NULL);
    msg = bitnet_last_error();
    CHECK(msg && strstr(msg, "n_ctx"));
  }
  /* 4: sizes the machine cannot hold: NULL, with the parameter and the bytes named. */
  p.n_ctx = 64;
  p.n_batch = p.n_ubatch = 0x7FFFFFFF;
  bitnet_clear_error();
  CHECK(bitnet_init_from_model(m, p) == NULL);
  msg = bitnet_last_error();
  CHECK(msg && strstr(msg, "n_ubatch") && strstr(msg, "bytes"));
  if (msg) printf("refused: %s\n", msg);
  /* n_batch is a limit, not an allocation: a huge one with a small n_ubatch is fine. */
  p.n_batch = 0x7FFFFFFF;
  p.n_ubatch = 32;
  struct bitnet_context *big = bitnet_init_from_model(m, p);
  CHECK(big != NULL);
  bitnet_token one_tok = 1;
  CHECK(big && bitnet_decode(big, bitnet_batch_get_one(&one_tok, 1)) == 0);
  bitnet_free(big);
  p.n_batch = 512;
  p.n_ctx = 0x7FFFFFE0u;
  bitnet_clear_error();
  CHECK(bitnet_init_from_model(m, p) == NULL);
  msg = bitnet_last_error();
  CHECK(msg && strstr(msg, "n_ctx") && strstr(msg, "bytes"));
  if (msg) printf("refused: %s\n", msg);
  /* 5: threads capped at 512, with a warning. */
  p.n_ctx = 64;
  p.n_threads = p.n_threads_batch = 20000;
  struct bitnet_context *ctx = bitnet_init_from_model(m, p);
  CHECK(ctx != NULL);
  CHECK(bitnet_n_threads(ctx) == 512 && bitnet_n_threads_batch(ctx) == 512);
  CHECK(warned_512);
  bitnet_free(ctx);
}

static void batches(struct bitnet_model *m) {
  struct bitnet_context *ctx = new_ctx(m, 64, 4);
  size_t n;
  uint8_t *s = snapshot(ctx, &n);
  /* 6: rows of one sequence id, n_seq_id past them. */
  struct bitnet_batch b = bitnet_batch_init(2, 0, 1);
  b.n_tokens = 1;
  b.token[0] = 1;
  b.pos[0] = 0;
  b.seq_id[0][0] = 0;
  b.logits[0] = 1;
  int32_t counts[3] = {2, 4, 1000000000};
  for (int i = 0; i < 3; i++) {
    b.n_seq_id[0] = counts[i];
    CHECK(bitnet_decode(ctx, b) == -1);
    CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  }
  b.n_seq_id[0] = 1;
  b.n_tokens = 3; /* more tokens than the batch was made for */
  CHECK(bitnet_decode(ctx, b) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(unchanged(ctx, s, n));
  b.n_tokens = 1;
  CHECK(bitnet_decode(ctx, b) == 0);
  bitnet_batch_free(b);

  /* A batch the caller built: rows are bounded by the context's n_seq_max (4). */
  bitnet_token tok = 450;
  bitnet_pos pos = 1;
  bitnet_seq_id row[1] = {0};
  bitnet_seq_id *rows[1] = {row};
  int32_t n_seq = 5;
  int8_t logit = 1;
  struct bitnet_batch user = {1, &tok, NULL, &pos, &n_seq, rows, &logit};
  s = snapshot(ctx, &n);
  CHECK(bitnet_decode(ctx, user) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(unchanged(ctx, s, n));
  n_seq = 1;
  CHECK(bitnet_decode(ctx, user) == 0);
  bitnet_free(ctx);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL OTHER_MODEL\n", argv[0]);
    return 2;
  }
  bitnet_log_set(logger, NULL);
  struct bitnet_model *m = bitnet_model_load_from_file(argv[1], bitnet_model_default_params());
  struct bitnet_model *other = bitnet_model_load_from_file(argv[2], bitnet_model_default_params());
  CHECK(m && other);
  if (!m || !other) CHECK_DONE();
  positions(m);
  state(m, other);
  creation(m);
  batches(m);
  bitnet_model_free(m);
  bitnet_model_free(other);
  CHECK_DONE();
}
