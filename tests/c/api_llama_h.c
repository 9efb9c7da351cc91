/* The llama.h paths current llama.cpp clients use (issue 17), through the installed package:
 * version and system queries, vocab_only loading, chat templates, the extended batch API with
 * bitnet_process, encode on a decoder-only model, dist without softmax, the current penalties
 * signature, the old kv_cache names, LoRA failing cleanly, log_get.
 * Usage: api_llama_h MODEL.gguf VOCAB.gguf [quick]
 * (VOCAB: a vocabulary-only file, e.g. ggml-vocab-llama-spm; "quick": one seed comparison instead
 * of up to eight, for valgrind). */
#include <bitnet.h>
#include <string.h>

#include "check.h"

static void quiet(enum bitnet_log_level level, const char *text, void *user_data) {
  (void)level;
  (void)text;
  (*(int *)user_data)++;
}

static void system_queries(void) {
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", BITNET_VERSION_MAJOR, BITNET_VERSION_MINOR, BITNET_VERSION_PATCH);
  CHECK(strcmp(bitnet_version(), want) == 0);
  bitnet_backend_init();
  bitnet_numa_init(BITNET_NUMA_STRATEGY_DISTRIBUTE);
  CHECK(bitnet_max_devices() >= 1);
  CHECK(bitnet_max_parallel_sequences() >= 1);
  CHECK(!bitnet_supports_gpu_offload());
  CHECK(!bitnet_supports_rpc());
  char path[64];
  CHECK(bitnet_split_path(path, sizeof path, "m", 0, 2) == (int)strlen("m-00001-of-00002.gguf"));
  CHECK(strcmp(path, "m-00001-of-00002.gguf") == 0);

  int calls = 0;
  bitnet_log_set(quiet, &calls);
  bitnet_log_callback cb = NULL;
  void *ud = NULL;
  bitnet_log_get(&cb, &ud);
  CHECK(cb == quiet && ud == &calls);
  bitnet_log_set(NULL, NULL);
  bitnet_log_get(&cb, &ud);
  CHECK(cb == NULL && ud == NULL);
}

static void vocab_only(const char *path) {
  struct bitnet_model_params mp = bitnet_model_default_params();
  mp.vocab_only = true;
  struct bitnet_model *m = bitnet_model_load_from_file(path, mp);
  CHECK(m != NULL);
  if (!m) return;
  const struct bitnet_vocab *v = bitnet_model_get_vocab(m);
  CHECK(bitnet_vocab_n_tokens(v) > 0);
  CHECK(bitnet_model_n_embd(m) > 0);
  const char *text = "Hello world";
  bitnet_token toks[32];
  int n = bitnet_tokenize(v, text, (int)strlen(text), toks, 32, false, false);
  CHECK(n > 0);
  char out[64];
  int len = bitnet_detokenize(v, toks, n, out, (int)sizeof out, false, false);
  CHECK(len > 0 && len < (int)sizeof out);
  if (len > 0 && len < (int)sizeof out) {
    out[len] = 0;
    CHECK(strstr(out, "Hello world") != NULL);
  }
  struct bitnet_context *ctx = bitnet_init_from_model(m, bitnet_context_default_params());
  CHECK(ctx == NULL);
  CHECK(bitnet_last_error() && strstr(bitnet_last_error(), "vocab_only"));
  bitnet_clear_error();
  bitnet_model_free(m);
}

static void chat(void) {
  struct bitnet_chat_message msgs[2] = {{"system", "Be brief."}, {"user", "Hi"}};
  const char *want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                     "<|im_start|>assistant\n";
  char small[8];
  int n = bitnet_chat_apply_template("chatml", msgs, 2, true, small, (int)sizeof small);
  CHECK(n == (int)strlen(want));
  char *buf = malloc((size_t)n + 1);
  CHECK(bitnet_chat_apply_template("chatml", msgs, 2, true, buf, n + 1) == n);
  CHECK(strcmp(buf, want) == 0);
  free(buf);
  CHECK(bitnet_chat_apply_template("not a template", msgs, 2, true, small, (int)sizeof small) == -1);
  bitnet_clear_error();
  int total = bitnet_chat_builtin_templates(NULL, 0);
  CHECK(total > 10);
  const char **names = malloc(sizeof(char *) * (size_t)total);
  CHECK(bitnet_chat_builtin_templates(names, (size_t)total) == total);
  int found = 0;
  for (int i = 0; i < total; i++) found += strcmp(names[i], "llama3") == 0 || strcmp(names[i], "bitnet") == 0;
  CHECK(found == 2);
  free(names);
}

/* Prompt through bitnet_batch_ext + bitnet_process, then a few sampled tokens, as llama.cpp's
 * current examples/simple does. Returns the sampled tokens' sum (to compare runs). */
static long generate(struct bitnet_model *m, uint32_t seed, float temp) {
  const struct bitnet_vocab *v = bitnet_model_get_vocab(m);
  struct bitnet_context_params cp = bitnet_context_default_params();
  cp.n_ctx = 64;
  struct bitnet_context *ctx = bitnet_init_from_model(m, cp);
  CHECK(ctx != NULL);
  if (!ctx) return -1;
  bitnet_token prompt[16];
  int n = bitnet_tokenize(v, "Once upon a time", 16, prompt, 16, true, false);
  CHECK(n > 1);
  struct bitnet_batch_ext *b = bitnet_batch_ext_init(ctx);
  CHECK(b != NULL);
  for (int i = 0; i < n; i++) {
    int idx = bitnet_batch_ext_add_token(b, 0, prompt[i]);
    CHECK(idx == i);
    bitnet_pos p = i;
    CHECK(bitnet_batch_ext_set_pos(b, idx, &p));
  }
  CHECK(bitnet_batch_ext_set_output_logits(b, n - 1, true));
  CHECK(bitnet_batch_ext_add_seq(b, 0, 0));
  CHECK(bitnet_batch_ext_add_token(b, 99, 1) == -3);
  CHECK(bitnet_process(ctx, BITNET_PROCESS_TYPE_ENCODE, b) == -1);
  bitnet_clear_error();
  CHECK(bitnet_process(ctx, BITNET_PROCESS_TYPE_DECODE, b) == 0);
  CHECK(bitnet_kv_cache_seq_pos_max(ctx, 0) == n - 1);

  /* No softmax: dist computes the probabilities itself. Penalties: current signature. */
  struct bitnet_sampler *chain = bitnet_sampler_chain_init(bitnet_sampler_chain_default_params());
  bitnet_sampler_chain_add(chain, bitnet_sampler_init_penalties(bitnet_vocab_n_tokens(v), 16, 1.1f, 0.0f, 0.0f));
  bitnet_sampler_chain_add(chain, bitnet_sampler_init_top_k(40));
  bitnet_sampler_chain_add(chain, bitnet_sampler_init_temp(temp));
  bitnet_sampler_chain_add(chain, bitnet_sampler_init_dist(seed));
  long sum = 0;
  for (int i = 0; i < 6; i++) {
    bitnet_token t = bitnet_sampler_sample(chain, ctx, -1);
    CHECK(t >= 0 && t < bitnet_vocab_n_tokens(v));
    sum = sum * 31 + t;
    bitnet_batch_ext_clear(b);
    int idx = bitnet_batch_ext_add_token(b, 0, t);
    bitnet_pos p = n + i;
    CHECK(idx == 0 && bitnet_batch_ext_set_pos(b, idx, &p) && bitnet_batch_ext_set_output_logits(b, idx, true));
    CHECK(bitnet_process(ctx, BITNET_PROCESS_TYPE_DECODE, b) == 0);
  }
  struct bitnet_embd e = {NULL, 0, 0};
  CHECK(bitnet_batch_ext_add_embd(b, 0, e) == -2);
  bitnet_clear_error();

  CHECK(bitnet_encode(ctx, bitnet_batch_get_one(prompt, 1)) == -1);
  CHECK(bitnet_last_error() && strstr(bitnet_last_error(), "decoder-only"));
  bitnet_clear_error();
  CHECK(bitnet_set_adapters_lora(ctx, NULL, 0, NULL) == 0);
  CHECK(bitnet_set_adapter_cvec(ctx, NULL, 0, 0, 0, 0) == 0);
  CHECK(bitnet_pooling_type(ctx) == BITNET_POOLING_TYPE_NONE);
  CHECK(bitnet_n_ctx_seq(ctx) == bitnet_n_ctx(ctx));
  bitnet_kv_cache_clear(ctx);
  CHECK(bitnet_kv_cache_seq_pos_max(ctx, 0) == -1);

  bitnet_sampler_free(chain);
  bitnet_batch_ext_free(b);
  bitnet_free(ctx);
  return sum;
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: %s MODEL.gguf VOCAB.gguf [quick]\n", argv[0]);
    return 2;
  }
  system_queries();
  vocab_only(argv[2]);
  chat();

  struct bitnet_model *m = bitnet_model_load_from_file(argv[1], bitnet_model_default_params());
  CHECK(m != NULL);
  if (!m) CHECK_DONE();
  CHECK(bitnet_model_has_decoder(m) && !bitnet_model_has_encoder(m));
  CHECK(!bitnet_model_is_recurrent(m) && !bitnet_model_is_hybrid(m) && !bitnet_model_is_diffusion(m));
  CHECK(bitnet_model_rope_type(m) == BITNET_ROPE_TYPE_NEOX);
  CHECK(bitnet_model_n_embd_out(m) == bitnet_model_n_embd(m));
  CHECK(bitnet_adapter_lora_init(m, "lora.gguf") == NULL);
  CHECK(bitnet_last_error() && strstr(bitnet_last_error(), "not supported"));
  bitnet_clear_error();
  bitnet_adapter_lora_free(NULL);

  long a = generate(m, 42, 1.5f);
  long b = generate(m, 42, 1.5f);
  CHECK(a == b); /* same seed, same tokens */
  int differs = 0;
  const uint32_t seeds = argc == 4 ? 1 : 8;
  for (uint32_t s = 1; s <= seeds && !differs; s++) differs = generate(m, s, 1.5f) != a;
  if (seeds > 1) CHECK(differs); /* dist samples: the seed matters */
  bitnet_model_free(m);
  bitnet_backend_free();
  CHECK_DONE();
}
