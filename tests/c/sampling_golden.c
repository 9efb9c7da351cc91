/*
 * Reproduces one golden sampler-chain trace (golden/sampling/chains.md) through the C API:
 *
 *   sampling_golden MODEL PROMPT_FILE LETTER GOLDEN_TRACE
 *
 * Builds chain LETTER (a..h) exactly as the reference tracer did, runs 48 steps (step 0 samples
 * from the prompt's last logits, step n from the decode of step n-1's token alone; one chain,
 * never reset; prompt tokens not accepted) and compares PROMPT and every TOKEN line with the
 * golden file. Exit 0 when all match, 1 naming the first divergent step.
 */
#include "bitnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_STEPS 48

static int fail(const char *what) {
  const char *msg = bitnet_last_error();
  fprintf(stderr, "sampling_golden: %s: %s\n", what, msg ? msg : "unknown error");
  return 1;
}

static void add(struct bitnet_sampler *chain, struct bitnet_sampler *s) { bitnet_sampler_chain_add(chain, s); }

static struct bitnet_sampler *build_chain(char letter) {
  struct bitnet_sampler *c = bitnet_sampler_chain_init(bitnet_sampler_chain_default_params());
  switch (letter) {
    case 'a': add(c, bitnet_sampler_init_softmax()); add(c, bitnet_sampler_init_dist(42)); break;
    case 'b':
      add(c, bitnet_sampler_init_temp(0.8f)); add(c, bitnet_sampler_init_softmax()); add(c, bitnet_sampler_init_dist(42));
      break;
    case 'c':
      add(c, bitnet_sampler_init_top_k(40)); add(c, bitnet_sampler_init_temp(0.8f));
      add(c, bitnet_sampler_init_softmax()); add(c, bitnet_sampler_init_dist(1234));
      break;
    case 'd':
      add(c, bitnet_sampler_init_top_p(0.9f, 1)); add(c, bitnet_sampler_init_temp(1.0f));
      add(c, bitnet_sampler_init_softmax()); add(c, bitnet_sampler_init_dist(7));
      break;
    case 'e':
      add(c, bitnet_sampler_init_min_p(0.1f, 1)); add(c, bitnet_sampler_init_temp(1.5f));
      add(c, bitnet_sampler_init_softmax()); add(c, bitnet_sampler_init_dist(99));
      break;
    case 'f':
      add(c, bitnet_sampler_init_typical(0.9f, 1)); add(c, bitnet_sampler_init_softmax()); add(c, bitnet_sampler_init_dist(5));
      break;
    case 'g':
      add(c, bitnet_sampler_init_penalties(0, 64, 1.1f, 0.0f, 0.0f)); add(c, bitnet_sampler_init_top_k(40));
      add(c, bitnet_sampler_init_typical(1.0f, 0)); add(c, bitnet_sampler_init_top_p(0.95f, 0));
      add(c, bitnet_sampler_init_min_p(0.05f, 0)); add(c, bitnet_sampler_init_temp_ext(0.8f, 0.0f, 1.0f));
      add(c, bitnet_sampler_init_softmax()); add(c, bitnet_sampler_init_dist(42));
      break;
    case 'h': add(c, bitnet_sampler_init_penalties(0, 64, 1.3f, 0.2f, 0.1f)); add(c, bitnet_sampler_init_greedy()); break;
    default: bitnet_sampler_free(c); return NULL;
  }
  return c;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  *len = fread(buf, 1, (size_t)n, f);
  buf[*len] = 0;
  fclose(f);
  return buf;
}

int main(int argc, char **argv) {
  if (argc != 5 || strlen(argv[3]) != 1) {
    fprintf(stderr, "usage: %s MODEL PROMPT_FILE LETTER GOLDEN_TRACE\n", argv[0]);
    return 2;
  }
  size_t text_len, golden_len;
  char *text = read_file(argv[2], &text_len);
  char *golden = read_file(argv[4], &golden_len);
  if (!text || !golden) {
    fprintf(stderr, "sampling_golden: cannot read %s or %s\n", argv[2], argv[4]);
    return 1;
  }
  struct bitnet_model *model = bitnet_model_load_from_file(argv[1], bitnet_model_default_params());
  if (!model) return fail("load model");
  const struct bitnet_vocab *vocab = bitnet_model_get_vocab(model);
  struct bitnet_context_params cp = bitnet_context_default_params();
  cp.n_ctx = cp.n_batch = cp.n_ubatch = 512;
  cp.n_threads = cp.n_threads_batch = 1;
  struct bitnet_context *ctx = bitnet_init_from_model(model, cp);
  if (!ctx) return fail("context");
  struct bitnet_sampler *chain = build_chain(argv[3][0]);
  if (!chain) {
    fprintf(stderr, "sampling_golden: unknown chain %s\n", argv[3]);
    return 2;
  }

  bitnet_token prompt[1024];
  const int n_prompt = bitnet_tokenize(vocab, text, (int32_t)text_len, prompt, 1024, true, false);
  if (n_prompt <= 0) return fail("tokenize");

  /* Our trace, in the golden format (PROMPT + TOKEN lines). */
  size_t cap = 16384, len = 0;
  char *ours = malloc(cap);
  len += (size_t)snprintf(ours + len, cap - len, "PROMPT ids=");
  for (int i = 0; i < n_prompt; i++) len += (size_t)snprintf(ours + len, cap - len, i ? ",%d" : "%d", prompt[i]);
  len += (size_t)snprintf(ours + len, cap - len, "\n");

  bitnet_token next = 0;
  for (int step = 0; step < N_STEPS; step++) {
    struct bitnet_batch b = step == 0 ? bitnet_batch_get_one(prompt, n_prompt) : bitnet_batch_get_one(&next, 1);
    if (bitnet_decode(ctx, b) != 0) return fail("decode");
    next = bitnet_sampler_sample(chain, ctx, -1);
    if (next == BITNET_TOKEN_NULL) return fail("sample");
    len += (size_t)snprintf(ours + len, cap - len, "TOKEN step=%d id=%d\n", step, next);
  }

  int rc = 0;
  if (strcmp(ours, golden) != 0) {
    /* Name the first differing line. */
    const char *a = golden, *b = ours;
    for (int line = 0;; line++) {
      const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
      size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
      if (la != lb || strncmp(a, b, la) != 0) {
        fprintf(stderr, "chain %s: first difference at line %d (%s)\n  golden: %.*s\n  ours:   %.*s\n", argv[3],
                line + 1, line == 0 ? "PROMPT" : "step", (int)la, a, (int)lb, b);
        break;
      }
      if (!ea || !eb) break;
      a = ea + 1;
      b = eb + 1;
    }
    rc = 1;
  } else {
    printf("chain %s: %d steps match\n", argv[3], N_STEPS);
  }
  struct bitnet_perf_sampler_data perf = bitnet_perf_sampler(chain);
  if (perf.n_sample != N_STEPS) {
    fprintf(stderr, "perf_sampler n_sample %d, expected %d\n", perf.n_sample, N_STEPS);
    rc = 1;
  }
  bitnet_sampler_free(chain);
  bitnet_free(ctx);
  bitnet_model_free(model);
  free(ours);
  free(text);
  free(golden);
  return rc;
}
