/* Embeddings through the installed package (issue 17): context params defaults, set_embeddings,
 * get_embeddings / _ith (negative and invalid indices: NULL and a log line, never a crash) /
 * _seq, pooling NONE / MEAN / CLS / LAST, the refusals (RANK, non-causal, unknown values), and
 * bitnet_process with an embeddings context as llama.cpp's examples/embedding drives it.
 * Usage: api_embeddings MODEL.gguf */
#include <bitnet.h>
#include <math.h>
#include <string.h>

#include "check.h"

static int errors_logged = 0;

static void count_errors(enum bitnet_log_level level, const char *text, void *user_data) {
  (void)text;
  (void)user_data;
  if (level == BITNET_LOG_LEVEL_ERROR) errors_logged++;
}

static const bitnet_token toks[6] = {1, 450, 4996, 17354, 29892, 450};

/* Two sequences in one batch: 0 = tokens 0..3 (positions 0..3), 1 = tokens 4..5 (0..1). No
 * token asks for logits: an embeddings context outputs every token anyway. */
static struct bitnet_batch two_sequences(void) {
  struct bitnet_batch b = bitnet_batch_init(6, 0, 2);
  for (int i = 0; i < 6; i++) {
    b.token[i] = toks[i];
    b.pos[i] = i < 4 ? i : i - 4;
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = i < 4 ? 0 : 1;
    b.logits[i] = 0;
  }
  b.n_tokens = 6;
  return b;
}

static struct bitnet_context *make(struct bitnet_model *m, int pooling, bool embeddings) {
  struct bitnet_context_params cp = bitnet_context_default_params();
  cp.n_ctx = 64;
  cp.n_batch = cp.n_ubatch = 64;
  cp.n_seq_max = 2;
  cp.n_threads = cp.n_threads_batch = 1;
  cp.embeddings = embeddings;
  cp.pooling_type = pooling;
  return bitnet_init_from_model(m, cp);
}

static void defaults_and_refusals(struct bitnet_model *m) {
  struct bitnet_context_params cp = bitnet_context_default_params();
  CHECK(!cp.embeddings);
  CHECK(cp.pooling_type == BITNET_POOLING_TYPE_UNSPECIFIED);
  CHECK(cp.attention_type == BITNET_ATTENTION_TYPE_UNSPECIFIED);
  CHECK(bitnet_model_n_embd_out(m) == bitnet_model_n_embd(m));

  CHECK(make(m, BITNET_POOLING_TYPE_RANK, true) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  CHECK(make(m, 99, true) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  cp.attention_type = BITNET_ATTENTION_TYPE_NON_CAUSAL;
  CHECK(bitnet_init_from_model(m, cp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  cp.attention_type = 7;
  CHECK(bitnet_init_from_model(m, cp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  cp.attention_type = BITNET_ATTENTION_TYPE_CAUSAL;
  struct bitnet_context *ctx = bitnet_init_from_model(m, cp);
  CHECK(ctx != NULL);
  CHECK(bitnet_pooling_type(ctx) == BITNET_POOLING_TYPE_NONE); /* UNSPECIFIED: the model's */
  bitnet_free(ctx);

  /* NULL handles. */
  bitnet_set_embeddings(NULL, true);
  CHECK(bitnet_get_embeddings(NULL) == NULL);
  CHECK(bitnet_get_embeddings_ith(NULL, 0) == NULL);
  CHECK(bitnet_get_embeddings_seq(NULL, 0) == NULL);
  CHECK(bitnet_pooling_type(NULL) == BITNET_POOLING_TYPE_UNSPECIFIED);
  bitnet_clear_error();
}

/* Returns a copy of the per-token rows (6 x n_embd), caller frees. */
static float *per_token(struct bitnet_model *m) {
  const int n_embd = bitnet_model_n_embd(m);
  struct bitnet_context *ctx = make(m, BITNET_POOLING_TYPE_NONE, false);
  CHECK(ctx != NULL);
  if (!ctx) return NULL;
  struct bitnet_batch b = two_sequences();

  /* Embeddings off: logits only, no embeddings. */
  CHECK(bitnet_decode(ctx, b) == 0);
  CHECK(bitnet_get_embeddings(ctx) == NULL);
  int before = errors_logged;
  CHECK(bitnet_get_embeddings_ith(ctx, -1) == NULL);
  CHECK(errors_logged == before + 1);
  CHECK(bitnet_get_logits_ith(ctx, 0) == NULL); /* logits flags were 0 */
  bitnet_clear_error();

  /* On: every token is an output, logits included. */
  bitnet_memory_clear(bitnet_get_memory(ctx), true);
  bitnet_set_embeddings(ctx, true);
  CHECK(bitnet_decode(ctx, b) == 0);
  float *all = bitnet_get_embeddings(ctx);
  CHECK(all != NULL);
  float *copy = malloc(sizeof(float) * 6 * (size_t)n_embd);
  if (all && copy) memcpy(copy, all, sizeof(float) * 6 * (size_t)n_embd);
  for (int i = 0; i < 6; i++) {
    float *row = bitnet_get_embeddings_ith(ctx, i);
    CHECK(row != NULL && all != NULL && row == all + (size_t)i * n_embd);
    CHECK(bitnet_get_logits_ith(ctx, i) != NULL);
  }
  CHECK(bitnet_get_embeddings_ith(ctx, -1) == bitnet_get_embeddings_ith(ctx, 5));
  CHECK(bitnet_get_embeddings_ith(ctx, -6) == bitnet_get_embeddings_ith(ctx, 0));
  before = errors_logged;
  CHECK(bitnet_get_embeddings_ith(ctx, 6) == NULL);
  CHECK(bitnet_get_embeddings_ith(ctx, -7) == NULL);
  CHECK(bitnet_get_embeddings_ith(ctx, INT32_MIN) == NULL);
  CHECK(bitnet_get_embeddings_ith(ctx, INT32_MAX) == NULL);
  CHECK(errors_logged == before + 4);
  CHECK(bitnet_get_embeddings_seq(ctx, 0) == NULL); /* pooling NONE */
  bitnet_clear_error();
  /* Un-normalized: the final norm's output, not a unit vector. */
  if (all) {
    double sq = 0;
    for (int d = 0; d < n_embd; d++) sq += (double)all[d] * all[d];
    CHECK(fabs(sqrt(sq) - 1.0) > 0.1);
  }
  bitnet_batch_free(b);
  bitnet_free(ctx);
  return copy;
}

static void pooled(struct bitnet_model *m, const float *rows) {
  const size_t n_embd = (size_t)bitnet_model_n_embd(m);
  const int kinds[3] = {BITNET_POOLING_TYPE_MEAN, BITNET_POOLING_TYPE_CLS, BITNET_POOLING_TYPE_LAST};
  for (int k = 0; k < 3; k++) {
    struct bitnet_context *ctx = make(m, kinds[k], true);
    CHECK(ctx != NULL);
    if (!ctx) continue;
    CHECK((int)bitnet_pooling_type(ctx) == kinds[k]);
    struct bitnet_batch b = two_sequences();
    CHECK(bitnet_decode(ctx, b) == 0);
    CHECK(bitnet_get_embeddings(ctx) == NULL);
    CHECK(bitnet_get_embeddings_ith(ctx, 0) == NULL);
    CHECK(bitnet_get_embeddings_seq(ctx, -1) == NULL);
    CHECK(bitnet_get_embeddings_seq(ctx, 2) == NULL);
    CHECK(bitnet_get_embeddings_seq(ctx, INT32_MAX) == NULL);
    bitnet_clear_error();
    const float *s0 = bitnet_get_embeddings_seq(ctx, 0);
    const float *s1 = bitnet_get_embeddings_seq(ctx, 1);
    CHECK(s0 != NULL && s1 != NULL);
    if (s0 && s1 && rows) {
      if (kinds[k] == BITNET_POOLING_TYPE_CLS) {
        CHECK(memcmp(s0, rows, n_embd * sizeof(float)) == 0);
        CHECK(memcmp(s1, rows + 4 * n_embd, n_embd * sizeof(float)) == 0);
      } else if (kinds[k] == BITNET_POOLING_TYPE_LAST) {
        CHECK(memcmp(s0, rows + 3 * n_embd, n_embd * sizeof(float)) == 0);
        CHECK(memcmp(s1, rows + 5 * n_embd, n_embd * sizeof(float)) == 0);
      } else {
        int bad = 0;
        for (size_t d = 0; d < n_embd; d++) {
          double m0 = 0, m1 = 0;
          for (int i = 0; i < 4; i++) m0 += rows[i * n_embd + d] / 4.0;
          for (int i = 4; i < 6; i++) m1 += rows[i * n_embd + d] / 2.0;
          if (fabs(s0[d] - m0) > 1e-5 * fmax(1.0, fabs(m0))) bad++;
          if (fabs(s1[d] - m1) > 1e-5 * fmax(1.0, fabs(m1))) bad++;
        }
        CHECK(bad == 0);
      }
    }
    /* A second decode replaces the pooled vectors: sequence 1 is gone. */
    bitnet_memory_clear(bitnet_get_memory(ctx), true);
    bitnet_token one = toks[0];
    CHECK(bitnet_decode(ctx, bitnet_batch_get_one(&one, 1)) == 0);
    CHECK(bitnet_get_embeddings_seq(ctx, 0) != NULL);
    CHECK(bitnet_get_embeddings_seq(ctx, 1) == NULL);
    bitnet_clear_error();
    bitnet_batch_free(b);
    bitnet_free(ctx);
  }
}

/* As llama.cpp's examples/embedding: bitnet_batch_ext + bitnet_process, output flags left
 * unset; then _seq (pooled) or _ith (NONE). Returns a copy of the sequence's LAST / last-token
 * embedding. */
static float *through_process(struct bitnet_model *m, int pooling) {
  const size_t n_embd = (size_t)bitnet_model_n_embd(m);
  struct bitnet_context *ctx = make(m, pooling, true);
  CHECK(ctx != NULL);
  if (!ctx) return NULL;
  struct bitnet_batch_ext *b = bitnet_batch_ext_init(ctx);
  CHECK(b != NULL);
  for (int i = 0; i < 4; i++) {
    int idx = bitnet_batch_ext_add_token(b, 0, toks[i]);
    bitnet_pos p = i;
    CHECK(idx == i && bitnet_batch_ext_set_pos(b, idx, &p));
  }
  CHECK(bitnet_process(ctx, BITNET_PROCESS_TYPE_DECODE, b) == 0);
  const float *e = pooling == BITNET_POOLING_TYPE_NONE ? bitnet_get_embeddings_ith(ctx, -1)
                                                      : bitnet_get_embeddings_seq(ctx, 0);
  CHECK(e != NULL);
  float *copy = malloc(n_embd * sizeof(float));
  if (e && copy) memcpy(copy, e, n_embd * sizeof(float));
  bitnet_batch_ext_free(b);
  bitnet_free(ctx);
  return copy;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
    return 2;
  }
  bitnet_log_set(count_errors, NULL);
  struct bitnet_model *m = bitnet_model_load_from_file(argv[1], bitnet_model_default_params());
  CHECK(m != NULL);
  if (!m) CHECK_DONE();
  defaults_and_refusals(m);
  float *rows = per_token(m);
  pooled(m, rows);
  float *last = through_process(m, BITNET_POOLING_TYPE_LAST);
  float *none = through_process(m, BITNET_POOLING_TYPE_NONE);
  CHECK(last && none && memcmp(last, none, sizeof(float) * (size_t)bitnet_model_n_embd(m)) == 0);
  free(last);
  free(none);
  free(rows);
  bitnet_model_free(m);
  bitnet_log_set(NULL, NULL);
  CHECK_DONE();
}
