/*
 * simple: load a model, tokenize a prompt, generate greedily, print the text.
 *
 *   simple -m MODEL [-n N_PREDICT] [PROMPT]
 *
 * The bitnet.h counterpart of llama.cpp's examples/simple.
 */
#include "bitnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what) {
  const char *msg = bitnet_last_error();
  fprintf(stderr, "simple: %s: %s\n", what, msg ? msg : "unknown error");
  return 1;
}

/* Prints one token's text. */
static int print_piece(const struct bitnet_vocab *vocab, bitnet_token token) {
  char buf[256];
  int n = bitnet_token_to_piece(vocab, token, buf, sizeof buf, 0, true);
  if (n < 0) return fail("token_to_piece");
  fwrite(buf, 1, (size_t)n, stdout);
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  const char *model_path = NULL;
  const char *prompt = "Hello my name is";
  int n_predict = 32;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-m") && i + 1 < argc) model_path = argv[++i];
    else if (!strcmp(argv[i], "-n") && i + 1 < argc) n_predict = atoi(argv[++i]);
    else prompt = argv[i];
  }
  if (!model_path) {
    fprintf(stderr, "usage: %s -m MODEL [-n N_PREDICT] [PROMPT]\n", argv[0]);
    return 2;
  }

  bitnet_backend_init();
  struct bitnet_model *model = bitnet_model_load_from_file(model_path, bitnet_model_default_params());
  if (!model) return fail("load model");
  const struct bitnet_vocab *vocab = bitnet_model_get_vocab(model);

  /* First call sizes the token buffer: it returns -(number of tokens). */
  const int n_prompt = -bitnet_tokenize(vocab, prompt, (int32_t)strlen(prompt), NULL, 0, true, true);
  bitnet_token *tokens = malloc(sizeof(bitnet_token) * (size_t)n_prompt);
  if (bitnet_tokenize(vocab, prompt, (int32_t)strlen(prompt), tokens, n_prompt, true, true) < 0)
    return fail("tokenize");

  struct bitnet_context_params cparams = bitnet_context_default_params();
  cparams.n_ctx = (uint32_t)(n_prompt + n_predict);
  cparams.n_batch = (uint32_t)n_prompt;
  cparams.no_perf = false;
  struct bitnet_context *ctx = bitnet_init_from_model(model, cparams);
  if (!ctx) return fail("create context");

  struct bitnet_sampler_chain_params sparams = bitnet_sampler_chain_default_params();
  sparams.no_perf = false;
  struct bitnet_sampler *smpl = bitnet_sampler_chain_init(sparams);
  bitnet_sampler_chain_add(smpl, bitnet_sampler_init_greedy());

  for (int i = 0; i < n_prompt; i++)
    if (print_piece(vocab, tokens[i])) return 1;

  const int64_t t_start = bitnet_time_us();
  struct bitnet_batch batch = bitnet_batch_get_one(tokens, n_prompt);
  bitnet_token new_token;
  int n_decoded = 0;
  for (int n_pos = 0; n_pos + batch.n_tokens < n_prompt + n_predict;) {
    if (bitnet_decode(ctx, batch) != 0) return fail("decode");
    n_pos += batch.n_tokens;
    new_token = bitnet_sampler_sample(smpl, ctx, -1);
    if (bitnet_vocab_is_eog(vocab, new_token)) break;
    if (print_piece(vocab, new_token)) return 1;
    batch = bitnet_batch_get_one(&new_token, 1);
    n_decoded++;
  }
  printf("\n");
  const double seconds = (double)(bitnet_time_us() - t_start) / 1e6;
  fprintf(stderr, "simple: decoded %d tokens in %.2f s (%.2f t/s)\n", n_decoded, seconds,
          seconds > 0 ? n_decoded / seconds : 0.0);
  bitnet_perf_sampler_print(smpl);
  bitnet_perf_context_print(ctx);

  bitnet_sampler_free(smpl);
  bitnet_free(ctx);
  bitnet_model_free(model);
  free(tokens);
  bitnet_backend_free();
  return 0;
}
