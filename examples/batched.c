/*
 * batched: generate several continuations of one prompt in parallel, one sequence each, all
 * in one batch per step (the bitnet.h counterpart of llama.cpp's examples/batched).
 *
 *   batched -m MODEL [-np N_PARALLEL] [-n N_PREDICT] [PROMPT]
 *
 * The prompt is decoded once in sequence 0 and shared with the other sequences through
 * bitnet_memory_seq_cp; each sequence has its own sampler chain (top-k, temperature, softmax,
 * dist with its own seed), so the continuations differ.
 */
#include "bitnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what) {
  const char *msg = bitnet_last_error();
  fprintf(stderr, "batched: %s: %s\n", what, msg ? msg : "unknown error");
  return 1;
}

/* Appends token's text to text[] (grown as needed). */
static int append_piece(const struct bitnet_vocab *vocab, bitnet_token token, char **text, size_t *len) {
  char buf[256];
  int n = bitnet_token_to_piece(vocab, token, buf, sizeof buf, 0, false);
  if (n < 0) return fail("token_to_piece");
  char *grown = realloc(*text, *len + (size_t)n + 1);
  if (!grown) return 1;
  memcpy(grown + *len, buf, (size_t)n);
  *len += (size_t)n;
  grown[*len] = 0;
  *text = grown;
  return 0;
}

int main(int argc, char **argv) {
  const char *model_path = NULL;
  const char *prompt = "Hello my name is";
  int n_parallel = 4, n_predict = 16;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-m") && i + 1 < argc) model_path = argv[++i];
    else if (!strcmp(argv[i], "-np") && i + 1 < argc) n_parallel = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-n") && i + 1 < argc) n_predict = atoi(argv[++i]);
    else prompt = argv[i];
  }
  if (!model_path || n_parallel < 1 || n_predict < 1) {
    fprintf(stderr, "usage: %s -m MODEL [-np N_PARALLEL] [-n N_PREDICT] [PROMPT]\n", argv[0]);
    return 2;
  }

  struct bitnet_model *model = bitnet_model_load_from_file(model_path, bitnet_model_default_params());
  if (!model) return fail("load model");
  const struct bitnet_vocab *vocab = bitnet_model_get_vocab(model);

  const int n_prompt = -bitnet_tokenize(vocab, prompt, (int32_t)strlen(prompt), NULL, 0, true, false);
  bitnet_token *tokens = malloc(sizeof(bitnet_token) * (size_t)n_prompt);
  if (bitnet_tokenize(vocab, prompt, (int32_t)strlen(prompt), tokens, n_prompt, true, false) != n_prompt)
    return fail("tokenize");

  struct bitnet_context_params cparams = bitnet_context_default_params();
  cparams.n_ctx = (uint32_t)(n_prompt + n_predict * n_parallel);
  cparams.n_batch = (uint32_t)(n_prompt > n_parallel ? n_prompt : n_parallel);
  cparams.n_seq_max = (uint32_t)n_parallel;
  struct bitnet_context *ctx = bitnet_init_from_model(model, cparams);
  if (!ctx) return fail("create context");
  bitnet_memory_t mem = bitnet_get_memory(ctx);

  /* The prompt, in sequence 0, logits for its last token only. */
  struct bitnet_batch batch = bitnet_batch_init((int32_t)bitnet_n_batch(ctx), 0, n_parallel);
  if (!batch.token) return fail("batch_init");
  for (int i = 0; i < n_prompt; i++) {
    batch.token[i] = tokens[i];
    batch.pos[i] = i;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = 0;
    batch.logits[i] = i == n_prompt - 1;
  }
  batch.n_tokens = n_prompt;
  if (bitnet_decode(ctx, batch) != 0) return fail("decode prompt");
  for (int s = 1; s < n_parallel; s++) bitnet_memory_seq_cp(mem, 0, s, -1, -1);

  struct bitnet_sampler **chains = calloc((size_t)n_parallel, sizeof *chains);
  char **texts = calloc((size_t)n_parallel, sizeof *texts);
  size_t *lens = calloc((size_t)n_parallel, sizeof *lens);
  int *i_batch = malloc(sizeof(int) * (size_t)n_parallel); /* batch index of each live sequence's logits, -1 = done */
  for (int s = 0; s < n_parallel; s++) {
    chains[s] = bitnet_sampler_chain_init(bitnet_sampler_chain_default_params());
    bitnet_sampler_chain_add(chains[s], bitnet_sampler_init_top_k(40));
    bitnet_sampler_chain_add(chains[s], bitnet_sampler_init_temp(0.8f));
    bitnet_sampler_chain_add(chains[s], bitnet_sampler_init_softmax());
    bitnet_sampler_chain_add(chains[s], bitnet_sampler_init_dist(1234u + (uint32_t)s));
    i_batch[s] = n_prompt - 1;
  }

  int n_pos = n_prompt, n_decoded = 0;
  for (int step = 0; step < n_predict; step++) {
    batch.n_tokens = 0;
    for (int s = 0; s < n_parallel; s++) {
      if (i_batch[s] < 0) continue;
      bitnet_token t = bitnet_sampler_sample(chains[s], ctx, i_batch[s]);
      if (t == BITNET_TOKEN_NULL) return fail("sample");
      if (bitnet_vocab_is_eog(vocab, t) || step == n_predict - 1) {
        i_batch[s] = -1;
        continue;
      }
      if (append_piece(vocab, t, &texts[s], &lens[s])) return 1;
      const int j = batch.n_tokens++;
      batch.token[j] = t;
      batch.pos[j] = n_pos;
      batch.n_seq_id[j] = 1;
      batch.seq_id[j][0] = s;
      batch.logits[j] = 1;
      i_batch[s] = j;
      n_decoded++;
    }
    if (batch.n_tokens == 0) break;
    n_pos++;
    if (bitnet_decode(ctx, batch) != 0) return fail("decode");
  }

  for (int s = 0; s < n_parallel; s++) {
    printf("sequence %d: %s%s\n", s, prompt, texts[s] ? texts[s] : "");
    free(texts[s]);
    bitnet_sampler_free(chains[s]);
  }
  fprintf(stderr, "batched: %d tokens in %d sequences; KV cache holds positions %d..%d of sequence 0\n",
          n_decoded, n_parallel, bitnet_memory_seq_pos_min(mem, 0), bitnet_memory_seq_pos_max(mem, 0));

  free(chains);
  free(texts);
  free(lens);
  free(i_batch);
  bitnet_batch_free(batch);
  free(tokens);
  bitnet_free(ctx);
  bitnet_model_free(model);
  return 0;
}
