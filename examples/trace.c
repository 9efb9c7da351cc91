/*
 * bitnet-trace: greedy generation trace for diffing against the reference (spec/TRACE.md).
 *
 *   bitnet-trace -m MODEL -f PROMPT_FILE -n STEPS [-k TOPK] [-t THREADS] [-e]
 *
 * Prints PROMPT, then per step TOKEN / TOPK / TIME, exactly as the golden traces of
 * golden/README.md: tokenization with add_special = true, parse_special = false; n_ctx 512,
 * n_batch = n_ubatch = 512; step 0 evaluates the whole prompt in one decode and takes the last
 * position's logits, step n >= 1 evaluates the token of step n-1 alone. Logits "%.6f", time
 * "%.3f" ms (decode + reading logits + top-k selection). Never stops early unless -e is given
 * (then it stops after recording an end-of-generation token).
 */
#include "bitnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(const char *argv0) {
  fprintf(stderr, "usage: %s -m MODEL -f PROMPT_FILE -n STEPS [-k TOPK] [-t THREADS] [-e]\n", argv0);
}

static int fail(const char *what) {
  const char *msg = bitnet_last_error();
  fprintf(stderr, "bitnet-trace: %s: %s\n", what, msg ? msg : "unknown error");
  return 1;
}

/* Reads a whole file; *len gets its size. NULL on failure. */
static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      char *bigger = realloc(buf, cap *= 2);
      if (!bigger) { free(buf); buf = NULL; }
      else buf = bigger;
    }
  }
  fclose(f);
  *len = n;
  return buf;
}

/* The k largest logits, descending, ties to the lower id (ids[], vals[] have room for k). */
static int top_k(const float *logits, int n_vocab, int k, int *ids, float *vals) {
  int n = 0;
  for (int id = 0; id < n_vocab; id++) {
    float v = logits[id];
    if (n == k && !(v > vals[k - 1])) continue; /* equal to the k-th: the lower id stays */
    int j = n < k ? n++ : k - 1;
    while (j > 0 && v > vals[j - 1]) {
      ids[j] = ids[j - 1];
      vals[j] = vals[j - 1];
      j--;
    }
    ids[j] = id;
    vals[j] = v;
  }
  return n;
}

int main(int argc, char **argv) {
  const char *model_path = NULL, *prompt_path = NULL;
  int n_steps = -1, k = 8, threads = 1, stop_at_eog = 0, opt;
  while ((opt = getopt(argc, argv, "m:f:n:k:t:e")) != -1) {
    switch (opt) {
      case 'm': model_path = optarg; break;
      case 'f': prompt_path = optarg; break;
      case 'n': n_steps = atoi(optarg); break;
      case 'k': k = atoi(optarg); break;
      case 't': threads = atoi(optarg); break;
      case 'e': stop_at_eog = 1; break;
      default: usage(argv[0]); return 2;
    }
  }
  if (!model_path || !prompt_path || n_steps < 0 || k < 1) {
    usage(argv[0]);
    return 2;
  }

  size_t text_len = 0;
  char *text = read_file(prompt_path, &text_len);
  if (!text) {
    perror(prompt_path);
    return 1;
  }

  bitnet_backend_init();
  struct bitnet_model_params mparams = bitnet_model_default_params();
  struct bitnet_model *model = bitnet_model_load_from_file(model_path, mparams);
  if (!model) return fail("cannot load the model");
  const struct bitnet_vocab *vocab = bitnet_model_get_vocab(model);
  const int n_vocab = bitnet_vocab_n_tokens(vocab);

  struct bitnet_context_params cparams = bitnet_context_default_params();
  cparams.n_ctx = 512;
  cparams.n_batch = 512;
  cparams.n_ubatch = 512;
  cparams.n_threads = threads;
  cparams.n_threads_batch = threads;
  struct bitnet_context *ctx = bitnet_init_from_model(model, cparams);
  if (!ctx) return fail("cannot create the context");

  /* Tokenize: ask for the size first when the guess is too small. */
  int n_prompt = bitnet_tokenize(vocab, text, (int32_t)text_len, NULL, 0, true, false);
  if (n_prompt == INT32_MIN) return fail("tokenize");
  n_prompt = -n_prompt;
  bitnet_token *prompt = malloc(sizeof(bitnet_token) * (size_t)(n_prompt > 0 ? n_prompt : 1));
  if (bitnet_tokenize(vocab, text, (int32_t)text_len, prompt, n_prompt, true, false) != n_prompt)
    return fail("tokenize");
  if (n_prompt == 0) {
    fprintf(stderr, "bitnet-trace: the prompt has no tokens\n");
    return 1;
  }

  printf("PROMPT ids=");
  for (int i = 0; i < n_prompt; i++) printf(i ? ",%d" : "%d", prompt[i]);
  printf("\n");

  int *ids = malloc(sizeof(int) * (size_t)k);
  float *vals = malloc(sizeof(float) * (size_t)k);
  bitnet_token next = 0;
  for (int step = 0; step < n_steps; step++) {
    int64_t t0 = bitnet_time_us();
    struct bitnet_batch batch = step == 0 ? bitnet_batch_get_one(prompt, n_prompt)
                                          : bitnet_batch_get_one(&next, 1);
    int rc = bitnet_decode(ctx, batch);
    if (rc != 0) {
      fprintf(stderr, "bitnet-trace: decode at step %d returned %d\n", step, rc);
      return fail("decode");
    }
    const float *logits = bitnet_get_logits_ith(ctx, -1);
    if (!logits) return fail("logits");
    int n = top_k(logits, n_vocab, k, ids, vals);
    int64_t t1 = bitnet_time_us();
    next = ids[0];

    printf("TOKEN step=%d id=%d\n", step, next);
    printf("TOPK step=%d entries=", step);
    for (int i = 0; i < n; i++) printf(i ? ",%d:%.6f" : "%d:%.6f", ids[i], vals[i]);
    printf("\nTIME step=%d ms=%.3f\n", step, (double)(t1 - t0) / 1000.0);
    if (stop_at_eog && bitnet_vocab_is_eog(vocab, next)) break;
  }

  free(ids);
  free(vals);
  free(prompt);
  free(text);
  bitnet_free(ctx);
  bitnet_model_free(model);
  bitnet_backend_free();
  return 0;
}
