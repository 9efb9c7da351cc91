/*
 * The happy path of every entry-point group, on tiny-spm-f32 and its golden short_en trace:
 *
 *   api_model MODEL GOLDEN_DIR        (GOLDEN_DIR = golden/tiny-spm-f32)
 */
#include "bitnet.h"
#include "check.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

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

/* Parses "PROMPT ids=a,b,c" and the step-0 TOKEN id out of a golden trace. */
static int golden_prompt(const char *trace, bitnet_token *ids, int cap, bitnet_token *step0) {
  const char *p = strstr(trace, "PROMPT ids=");
  int n = 0;
  if (!p) return -1;
  p += strlen("PROMPT ids=");
  while (n < cap) {
    ids[n++] = (bitnet_token)strtol(p, (char **)&p, 10);
    if (*p != ',') break;
    p++;
  }
  const char *t = strstr(trace, "TOKEN step=0 id=");
  *step0 = t ? (bitnet_token)atoi(t + strlen("TOKEN step=0 id=")) : -1;
  return n;
}

static int argmax(const float *x, int n) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

static int progress_calls = 0;
static bool on_progress(float progress, void *user_data) {
  (void)user_data;
  CHECK(progress >= 0.0f && progress <= 1.0f);
  progress_calls++;
  return true;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL GOLDEN_DIR\n", argv[0]);
    return 2;
  }
  char path[4096];
  size_t text_len, trace_len;
  snprintf(path, sizeof path, "%s/short_en.txt", argv[2]);
  char *text = read_file(path, &text_len);
  snprintf(path, sizeof path, "%s/short_en.trace", argv[2]);
  char *trace = read_file(path, &trace_len);
  CHECK(text && trace);
  if (!text || !trace) CHECK_DONE();
  bitnet_token golden[64], step0 = -1;
  const int n_golden = golden_prompt(trace, golden, 64, &step0);
  CHECK(n_golden == 13);

  /* ---- model */
  struct bitnet_model_params mp = bitnet_model_default_params();
  CHECK(mp.load_mode == BITNET_LOAD_MODE_AUTO && !mp.vocab_only && mp.n_gpu_layers == -1);
  mp.progress_callback = on_progress;
  struct bitnet_model *model = bitnet_model_load_from_file(argv[1], mp);
  CHECK(model != NULL);
  if (!model) CHECK_DONE();
  CHECK(progress_calls >= 2);
  CHECK(bitnet_model_n_embd(model) == 256);
  CHECK(bitnet_model_n_layer(model) == 2);
  CHECK(bitnet_model_n_head(model) == 4);
  CHECK(bitnet_model_n_head_kv(model) == 2);
  CHECK(bitnet_model_n_ctx_train(model) == 512);
  CHECK(bitnet_model_size(model) > 0);
  CHECK(bitnet_model_n_params(model) > 256u * 32000u);
  CHECK(!bitnet_model_has_encoder(model));
  CHECK(bitnet_model_decoder_start_token(model) == BITNET_TOKEN_NULL);
  CHECK(bitnet_model_chat_template(model, NULL) == NULL);

  char buf[256];
  int n = bitnet_model_desc(model, buf, sizeof buf);
  CHECK(n == (int)strlen(buf) && strcmp(buf, "bitnet-b1.58 ?B F16") == 0);
  char small[5];
  CHECK(bitnet_model_desc(model, small, sizeof small) == n && strcmp(small, "bitn") == 0);
  CHECK(bitnet_model_desc(model, NULL, 0) == n);

  const int n_meta = bitnet_model_meta_count(model);
  CHECK(n_meta == 20); /* 23 keys, 3 of them arrays */
  for (int i = 0; i < n_meta; i++) {
    char key[128], val[128], val2[128];
    CHECK(bitnet_model_meta_key_by_index(model, i, key, sizeof key) > 0);
    CHECK(bitnet_model_meta_val_str_by_index(model, i, val, sizeof val) >= 0);
    CHECK(bitnet_model_meta_val_str(model, key, val2, sizeof val2) >= 0 && strcmp(val, val2) == 0);
  }
  CHECK(bitnet_model_meta_val_str(model, "general.name", buf, sizeof buf) == 8 && strcmp(buf, "tiny-spm") == 0);
  CHECK(bitnet_model_meta_val_str(model, "bitnet-b1.58.attention.layer_norm_rms_epsilon", buf, sizeof buf) > 0 &&
        strcmp(buf, "0.000010") == 0);
  CHECK(bitnet_model_meta_val_str(model, "general.architecture", buf, sizeof buf) == 12);
  buf[0] = 'x';
  CHECK(bitnet_model_meta_val_str(model, "no.such.key", buf, sizeof buf) == -1 && buf[0] == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_model_meta_val_str(model, "tokenizer.ggml.tokens", buf, sizeof buf) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);

  /* ---- vocab */
  const struct bitnet_vocab *vocab = bitnet_model_get_vocab(model);
  CHECK(vocab != NULL);
  CHECK(bitnet_vocab_n_tokens(vocab) == 32000);
  CHECK(bitnet_vocab_type(vocab) == BITNET_VOCAB_TYPE_SPM);
  CHECK(bitnet_vocab_bos(vocab) == 1 && bitnet_vocab_eos(vocab) == 2);
  CHECK(bitnet_vocab_get_add_bos(vocab) && !bitnet_vocab_get_add_eos(vocab));
  CHECK(bitnet_vocab_nl(vocab) == 13);
  CHECK(bitnet_vocab_is_eog(vocab, 2) && !bitnet_vocab_is_eog(vocab, 450));
  CHECK(bitnet_vocab_is_control(vocab, 1) && !bitnet_vocab_is_control(vocab, 450));
  CHECK(strcmp(bitnet_vocab_get_text(vocab, 1), "<s>") == 0);
  CHECK(strcmp(bitnet_vocab_get_text(vocab, 450), "\xe2\x96\x81The") == 0);
  CHECK(bitnet_vocab_get_attr(vocab, 1) & BITNET_TOKEN_ATTR_CONTROL);
  CHECK(bitnet_vocab_get_attr(vocab, 450) & BITNET_TOKEN_ATTR_NORMAL);
  CHECK(bitnet_vocab_get_attr(vocab, 13) & BITNET_TOKEN_ATTR_BYTE);
  CHECK(isfinite(bitnet_vocab_get_score(vocab, 450)));

  bitnet_token tokens[64];
  CHECK(bitnet_tokenize(vocab, text, (int32_t)text_len, tokens, 4, true, false) == -n_golden);
  CHECK_FAILED_WITH(BITNET_ERR_BUFFER_TOO_SMALL);
  const int n_tok = bitnet_tokenize(vocab, text, (int32_t)text_len, tokens, 64, true, false);
  CHECK(n_tok == n_golden && memcmp(tokens, golden, sizeof(bitnet_token) * (size_t)n_golden) == 0);
  CHECK(bitnet_tokenize(vocab, text, (int32_t)text_len, tokens + 20, 64 - 20, false, false) == n_golden - 1);
  CHECK(bitnet_tokenize(vocab, "", 0, tokens + 20, 44, false, false) == 0);

  n = bitnet_token_to_piece(vocab, 450, buf, sizeof buf, 0, false);
  CHECK(n == 4 && memcmp(buf, " The", 4) == 0);
  CHECK(bitnet_token_to_piece(vocab, 450, buf, sizeof buf, 1, false) == 3);
  CHECK(bitnet_token_to_piece(vocab, 450, buf, 2, 0, false) == -4);
  CHECK_FAILED_WITH(BITNET_ERR_BUFFER_TOO_SMALL);
  CHECK(bitnet_token_to_piece(vocab, 1, buf, sizeof buf, 0, false) == 0);
  CHECK(bitnet_token_to_piece(vocab, 1, buf, sizeof buf, 0, true) == 3);

  /* Without BOS the SPM space prefix is dropped and the text comes back exactly; removing a
     BOS keeps the leading space (llama.cpp's rule). */
  n = bitnet_detokenize(vocab, tokens + 1, n_tok - 1, buf, sizeof buf, false, false);
  CHECK(n == (int)text_len && memcmp(buf, text, text_len) == 0);
  n = bitnet_detokenize(vocab, tokens, n_tok, buf, sizeof buf, true, false);
  CHECK(n == (int)text_len + 1 && buf[0] == ' ' && memcmp(buf + 1, text, text_len) == 0);
  CHECK(bitnet_detokenize(vocab, tokens, n_tok, buf, 3, true, false) == -((int)text_len + 1));
  CHECK_FAILED_WITH(BITNET_ERR_BUFFER_TOO_SMALL);

  /* ---- context */
  struct bitnet_context_params cp = bitnet_context_default_params();
  CHECK(cp.n_ctx == 512 && cp.n_batch == 2048 && cp.n_ubatch == 512 && cp.n_seq_max == 1);
  CHECK(cp.type_k == BITNET_KV_TYPE_F16 && !cp.embeddings && cp.flash_attn_type == BITNET_FLASH_ATTN_TYPE_AUTO);
  cp.n_ctx = 100; /* rounded up to 128 */
  cp.n_batch = 64;
  cp.n_seq_max = 2;
  cp.n_threads = cp.n_threads_batch = 1;
  struct bitnet_context *ctx = bitnet_init_from_model(model, cp);
  CHECK(ctx != NULL);
  if (!ctx) CHECK_DONE();
  CHECK(bitnet_n_ctx(ctx) == 128 && bitnet_n_batch(ctx) == 64 && bitnet_n_ubatch(ctx) == 64);
  CHECK(bitnet_n_seq_max(ctx) == 2);
  CHECK(bitnet_n_threads(ctx) == 1 && bitnet_n_threads_batch(ctx) == 1);
  bitnet_set_n_threads(ctx, 2, 2);
  CHECK(bitnet_n_threads(ctx) == 2 && bitnet_n_threads_batch(ctx) == 2);
  bitnet_set_n_threads(ctx, 1, 1);
  CHECK(bitnet_get_model(ctx) == model);
  bitnet_synchronize(ctx);

  /* ---- batch + decode: the prompt with logits for every token */
  struct bitnet_batch batch = bitnet_batch_init(64, 0, 2);
  CHECK(batch.token && batch.pos && batch.seq_id && batch.n_seq_id && batch.logits && !batch.embd);
  CHECK(batch.n_tokens == 0);
  for (int i = 0; i < n_tok; i++) {
    batch.token[i] = tokens[i];
    batch.pos[i] = i;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = 0;
    batch.logits[i] = i != 3; /* token 3 asks for none */
  }
  batch.n_tokens = n_tok;
  CHECK(bitnet_decode(ctx, batch) == 0);
  const float *all = bitnet_get_logits(ctx);
  const float *last = bitnet_get_logits_ith(ctx, -1);
  CHECK(all && last && last == all + (size_t)(n_tok - 2) * 32000);
  CHECK(bitnet_get_logits_ith(ctx, n_tok - 1) == last);
  CHECK(bitnet_get_logits_ith(ctx, 4) == all + 3 * 32000);
  CHECK(bitnet_get_logits_ith(ctx, 3) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(argmax(last, 32000) == step0);

  /* ---- memory */
  bitnet_memory_t mem = bitnet_get_memory(ctx);
  CHECK(mem != NULL && bitnet_memory_can_shift(mem));
  CHECK(bitnet_memory_seq_pos_min(mem, 0) == 0 && bitnet_memory_seq_pos_max(mem, 0) == n_tok - 1);
  CHECK(bitnet_memory_seq_pos_max(mem, 1) == -1);
  bitnet_memory_seq_cp(mem, 0, 1, -1, -1);
  CHECK(bitnet_memory_seq_pos_max(mem, 1) == n_tok - 1);
  CHECK(bitnet_memory_seq_rm(mem, 1, 5, -1));
  CHECK(bitnet_memory_seq_pos_max(mem, 1) == 4 && bitnet_memory_seq_pos_max(mem, 0) == n_tok - 1);
  bitnet_memory_seq_keep(mem, 0);
  CHECK(bitnet_memory_seq_pos_max(mem, 1) == -1);

  /* per-sequence state: sequence 0 restored as sequence 1 */
  const size_t seq_size = bitnet_state_seq_get_size(ctx, 0);
  uint8_t *seq_state = malloc(seq_size);
  CHECK(seq_size > 0 && bitnet_state_seq_get_data(ctx, seq_state, seq_size, 0) == seq_size);
  CHECK(bitnet_state_seq_get_data(ctx, seq_state, seq_size - 1, 0) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_BUFFER_TOO_SMALL);
  CHECK(bitnet_state_seq_get_size(ctx, 2) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_state_seq_set_data(ctx, seq_state, seq_size, 1) == seq_size);
  CHECK(bitnet_memory_seq_pos_min(mem, 1) == 0 && bitnet_memory_seq_pos_max(mem, 1) == n_tok - 1);
  CHECK(bitnet_state_seq_set_data(ctx, seq_state, seq_size, 5) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_memory_seq_keep(mem, 0);
  free(seq_state);

  /* ---- state: restore, then the next decode gives the same logits bit for bit */
  const size_t state_size = bitnet_state_get_size(ctx);
  CHECK(state_size > 0);
  uint8_t *state = malloc(state_size);
  CHECK(bitnet_state_get_data(ctx, state, state_size) == state_size);
  bitnet_token next = step0;
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(&next, 1)) == 0);
  float *after = malloc(sizeof(float) * 32000);
  memcpy(after, bitnet_get_logits_ith(ctx, -1), sizeof(float) * 32000);
  CHECK(bitnet_state_set_data(ctx, state, state_size) == state_size);
  CHECK(bitnet_memory_seq_pos_max(mem, 0) == n_tok - 1);
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(&next, 1)) == 0);
  CHECK(memcmp(after, bitnet_get_logits_ith(ctx, -1), sizeof(float) * 32000) == 0);

  char session[4096];
  snprintf(session, sizeof session, "%s/bitnet-api-model-%d.session", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
           (int)(bitnet_time_us() % 1000000));
  CHECK(bitnet_state_set_data(ctx, state, state_size) == state_size);
  CHECK(bitnet_state_save_file(ctx, session, tokens, (size_t)n_tok));
  bitnet_memory_clear(mem, true);
  CHECK(bitnet_memory_seq_pos_max(mem, 0) == -1);
  bitnet_token loaded[64];
  size_t n_loaded = 0;
  CHECK(bitnet_state_load_file(ctx, session, loaded, 64, &n_loaded));
  CHECK(n_loaded == (size_t)n_tok && memcmp(loaded, tokens, sizeof(bitnet_token) * n_loaded) == 0);
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(&next, 1)) == 0);
  CHECK(memcmp(after, bitnet_get_logits_ith(ctx, -1), sizeof(float) * 32000) == 0);
  remove(session);

  /* shifting positions: seq_add moves the sequence, the next decode continues after it */
  bitnet_memory_seq_add(mem, 0, 0, -1, 3);
  CHECK(bitnet_memory_seq_pos_min(mem, 0) == 3);
  bitnet_memory_seq_div(mem, 0, 0, -1, 2);
  CHECK(bitnet_memory_seq_pos_min(mem, 0) == 1);
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(&next, 1)) == 0);
  bitnet_memory_clear(mem, false);
  CHECK(bitnet_memory_seq_pos_max(mem, 0) == -1 && bitnet_memory_seq_pos_min(mem, 0) == -1);

  /* ---- perf */
  struct bitnet_perf_context_data perf = bitnet_perf_context(ctx);
  CHECK(perf.n_p_eval == n_tok && perf.n_eval == 4 && perf.t_load_ms > 0 && perf.t_start_ms > 0);
  CHECK(perf.t_p_eval_ms >= 0 && perf.t_eval_ms >= 0 && perf.n_reused == 0);
  bitnet_perf_context_print(ctx);
  bitnet_perf_context_reset(ctx);
  perf = bitnet_perf_context(ctx);
  CHECK(perf.n_p_eval == 0 && perf.n_eval == 0 && perf.t_eval_ms == 0);

  /* ---- samplers: chain management */
  struct bitnet_sampler_chain_params sp = bitnet_sampler_chain_default_params();
  CHECK(sp.no_perf);
  struct bitnet_sampler *chain = bitnet_sampler_chain_init(sp);
  CHECK(strcmp(bitnet_sampler_name(chain), "chain") == 0);
  struct bitnet_sampler *top_k = bitnet_sampler_init_top_k(2);
  bitnet_sampler_chain_add(chain, top_k);
  bitnet_sampler_chain_add(chain, bitnet_sampler_init_softmax());
  bitnet_sampler_chain_add(chain, bitnet_sampler_init_dist(1234));
  CHECK(bitnet_sampler_chain_n(chain) == 3);
  CHECK(bitnet_sampler_chain_get(chain, 0) == top_k);
  CHECK(strcmp(bitnet_sampler_name(bitnet_sampler_chain_get(chain, 0)), "top-k") == 0);
  CHECK(strcmp(bitnet_sampler_name(bitnet_sampler_chain_get(chain, 2)), "dist") == 0);
  CHECK(bitnet_sampler_get_seed(chain) == 1234);
  CHECK(bitnet_sampler_get_seed(bitnet_sampler_chain_get(chain, 2)) == 1234);
  CHECK(bitnet_sampler_get_seed(top_k) == BITNET_DEFAULT_SEED);
  struct bitnet_sampler *clone = bitnet_sampler_clone(chain);
  CHECK(clone && bitnet_sampler_chain_n(clone) == 3 && bitnet_sampler_chain_get(clone, 0) != top_k);

  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(tokens, n_tok)) == 0);
  bitnet_token a = bitnet_sampler_sample(chain, ctx, -1);
  bitnet_token b = bitnet_sampler_sample(clone, ctx, -1);
  CHECK(a == b && a >= 0 && a < 32000);
  CHECK(bitnet_perf_sampler(chain).n_sample == 1);
  bitnet_perf_sampler_reset(chain);
  CHECK(bitnet_perf_sampler(chain).n_sample == 0);
  bitnet_sampler_reset(chain);
  CHECK(bitnet_sampler_sample(chain, ctx, -1) == a); /* re-seeded: the same draw */

  struct bitnet_sampler *removed = bitnet_sampler_chain_remove(chain, 0);
  CHECK(removed == top_k && bitnet_sampler_chain_n(chain) == 2);
  bitnet_sampler_free(removed);

  /* apply on caller-owned candidates */
  bitnet_token_data data[5] = {{0, 1.0f, 0}, {1, 3.0f, 0}, {2, 2.0f, 0}, {3, 3.0f, 0}, {4, -1.0f, 0}};
  bitnet_token_data_array cur = {data, 5, -1, false};
  struct bitnet_sampler *k2 = bitnet_sampler_init_top_k(2);
  bitnet_sampler_apply(k2, &cur);
  CHECK(cur.size == 2 && cur.sorted && cur.data == data && data[0].logit == 3.0f && data[1].logit == 3.0f);
  bitnet_sampler_free(k2);
  struct bitnet_sampler *greedy = bitnet_sampler_init_greedy();
  cur.size = 5;
  bitnet_sampler_apply(greedy, &cur);
  CHECK(cur.selected == 0);
  CHECK(bitnet_sampler_sample(greedy, ctx, -1) == argmax(bitnet_get_logits_ith(ctx, -1), 32000));
  bitnet_sampler_free(greedy);

  /* the other samplers build, name themselves and sample */
  struct bitnet_logit_bias bias[2] = {{step0, -1000.0f}, {7, 0.5f}};
  struct {
    struct bitnet_sampler *s;
    const char *name;
  } all_samplers[] = {
      {bitnet_sampler_init_top_p(0.9f, 1), "top-p"},
      {bitnet_sampler_init_min_p(0.1f, 1), "min-p"},
      {bitnet_sampler_init_typical(0.9f, 1), "typical"},
      {bitnet_sampler_init_temp(0.8f), "temp"},
      {bitnet_sampler_init_temp_ext(0.8f, 0.5f, 1.0f), "temp-ext"},
      {bitnet_sampler_init_penalties(0, 64, 1.1f, 0.1f, 0.1f), "penalties"},
      {bitnet_sampler_init_logit_bias(32000, 2, bias), "logit-bias"},
      {bitnet_sampler_init_mirostat(32000, 5, 5.0f, 0.1f, 100), "mirostat"},
      {bitnet_sampler_init_mirostat_v2(5, 5.0f, 0.1f), "mirostat-v2"},
  };
  struct bitnet_sampler *full = bitnet_sampler_chain_init(sp);
  for (size_t i = 0; i < sizeof all_samplers / sizeof all_samplers[0]; i++) {
    CHECK(all_samplers[i].s != NULL);
    if (!all_samplers[i].s) continue;
    if (strcmp(bitnet_sampler_name(all_samplers[i].s), all_samplers[i].name) != 0) {
      fprintf(stderr, "sampler %zu is named %s, expected %s\n", i, bitnet_sampler_name(all_samplers[i].s),
              all_samplers[i].name);
      check_failures++;
    }
  }
  /* mirostat selects by itself */
  bitnet_token m = bitnet_sampler_sample(all_samplers[7].s, ctx, -1);
  CHECK(m >= 0 && m < 32000);
  bitnet_sampler_accept(all_samplers[7].s, m);
  m = bitnet_sampler_sample(all_samplers[8].s, ctx, -1);
  CHECK(m >= 0 && m < 32000);
  for (int i = 0; i < 7; i++) bitnet_sampler_chain_add(full, all_samplers[i].s);
  bitnet_sampler_chain_add(full, bitnet_sampler_init_greedy());
  bitnet_sampler_free(all_samplers[7].s);
  bitnet_sampler_free(all_samplers[8].s);
  m = bitnet_sampler_sample(full, ctx, -1);
  CHECK(m >= 0 && m < 32000 && m != step0); /* the bias removed step0 */
  bitnet_sampler_free(full);

  bitnet_sampler_free(chain);
  bitnet_sampler_free(clone);
  bitnet_batch_free(batch);
  free(state);
  free(after);
  bitnet_free(ctx);
  bitnet_model_free(model);
  free(text);
  free(trace);
  CHECK(bitnet_last_error() == NULL || (bitnet_clear_error(), 1));
  CHECK_DONE();
}
