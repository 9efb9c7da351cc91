/* Model I/O and thread pools of llama.h (issue 17), through the installed package:
 *  - bitnet_threadpool_* (ggml's threadpool API renamed) and bitnet_attach/detach_threadpool:
 *    a context decoding on an attached pool (one pool, or separate single-token and batch
 *    pools) gives the logits of a context on its own pools bit for bit, also after the pool
 *    handle is freed while attached, and after detaching;
 *  - bitnet_model_load_from_file_ptr: a FILE * at the start of the model, or at the GGUF
 *    embedded after a prefix in a larger file, loads the model that gives the same logits as
 *    the path-loaded one; vocab_only through it; NULL / garbage / empty streams are refused;
 *  - bitnet_model_save_to_file: the saved file loads back with the same metadata and the same
 *    logits bit for bit; bad paths and NULL arguments are refused with a message;
 *  - bitnet_opt_*: training is refused (UNSUPPORTED), the filter returns true.
 * Usage: api_model_io MODEL.gguf OUT_DIR */
#include <bitnet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define N_PROMPT 5
#define N_GEN 2
#define N_ROWS (1 + N_GEN)

/* Decodes a 5-token prompt then 2 single tokens; stores the n_vocab logits after each decode
 * (3 rows) in out. `tp` / `tp_batch` are attached first when tp is not NULL; `free_tp_after`
 * frees the handles right after attaching; `detach_mid` detaches after the prompt. */
static int run(struct bitnet_model *m, bitnet_threadpool_t tp, bitnet_threadpool_t tp_batch,
               int free_tp_after, int detach_mid, float *out) {
  const struct bitnet_vocab *v = bitnet_model_get_vocab(m);
  int n_vocab = bitnet_vocab_n_tokens(v);
  struct bitnet_context_params cp = bitnet_context_default_params();
  cp.n_ctx = 64;
  cp.n_threads = 1;
  cp.n_threads_batch = 1;
  struct bitnet_context *ctx = bitnet_init_from_model(m, cp);
  CHECK(ctx != NULL);
  if (!ctx) return 0;
  if (tp) {
    bitnet_attach_threadpool(ctx, tp, tp_batch);
    if (free_tp_after) {
      bitnet_threadpool_free(tp);
      if (tp_batch) bitnet_threadpool_free(tp_batch);
    }
  }
  bitnet_token prompt[N_PROMPT];
  for (int i = 0; i < N_PROMPT; i++) prompt[i] = (bitnet_token)((i * 37 + 11) % n_vocab);
  int ok = bitnet_decode(ctx, bitnet_batch_get_one(prompt, N_PROMPT)) == 0;
  CHECK(ok);
  if (detach_mid) bitnet_detach_threadpool(ctx);
  const float *l = bitnet_get_logits_ith(ctx, -1);
  CHECK(l != NULL);
  if (l) memcpy(out, l, sizeof(float) * (size_t)n_vocab);
  for (int g = 0; ok && g < N_GEN; g++) {
    bitnet_token t = (bitnet_token)((g * 101 + 3) % n_vocab);
    ok = bitnet_decode(ctx, bitnet_batch_get_one(&t, 1)) == 0;
    CHECK(ok);
    l = bitnet_get_logits_ith(ctx, -1);
    CHECK(l != NULL);
    if (l) memcpy(out + (size_t)(g + 1) * (size_t)n_vocab, l, sizeof(float) * (size_t)n_vocab);
  }
  bitnet_free(ctx);
  return ok;
}

static int same_logits(const float *a, const float *b, int n_vocab) {
  return memcmp(a, b, sizeof(float) * (size_t)n_vocab * N_ROWS) == 0;
}

static void threadpools(struct bitnet_model *m, const float *want, int n_vocab) {
  struct bitnet_threadpool_params p = bitnet_threadpool_params_default(2);
  CHECK(p.n_threads == 2 && p.poll == 50 && p.prio == BITNET_SCHED_PRIO_NORMAL && !p.paused);
  struct bitnet_threadpool_params q;
  bitnet_threadpool_params_init(&q, 2);
  CHECK(bitnet_threadpool_params_match(&p, &q));
  q.n_threads = 3;
  CHECK(!bitnet_threadpool_params_match(&p, &q));
  CHECK(!bitnet_threadpool_params_match(&p, NULL));
  bitnet_clear_error();

  /* Bad parameters: NULL with a message. */
  CHECK(bitnet_threadpool_new(NULL) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  q.n_threads = 0;
  CHECK(bitnet_threadpool_new(&q) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  q.n_threads = BITNET_MAX_N_THREADS + 1;
  CHECK(bitnet_threadpool_new(&q) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_threadpool_get_n_threads(NULL) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_attach_threadpool(NULL, NULL, NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_detach_threadpool(NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_threadpool_free(NULL);

  float *got = malloc(sizeof(float) * (size_t)n_vocab * N_ROWS);
  CHECK(got != NULL);
  if (!got) return;

  /* One pool for both, paused at creation (a decode resumes it). */
  p.paused = true;
  bitnet_threadpool_t tp = bitnet_threadpool_new(&p);
  CHECK(tp != NULL);
  CHECK(bitnet_threadpool_get_n_threads(tp) == 2);
  bitnet_threadpool_pause(tp);
  bitnet_threadpool_resume(tp);
  memset(got, 0, sizeof(float) * (size_t)n_vocab * N_ROWS);
  CHECK(run(m, tp, NULL, 0, 0, got) && same_logits(want, got, n_vocab));
  /* The same pool again, detached after the prompt. */
  memset(got, 0, sizeof(float) * (size_t)n_vocab * N_ROWS);
  CHECK(run(m, tp, NULL, 0, 1, got) && same_logits(want, got, n_vocab));

  /* Separate single-token and batch pools, both handles freed while attached. */
  struct bitnet_threadpool_params pb = bitnet_threadpool_params_default(3);
  bitnet_threadpool_t tpb = bitnet_threadpool_new(&pb);
  CHECK(tpb != NULL);
  memset(got, 0, sizeof(float) * (size_t)n_vocab * N_ROWS);
  CHECK(run(m, tp, tpb, 1, 0, got) && same_logits(want, got, n_vocab));
  free(got);
}

static long file_size(FILE *f) {
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  return n;
}

static void from_file_ptr(const char *path, const char *dir, const float *want, int n_vocab) {
  struct bitnet_model_params mp = bitnet_model_default_params();
  float *got = malloc(sizeof(float) * (size_t)n_vocab * N_ROWS);
  CHECK(got != NULL);
  if (!got) return;

  CHECK(bitnet_model_load_from_file_ptr(NULL, mp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);

  FILE *f = fopen(path, "rb");
  CHECK(f != NULL);
  if (!f) return;
  long size = file_size(f);
  struct bitnet_model *m = bitnet_model_load_from_file_ptr(f, mp);
  CHECK(m != NULL);
  if (m) {
    CHECK(bitnet_vocab_n_tokens(bitnet_model_get_vocab(m)) == n_vocab);
    memset(got, 0, sizeof(float) * (size_t)n_vocab * N_ROWS);
    CHECK(run(m, NULL, NULL, 0, 0, got) && same_logits(want, got, n_vocab));
    bitnet_model_free(m);
  }
  /* At the end now: nothing left to read. */
  CHECK(bitnet_model_load_from_file_ptr(f, mp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_FORMAT);

  /* vocab_only through a stream. */
  fseek(f, 0, SEEK_SET);
  mp.vocab_only = true;
  m = bitnet_model_load_from_file_ptr(f, mp);
  CHECK(m != NULL);
  CHECK(bitnet_vocab_n_tokens(bitnet_model_get_vocab(m)) == n_vocab);
  bitnet_model_free(m);
  mp.vocab_only = false;

  /* Embedded after a 4096-byte prefix in a larger file, read from that position. */
  char *buf = malloc((size_t)size);
  CHECK(buf != NULL);
  fseek(f, 0, SEEK_SET);
  CHECK(buf && fread(buf, 1, (size_t)size, f) == (size_t)size);
  fclose(f);
  char bundle[4096];
  snprintf(bundle, sizeof bundle, "%s/bundle.bin", dir);
  FILE *b = fopen(bundle, "w+b");
  CHECK(b != NULL);
  if (b && buf) {
    char prefix[4096];
    memset(prefix, 'x', sizeof prefix);
    fwrite(prefix, 1, sizeof prefix, b);
    fwrite(buf, 1, (size_t)size, b);
    fseek(b, (long)sizeof prefix, SEEK_SET);
    m = bitnet_model_load_from_file_ptr(b, mp);
    CHECK(m != NULL);
    if (m) {
      memset(got, 0, sizeof(float) * (size_t)n_vocab * N_ROWS);
      CHECK(run(m, NULL, NULL, 0, 0, got) && same_logits(want, got, n_vocab));
      bitnet_model_free(m);
    }
    /* From the start of the bundle: the prefix is not GGUF. */
    fseek(b, 0, SEEK_SET);
    CHECK(bitnet_model_load_from_file_ptr(b, mp) == NULL);
    CHECK_FAILED_WITH(BITNET_ERR_FORMAT);
    /* A cut stream: the first half of the model. */
    fclose(b);
    b = fopen(bundle, "w+b");
    fwrite(buf, 1, (size_t)size / 2, b);
    fseek(b, 0, SEEK_SET);
    CHECK(bitnet_model_load_from_file_ptr(b, mp) == NULL);
    CHECK(bitnet_last_status() != BITNET_OK && bitnet_last_error() != NULL);
    bitnet_clear_error();
    /* A stream opened for writing only: fread fails. */
    fclose(b);
    b = fopen(bundle, "wb");
    CHECK(bitnet_model_load_from_file_ptr(b, mp) == NULL);
    CHECK(bitnet_last_status() != BITNET_OK && bitnet_last_error() != NULL);
    bitnet_clear_error();
    fclose(b);
    remove(bundle);
  }
  free(buf);
  free(got);
}

static void save(struct bitnet_model *m, const char *dir, const float *want, int n_vocab) {
  char out[4096];
  snprintf(out, sizeof out, "%s/saved.gguf", dir);
  remove(out);
  bitnet_clear_error();
  bitnet_model_save_to_file(m, out);
  CHECK(bitnet_last_error() == NULL);
  struct bitnet_model *s = bitnet_model_load_from_file(out, bitnet_model_default_params());
  CHECK(s != NULL);
  if (s) {
    CHECK(bitnet_model_meta_count(s) == bitnet_model_meta_count(m));
    CHECK(bitnet_model_n_params(s) == bitnet_model_n_params(m));
    CHECK(bitnet_model_size(s) == bitnet_model_size(m));
    float *got = malloc(sizeof(float) * (size_t)n_vocab * N_ROWS);
    CHECK(got != NULL);
    if (got) {
      memset(got, 0, sizeof(float) * (size_t)n_vocab * N_ROWS);
      CHECK(run(s, NULL, NULL, 0, 0, got) && same_logits(want, got, n_vocab));
      free(got);
    }
    /* Saving the reloaded model gives the same bytes. */
    char again[4096];
    snprintf(again, sizeof again, "%s/saved-again.gguf", dir);
    bitnet_model_save_to_file(s, again);
    CHECK(bitnet_last_error() == NULL);
    FILE *a = fopen(out, "rb"), *b = fopen(again, "rb");
    CHECK(a && b);
    if (a && b) {
      long na = file_size(a), nb = file_size(b);
      CHECK(na == nb && na > 0);
      char *x = malloc((size_t)na), *y = malloc((size_t)nb);
      CHECK(x && y && fread(x, 1, (size_t)na, a) == (size_t)na &&
            fread(y, 1, (size_t)nb, b) == (size_t)nb && memcmp(x, y, (size_t)na) == 0);
      free(x);
      free(y);
    }
    if (a) fclose(a);
    if (b) fclose(b);
    remove(again);
    bitnet_model_free(s);
  }
  remove(out);

  /* Failures: a message, no file. */
  bitnet_model_save_to_file(NULL, out);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_model_save_to_file(m, NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  char bad[4096];
  snprintf(bad, sizeof bad, "%s/no-such-dir/x.gguf", dir);
  bitnet_model_save_to_file(m, bad);
  CHECK_FAILED_WITH(BITNET_ERR_IO);
  FILE *gone = fopen(out, "rb");
  CHECK(gone == NULL);
  if (gone) fclose(gone);
}

static void training(struct bitnet_model *m) {
  CHECK(bitnet_opt_param_filter_all(NULL, NULL));
  struct bitnet_opt_params op;
  memset(&op, 0, sizeof op);
  op.param_filter = bitnet_opt_param_filter_all;
  struct bitnet_context *ctx = bitnet_init_from_model(m, bitnet_context_default_params());
  CHECK(ctx != NULL);
  bitnet_opt_init(ctx, m, op);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  bitnet_opt_epoch(ctx, NULL, NULL, NULL, 0, NULL, NULL);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  bitnet_free(ctx);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL.gguf OUT_DIR\n", argv[0]);
    return 2;
  }
  struct bitnet_model *m = bitnet_model_load_from_file(argv[1], bitnet_model_default_params());
  CHECK(m != NULL);
  if (!m) CHECK_DONE();
  int n_vocab = bitnet_vocab_n_tokens(bitnet_model_get_vocab(m));
  float *want = malloc(sizeof(float) * (size_t)n_vocab * N_ROWS);
  CHECK(want != NULL);
  if (want && run(m, NULL, NULL, 0, 0, want)) {
    int nonconst = 0;
    for (int i = 1; i < n_vocab; i++) nonconst |= want[i] != want[0];
    CHECK(nonconst);
    threadpools(m, want, n_vocab);
    from_file_ptr(argv[1], argv[2], want, n_vocab);
    save(m, argv[2], want, n_vocab);
  }
  training(m);
  free(want);
  bitnet_model_free(m);
  CHECK_DONE();
}
