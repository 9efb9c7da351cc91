/* The logits after decoding a prompt, shared by the C tests that compare models. */
#ifndef BITNET_TEST_LOGITS_H
#define BITNET_TEST_LOGITS_H
#include <bitnet.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* The logits of the last token of `prompt` (n_vocab floats, malloc'ed; NULL on failure), decoded
 * on a fresh single-threaded context of `m`. */
static inline float *last_logits(struct bitnet_model *m, const bitnet_token *prompt, int n_prompt) {
  int n_vocab = bitnet_vocab_n_tokens(bitnet_model_get_vocab(m));
  struct bitnet_context_params cp = bitnet_context_default_params();
  cp.n_ctx = 32;
  cp.n_threads = 1;
  cp.n_threads_batch = 1;
  struct bitnet_context *ctx = bitnet_init_from_model(m, cp);
  CHECK(ctx != NULL);
  if (!ctx) return NULL;
  bitnet_token *p = malloc(sizeof(bitnet_token) * (size_t)n_prompt);
  float *out = malloc(sizeof(float) * (size_t)n_vocab);
  if (p && out) {
    memcpy(p, prompt, sizeof(bitnet_token) * (size_t)n_prompt);
    CHECK(bitnet_decode(ctx, bitnet_batch_get_one(p, n_prompt)) == 0);
    const float *l = bitnet_get_logits_ith(ctx, -1);
    CHECK(l != NULL);
    if (l) memcpy(out, l, sizeof(float) * (size_t)n_vocab);
    else {
      free(out);
      out = NULL;
    }
  }
  free(p);
  bitnet_free(ctx);
  return out;
}

#endif
