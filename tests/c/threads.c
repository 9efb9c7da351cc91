/*
 * Thread safety as the header documents it: one model shared by two contexts, each context
 * used by its own pthread at the same time, gives bit-identical logits to the same work done
 * one after the other. Each thread's errors are its own (bitnet_last_error is per thread).
 *
 *   threads MODEL [STEPS]       (STEPS greedy steps after the prompt, default 8)
 */
#include "bitnet.h"
#include "check.h"

#include <pthread.h>
#include <string.h>

static int STEPS = 8;
#define MAX_VOCAB 65536

struct job {
  struct bitnet_model *model;
  const bitnet_token *prompt;
  int n_prompt;
  int threads;
  int n_vocab;
  float *logits; /* STEPS * n_vocab */
  int ok;
  int own_error_ok;
};

/* Greedy decoding: the logits after the prompt and after each chosen token. */
static void *run(void *arg) {
  struct job *j = arg;
  j->ok = 0;
  struct bitnet_context_params cp = bitnet_context_default_params();
  cp.n_ctx = 64;
  cp.n_batch = 64;
  cp.n_threads = cp.n_threads_batch = j->threads;
  struct bitnet_context *ctx = bitnet_init_from_model(j->model, cp);
  if (!ctx) return NULL;
  bitnet_token tokens[64];
  memcpy(tokens, j->prompt, sizeof(bitnet_token) * (size_t)j->n_prompt);
  if (bitnet_decode(ctx, bitnet_batch_get_one(tokens, j->n_prompt)) != 0) goto out;
  for (int s = 0; s < STEPS; s++) {
    const float *l = bitnet_get_logits_ith(ctx, -1);
    if (!l) goto out;
    memcpy(j->logits + (size_t)s * (size_t)j->n_vocab, l, sizeof(float) * (size_t)j->n_vocab);
    bitnet_token best = 0;
    for (int v = 1; v < j->n_vocab; v++)
      if (l[v] > l[best]) best = v;
    if (bitnet_decode(ctx, bitnet_batch_get_one(&best, 1)) != 0) goto out;
  }
  j->ok = 1;
  /* an error on this thread is seen here, and (checked by main) not on the other thread */
  j->own_error_ok = bitnet_get_logits_ith(ctx, 99) == NULL && bitnet_last_status() == BITNET_ERR_INVALID_ARG;
  bitnet_clear_error();
out:
  bitnet_free(ctx);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s MODEL [STEPS]\n", argv[0]);
    return 2;
  }
  if (argc == 3) STEPS = atoi(argv[2]);
  if (STEPS < 1 || STEPS > 32) return 2;
  struct bitnet_model *model = bitnet_model_load_from_file(argv[1], bitnet_model_default_params());
  CHECK(model != NULL);
  if (!model) CHECK_DONE();
  const int n_vocab = bitnet_vocab_n_tokens(bitnet_model_get_vocab(model));
  CHECK(n_vocab > 0 && n_vocab <= MAX_VOCAB);
  static const bitnet_token a[] = {1, 450, 4996, 17354, 1701, 29916};
  static const bitnet_token b[] = {1, 822, 18755, 265, 21566, 29898, 29876};
  struct job jobs[4] = {
      {model, a, 6, 1, n_vocab, NULL, 0, 0}, /* sequential a */
      {model, b, 7, 2, n_vocab, NULL, 0, 0}, /* sequential b */
      {model, a, 6, 2, n_vocab, NULL, 0, 0}, /* parallel a (other thread counts: no effect) */
      {model, b, 7, 1, n_vocab, NULL, 0, 0}, /* parallel b */
  };
  for (int i = 0; i < 4; i++) jobs[i].logits = calloc((size_t)STEPS * (size_t)n_vocab, sizeof(float));

  run(&jobs[0]);
  run(&jobs[1]);
  /* a failure on the main thread must not show on the workers, nor theirs here */
  CHECK(bitnet_vocab_get_text(bitnet_model_get_vocab(model), -1) == NULL);
  CHECK(bitnet_last_status() == BITNET_ERR_INVALID_TOKEN);
  pthread_t ta, tb;
  CHECK(pthread_create(&ta, NULL, run, &jobs[2]) == 0);
  CHECK(pthread_create(&tb, NULL, run, &jobs[3]) == 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  CHECK(bitnet_last_status() == BITNET_ERR_INVALID_TOKEN); /* still this thread's own */
  bitnet_clear_error();

  for (int i = 0; i < 4; i++) CHECK(jobs[i].ok && jobs[i].own_error_ok);
  const size_t bytes = sizeof(float) * (size_t)STEPS * (size_t)n_vocab;
  CHECK(memcmp(jobs[0].logits, jobs[2].logits, bytes) == 0); /* bit-identical */
  CHECK(memcmp(jobs[1].logits, jobs[3].logits, bytes) == 0);
  CHECK(memcmp(jobs[0].logits, jobs[1].logits, bytes) != 0); /* and the prompts differ */
  for (int i = 0; i < 4; i++) free(jobs[i].logits);
  bitnet_model_free(model);
  CHECK_DONE();
}
