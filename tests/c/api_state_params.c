/* llama.h parity of the parameter structs, per-sequence state and backend sampling (issue 17),
 * through the installed package:
 *  - bitnet_context_params / bitnet_model_params / the other value structs have llama.h's
 *    layout (offsets and sizes as llama.cpp 0c1e57098's llama.h gives them on LP64) and its
 *    default values; fields naming what bitnet lacks are refused, the abort callback is used;
 *  - bitnet_state_seq_*_ext with every flag, the sequence state files: seq 0 of a two-sequence
 *    context saved, loaded as seq 1 of a fresh context, gives the logits of continuing seq 0 bit
 *    for bit; a short token buffer, bad ids, /dev/zero, unknown flags, cut and bit-flipped files
 *    are refused with the context unchanged;
 *  - backend sampling (ctx_params.samplers, bitnet_set_sampler, bitnet_get_sampled_*) draws the
 *    token a CPU chain with the same seed draws, and bitnet_sampler_sample hands it out;
 *  - the small llama.h functions: enum names, meta key names, causal attention, add_sep,
 *    suppress tokens, n_rs_seq, sampler_copy, load_from_splits.
 * Usage: api_state_params MODEL.gguf [quick]   ("quick": fewer corrupted files, for valgrind) */
#include <bitnet.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "check.h"

#define LAYOUT(got, want) CHECK((size_t)(got) == (size_t)(want))

static void layout(void) {
#if UINTPTR_MAX == 0xffffffffffffffffu
  LAYOUT(sizeof(struct bitnet_context_params), 160);
  LAYOUT(offsetof(struct bitnet_context_params, n_ctx), 0);
  LAYOUT(offsetof(struct bitnet_context_params, n_batch), 4);
  LAYOUT(offsetof(struct bitnet_context_params, n_ubatch), 8);
  LAYOUT(offsetof(struct bitnet_context_params, n_seq_max), 12);
  LAYOUT(offsetof(struct bitnet_context_params, n_rs_seq), 16);
  LAYOUT(offsetof(struct bitnet_context_params, n_outputs_max), 20);
  LAYOUT(offsetof(struct bitnet_context_params, n_outputs_max_per_seq), 24);
  LAYOUT(offsetof(struct bitnet_context_params, n_threads), 28);
  LAYOUT(offsetof(struct bitnet_context_params, n_threads_batch), 32);
  LAYOUT(offsetof(struct bitnet_context_params, ctx_type), 36);
  LAYOUT(offsetof(struct bitnet_context_params, rope_scaling_type), 40);
  LAYOUT(offsetof(struct bitnet_context_params, pooling_type), 44);
  LAYOUT(offsetof(struct bitnet_context_params, attention_type), 48);
  LAYOUT(offsetof(struct bitnet_context_params, flash_attn_type), 52);
  LAYOUT(offsetof(struct bitnet_context_params, rope_freq_base), 56);
  LAYOUT(offsetof(struct bitnet_context_params, rope_freq_scale), 60);
  LAYOUT(offsetof(struct bitnet_context_params, yarn_ext_factor), 64);
  LAYOUT(offsetof(struct bitnet_context_params, yarn_attn_factor), 68);
  LAYOUT(offsetof(struct bitnet_context_params, yarn_beta_fast), 72);
  LAYOUT(offsetof(struct bitnet_context_params, yarn_beta_slow), 76);
  LAYOUT(offsetof(struct bitnet_context_params, yarn_orig_ctx), 80);
  LAYOUT(offsetof(struct bitnet_context_params, defrag_thold), 84);
  LAYOUT(offsetof(struct bitnet_context_params, cb_eval), 88);
  LAYOUT(offsetof(struct bitnet_context_params, cb_eval_user_data), 96);
  LAYOUT(offsetof(struct bitnet_context_params, type_k), 104);
  LAYOUT(offsetof(struct bitnet_context_params, type_v), 108);
  LAYOUT(offsetof(struct bitnet_context_params, abort_callback), 112);
  LAYOUT(offsetof(struct bitnet_context_params, abort_callback_data), 120);
  LAYOUT(offsetof(struct bitnet_context_params, embeddings), 128);
  LAYOUT(offsetof(struct bitnet_context_params, offload_kqv), 129);
  LAYOUT(offsetof(struct bitnet_context_params, no_perf), 130);
  LAYOUT(offsetof(struct bitnet_context_params, op_offload), 131);
  LAYOUT(offsetof(struct bitnet_context_params, swa_full), 132);
  LAYOUT(offsetof(struct bitnet_context_params, kv_unified), 133);
  LAYOUT(offsetof(struct bitnet_context_params, samplers), 136);
  LAYOUT(offsetof(struct bitnet_context_params, n_samplers), 144);
  LAYOUT(offsetof(struct bitnet_context_params, ctx_other), 152);
  LAYOUT(sizeof(struct bitnet_model_params), 80);
  LAYOUT(offsetof(struct bitnet_model_params, devices), 0);
  LAYOUT(offsetof(struct bitnet_model_params, tensor_buft_overrides), 8);
  LAYOUT(offsetof(struct bitnet_model_params, n_gpu_layers), 16);
  LAYOUT(offsetof(struct bitnet_model_params, split_mode), 20);
  LAYOUT(offsetof(struct bitnet_model_params, load_mode), 24);
  LAYOUT(offsetof(struct bitnet_model_params, lazy_mode), 28);
  LAYOUT(offsetof(struct bitnet_model_params, main_gpu), 32);
  LAYOUT(offsetof(struct bitnet_model_params, tensor_split), 40);
  LAYOUT(offsetof(struct bitnet_model_params, progress_callback), 48);
  LAYOUT(offsetof(struct bitnet_model_params, progress_callback_user_data), 56);
  LAYOUT(offsetof(struct bitnet_model_params, kv_overrides), 64);
  LAYOUT(offsetof(struct bitnet_model_params, vocab_only), 72);
  LAYOUT(offsetof(struct bitnet_model_params, check_tensors), 73);
  LAYOUT(offsetof(struct bitnet_model_params, use_extra_bufts), 74);
  LAYOUT(offsetof(struct bitnet_model_params, no_host), 75);
  LAYOUT(offsetof(struct bitnet_model_params, no_alloc), 76);
  LAYOUT(offsetof(struct bitnet_model_params, load_mtp), 77);
  LAYOUT(sizeof(struct bitnet_sampler_chain_params), 1);
  LAYOUT(sizeof(struct bitnet_sampler_seq_config), 16);
  LAYOUT(sizeof(struct bitnet_model_kv_override), 264);
  LAYOUT(sizeof(struct bitnet_model_tensor_buft_override), 16);
  LAYOUT(sizeof(struct bitnet_batch), 56);
  LAYOUT(sizeof(struct bitnet_token_data), 12);
  LAYOUT(sizeof(struct bitnet_token_data_array), 32);
  LAYOUT(sizeof(struct bitnet_chat_message), 16);
  LAYOUT(sizeof(struct bitnet_perf_context_data), 48);
  LAYOUT(sizeof(struct bitnet_perf_sampler_data), 16);
  LAYOUT(sizeof(struct bitnet_logit_bias), 8);
#endif
}

static void defaults(void) {
  struct bitnet_context_params c = bitnet_context_default_params();
  CHECK(c.n_ctx == 512 && c.n_batch == 2048 && c.n_ubatch == 512 && c.n_seq_max == 1);
  CHECK(c.n_rs_seq == 0 && c.n_outputs_max == 0 && c.n_outputs_max_per_seq == 1);
  CHECK(c.n_threads == 4 && c.n_threads_batch == 4);
  CHECK(c.ctx_type == BITNET_CONTEXT_TYPE_DEFAULT);
  CHECK(c.rope_scaling_type == BITNET_ROPE_SCALING_TYPE_UNSPECIFIED);
  CHECK(c.pooling_type == BITNET_POOLING_TYPE_UNSPECIFIED);
  CHECK(c.attention_type == BITNET_ATTENTION_TYPE_UNSPECIFIED);
  CHECK(c.flash_attn_type == BITNET_FLASH_ATTN_TYPE_AUTO);
  CHECK(c.rope_freq_base == 0.0f && c.rope_freq_scale == 0.0f);
  CHECK(c.yarn_ext_factor == -1.0f && c.yarn_attn_factor == -1.0f);
  CHECK(c.yarn_beta_fast == -1.0f && c.yarn_beta_slow == -1.0f && c.yarn_orig_ctx == 0);
  CHECK(c.defrag_thold == -1.0f);
  CHECK(c.cb_eval == NULL && c.cb_eval_user_data == NULL);
  CHECK(c.type_k == BITNET_KV_TYPE_F16 && c.type_v == BITNET_KV_TYPE_F16);
  CHECK(c.abort_callback == NULL && c.abort_callback_data == NULL);
  CHECK(!c.embeddings && c.offload_kqv && c.no_perf && c.op_offload && c.swa_full && !c.kv_unified);
  CHECK(c.samplers == NULL && c.n_samplers == 0 && c.ctx_other == NULL);

  struct bitnet_model_params m = bitnet_model_default_params();
  CHECK(m.devices == NULL && m.tensor_buft_overrides == NULL);
  CHECK(m.n_gpu_layers == -1 && m.split_mode == BITNET_SPLIT_MODE_LAYER);
  CHECK(m.load_mode == BITNET_LOAD_MODE_AUTO && m.lazy_mode == BITNET_LAZY_MODE_AUTO);
  CHECK(m.main_gpu == 0 && m.tensor_split == NULL);
  CHECK(m.progress_callback == NULL && m.progress_callback_user_data == NULL && m.kv_overrides == NULL);
  CHECK(!m.vocab_only && !m.check_tensors && m.use_extra_bufts && !m.no_host && !m.no_alloc && !m.load_mtp);
  CHECK(!m.head_q8_0);

  CHECK(bitnet_sampler_chain_default_params().no_perf);
}

static void small_functions(struct bitnet_model *m) {
  CHECK(strcmp(bitnet_flash_attn_type_name(BITNET_FLASH_ATTN_TYPE_AUTO), "auto") == 0);
  CHECK(strcmp(bitnet_flash_attn_type_name(BITNET_FLASH_ATTN_TYPE_ENABLED), "enabled") == 0);
  CHECK(strcmp(bitnet_load_mode_name(BITNET_LOAD_MODE_MMAP_MLOCK), "mmap+mlock") == 0);
  CHECK(bitnet_load_mode_from_str("dio") == BITNET_LOAD_MODE_DIRECT_IO);
  CHECK(bitnet_load_mode_from_str("auto") == BITNET_LOAD_MODE_AUTO);
  CHECK(bitnet_load_mode_from_str("fast") == -2);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(strcmp(bitnet_model_meta_key_str(BITNET_MODEL_META_KEY_SAMPLING_TOP_K), "general.sampling.top_k") == 0);
  CHECK(bitnet_model_meta_key_str(99) == NULL);
  const struct bitnet_vocab *v = bitnet_model_get_vocab(m);
  CHECK(!bitnet_vocab_get_add_sep(v));
  int32_t n_sup = 7;
  CHECK(bitnet_vocab_get_suppress_tokens(v, &n_sup) == NULL && n_sup == 0);
  CHECK(bitnet_vocab_get_suppress_tokens(NULL, &n_sup) == NULL && n_sup == 0);
  bitnet_clear_error();

  struct bitnet_context_params cp = bitnet_context_default_params();
  cp.n_ctx = 64;
  struct bitnet_context *ctx = bitnet_init_from_model(m, cp);
  CHECK(ctx != NULL);
  CHECK(bitnet_n_rs_seq(ctx) == 0);
  CHECK(bitnet_get_causal_attn(ctx));
  bitnet_set_causal_attn(ctx, true);
  CHECK(bitnet_last_error() == NULL);
  bitnet_set_causal_attn(ctx, false);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  CHECK(bitnet_get_causal_attn(ctx));
  bitnet_free(ctx);

  /* sampler_copy: dst takes src's RNG state, so both draw the same from here on. */
  struct bitnet_sampler *a = bitnet_sampler_init_dist(1), *b = bitnet_sampler_init_dist(2);
  bitnet_token_data d[4];
  for (int r = 0; r < 3; r++) {
    bitnet_token_data_array arr = {d, 4, -1, false};
    for (int i = 0; i < 4; i++) d[i] = (bitnet_token_data){i, 0.0f, 0.0f};
    bitnet_sampler_apply(a, &arr);
  }
  bitnet_sampler_copy(a, b);
  int same = 1;
  for (int r = 0; r < 16; r++) {
    bitnet_token_data_array x = {d, 4, -1, false};
    for (int i = 0; i < 4; i++) d[i] = (bitnet_token_data){i, 0.0f, 0.0f};
    bitnet_sampler_apply(a, &x);
    int64_t sa = x.selected;
    bitnet_token_data_array y = {d, 4, -1, false};
    for (int i = 0; i < 4; i++) d[i] = (bitnet_token_data){i, 0.0f, 0.0f};
    bitnet_sampler_apply(b, &y);
    same &= sa == y.selected;
  }
  CHECK(same);
  struct bitnet_sampler *g = bitnet_sampler_init_greedy();
  bitnet_sampler_copy(a, g); /* different kinds: refused */
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_sampler_free(g);
  bitnet_sampler_free(a);
  bitnet_sampler_free(b);
}

static int aborts = 0;
static bool abort_now(void *data) {
  (*(int *)data)++;
  return true;
}

static void refused_params(struct bitnet_model *m, const char *path) {
  struct bitnet_context_params cp = bitnet_context_default_params();
  cp.n_ctx = 64;
  cp.flash_attn_type = BITNET_FLASH_ATTN_TYPE_ENABLED;
  CHECK(bitnet_init_from_model(m, cp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  cp = bitnet_context_default_params();
  cp.attention_type = BITNET_ATTENTION_TYPE_NON_CAUSAL;
  CHECK(bitnet_init_from_model(m, cp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  cp = bitnet_context_default_params();
  cp.rope_freq_scale = 0.5f;
  CHECK(bitnet_init_from_model(m, cp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  cp = bitnet_context_default_params();
  cp.pooling_type = 9;
  CHECK(bitnet_init_from_model(m, cp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);

  /* Device-only fields are ignored, as in a CPU-only llama.cpp. */
  cp = bitnet_context_default_params();
  cp.n_ctx = 64;
  cp.offload_kqv = false;
  cp.op_offload = false;
  cp.kv_unified = true;
  cp.n_rs_seq = 3;
  cp.abort_callback = abort_now;
  cp.abort_callback_data = &aborts;
  struct bitnet_context *ctx = bitnet_init_from_model(m, cp);
  CHECK(ctx != NULL);
  bitnet_token t[2] = {1, 450};
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(t, 2)) == 2); /* the params' abort callback */
  CHECK(aborts == 1);
  bitnet_clear_error();
  bitnet_free(ctx);

  struct bitnet_model_params mp = bitnet_model_default_params();
  mp.no_alloc = true;
  CHECK(bitnet_model_load_from_file(path, mp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  mp = bitnet_model_default_params();
  struct bitnet_model_kv_override ov[2];
  memset(ov, 0, sizeof ov);
  strcpy(ov[0].key, "general.name");
  ov[0].tag = BITNET_KV_OVERRIDE_TYPE_INT;
  mp.kv_overrides = ov;
  CHECK(bitnet_model_load_from_file(path, mp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  mp.kv_overrides = ov + 1; /* empty list: fine */
  void *no_devices[1] = {NULL};
  mp.devices = no_devices;
  mp.n_gpu_layers = 99;
  mp.split_mode = BITNET_SPLIT_MODE_ROW;
  mp.load_mode = BITNET_LOAD_MODE_MMAP;
  struct bitnet_model *ok = bitnet_model_load_from_file(path, mp);
  CHECK(ok != NULL);
  bitnet_model_free(ok);

  /* Splits: one path loads, several are refused, none is an error. */
  const char *paths[2] = {path, path};
  ok = bitnet_model_load_from_splits(paths, 1, bitnet_model_default_params());
  CHECK(ok != NULL);
  bitnet_model_free(ok);
  CHECK(bitnet_model_load_from_splits(paths, 2, bitnet_model_default_params()) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  CHECK(bitnet_model_load_from_splits(paths, 0, bitnet_model_default_params()) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
}

static struct bitnet_context *ctx2(struct bitnet_model *m) {
  struct bitnet_context_params cp = bitnet_context_default_params();
  cp.n_ctx = 64;
  cp.n_seq_max = 2;
  cp.n_threads = cp.n_threads_batch = 1;
  struct bitnet_context *ctx = bitnet_init_from_model(m, cp);
  CHECK(ctx != NULL);
  return ctx;
}

/* Decodes `n` tokens of seq `seq` from position `pos0`, logits for the last. */
static int decode_seq(struct bitnet_context *ctx, const bitnet_token *toks, int n, bitnet_pos pos0,
                      bitnet_seq_id seq) {
  struct bitnet_batch b = bitnet_batch_init(n, 0, 1);
  for (int i = 0; i < n; i++) {
    b.token[i] = toks[i];
    b.pos[i] = pos0 + i;
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = seq;
    b.logits[i] = i == n - 1;
  }
  b.n_tokens = n;
  int r = bitnet_decode(ctx, b);
  bitnet_batch_free(b);
  return r;
}

static uint8_t *snap(struct bitnet_context *ctx, size_t *n) {
  *n = bitnet_state_get_size(ctx);
  uint8_t *s = malloc(*n);
  CHECK(s && bitnet_state_get_data(ctx, s, *n) == *n);
  return s;
}

static int same_state(struct bitnet_context *ctx, const uint8_t *s, size_t n) {
  size_t m;
  uint8_t *now = snap(ctx, &m);
  int same = m == n && memcmp(now, s, n) == 0;
  free(now);
  return same;
}

static void write_file(const char *path, const uint8_t *data, size_t n) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (!f) return;
  CHECK(fwrite(data, 1, n, f) == n);
  fclose(f);
}

static uint8_t *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  CHECK(f != NULL);
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *d = malloc(*n);
  CHECK(d && fread(d, 1, *n, f) == *n);
  fclose(f);
  return d;
}

static void seq_state(struct bitnet_model *m, int quick) {
  const struct bitnet_vocab *v = bitnet_model_get_vocab(m);
  int n_vocab = bitnet_vocab_n_tokens(v);
  bitnet_token prompt[16];
  int n = bitnet_tokenize(v, "The quick brown fox jumps", 25, prompt, 16, true, false);
  CHECK(n > 3);
  bitnet_token other[3] = {1, 29871, 450};

  /* Seq 1 holds something else, so seq 0's state is not the whole cache. */
  struct bitnet_context *a = ctx2(m);
  CHECK(decode_seq(a, other, 3, 0, 1) == 0);
  CHECK(decode_seq(a, prompt, n, 0, 0) == 0);

  /* Every flag gives the same state (no SWA, no recurrent cache, no device). */
  size_t sz = bitnet_state_seq_get_size(a, 0);
  CHECK(sz > 0);
  CHECK(bitnet_state_seq_get_size_ext(a, 0, BITNET_STATE_SEQ_FLAGS_NONE) == sz);
  CHECK(bitnet_state_seq_get_size_ext(a, 0, BITNET_STATE_SEQ_FLAGS_PARTIAL_ONLY) == sz);
  CHECK(bitnet_state_seq_get_size_ext(a, 0, BITNET_STATE_SEQ_FLAGS_ON_DEVICE) == sz);
  CHECK(bitnet_state_seq_get_size_ext(a, 0, 4) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_state_seq_get_size_ext(a, 2, 0) == 0); /* seq id >= n_seq_max */
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  uint8_t *blob = malloc(sz), *blob2 = malloc(sz);
  CHECK(bitnet_state_seq_get_data_ext(a, blob, sz, 0, BITNET_STATE_SEQ_FLAGS_ON_DEVICE) == sz);
  CHECK(bitnet_state_seq_get_data(a, blob2, sz, 0) == sz);
  CHECK(memcmp(blob, blob2, sz) == 0);
  CHECK(bitnet_state_seq_get_data_ext(a, blob, sz - 1, 0, 0) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_BUFFER_TOO_SMALL);

  /* set_data_ext into seq 1 of a fresh context: same state as set_data. */
  struct bitnet_context *c = ctx2(m);
  CHECK(bitnet_state_seq_set_data_ext(c, blob, sz, 1, BITNET_STATE_SEQ_FLAGS_PARTIAL_ONLY) == sz);
  CHECK(bitnet_memory_seq_pos_max(bitnet_get_memory(c), 1) == n - 1);
  CHECK(bitnet_state_seq_set_data_ext(c, blob, sz, 1, 8) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_free(c);

  /* Files: save seq 0 with its tokens, load as seq 1 of a fresh context. */
  const char *path = "api_state_params_seq.bin";
  size_t written = bitnet_state_seq_save_file(a, path, 0, prompt, (size_t)n);
  CHECK(written == 12 + 4 * (size_t)n + sz);
  CHECK(bitnet_state_seq_save_file(a, path, 5, prompt, (size_t)n) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_state_seq_save_file(a, path, 0, prompt, (size_t)n) == written);

  struct bitnet_context *b = ctx2(m);
  size_t n_tok = 0;
  /* tokens_out NULL: only the count, nothing loaded (llama.h). */
  CHECK(bitnet_state_seq_load_file(b, path, 1, NULL, 0, &n_tok) == 12 && n_tok == (size_t)n);
  CHECK(bitnet_memory_seq_pos_max(bitnet_get_memory(b), 1) == -1);
  size_t before_n;
  uint8_t *before = snap(b, &before_n);
  bitnet_token toks[16];
  n_tok = 99;
  CHECK(bitnet_state_seq_load_file(b, path, 1, toks, (size_t)n - 1, &n_tok) == 0); /* too short */
  CHECK_FAILED_WITH(BITNET_ERR_BUFFER_TOO_SMALL);
  CHECK(n_tok == 99);
  CHECK(bitnet_state_seq_load_file(b, path, 2, toks, 16, &n_tok) == 0); /* bad id */
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  time_t t0 = time(NULL);
  CHECK(bitnet_state_seq_load_file(b, "/dev/zero", 1, toks, 16, &n_tok) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_FORMAT);
  CHECK(time(NULL) - t0 < 10);
  CHECK(bitnet_state_seq_load_file(b, "api_state_params_missing.bin", 1, toks, 16, &n_tok) == 0);
  CHECK(bitnet_last_error() != NULL);
  bitnet_clear_error();
  CHECK(same_state(b, before, before_n));
  /* The whole-state loader refuses a sequence file and the other way round. */
  CHECK(!bitnet_state_load_file(b, path, toks, 16, &n_tok));
  CHECK_FAILED_WITH(BITNET_ERR_FORMAT);
  CHECK(same_state(b, before, before_n));

  CHECK(bitnet_state_seq_load_file(b, path, 1, toks, 16, &n_tok) == written);
  CHECK(n_tok == (size_t)n && memcmp(toks, prompt, sizeof(bitnet_token) * (size_t)n) == 0);
  CHECK(bitnet_memory_seq_pos_max(bitnet_get_memory(b), 1) == n - 1);
  CHECK(bitnet_memory_seq_pos_min(bitnet_get_memory(b), 0) == -1);

  /* Continuing: seq 0 of the original and seq 1 of the restored context, bit for bit. */
  bitnet_token next = 4996;
  CHECK(decode_seq(a, &next, 1, n, 0) == 0);
  CHECK(decode_seq(b, &next, 1, n, 1) == 0);
  const float *la = bitnet_get_logits_ith(a, 0), *lb = bitnet_get_logits_ith(b, 0);
  CHECK(la && lb && memcmp(la, lb, sizeof(float) * (size_t)n_vocab) == 0);
  int nonconst = 0;
  for (int i = 1; la && i < n_vocab; i++) nonconst |= la[i] != la[0];
  CHECK(nonconst);

  /* Cut and bit-flipped files: refused (context unchanged) or loaded; never a crash. */
  size_t flen = 0;
  uint8_t *file = read_file(path, &flen);
  const char *bad = "api_state_params_bad.bin";
  struct bitnet_context *d = ctx2(m);
  CHECK(decode_seq(d, other, 3, 0, 0) == 0);
  size_t dn;
  uint8_t *ds = snap(d, &dn);
  int refused = 0, loaded = 0;
  size_t step = quick ? flen / 8 + 1 : 1;
  for (size_t cut = 0; file && cut < flen; cut += step) {
    write_file(bad, file, cut);
    if (bitnet_state_seq_load_file(d, bad, 1, toks, 16, &n_tok) == 0) {
      refused++;
      CHECK(same_state(d, ds, dn));
      bitnet_clear_error();
    } else {
      loaded++;
    }
  }
  CHECK(loaded == 0 && refused > 0);
  /* One extra byte at the end. */
  uint8_t *longer = malloc(flen + 1);
  if (file && longer) {
    memcpy(longer, file, flen);
    longer[flen] = 0;
    write_file(bad, longer, flen + 1);
    CHECK(bitnet_state_seq_load_file(d, bad, 1, toks, 16, &n_tok) == 0);
    CHECK_FAILED_WITH(BITNET_ERR_FORMAT);
    CHECK(same_state(d, ds, dn));
  }
  int flips = quick ? 24 : 600;
  uint32_t rng = 12345;
  for (int k = 0; file && k < flips; k++) {
    rng = rng * 1664525u + 1013904223u;
    /* Half the flips in the header and cell positions, where the checks are. */
    size_t head = flen < 256 ? flen : 256;
    size_t at = (k & 1) ? (rng >> 8) % head : (rng >> 8) % flen;
    file[at] ^= (uint8_t)(1u << (rng & 7));
    write_file(bad, file, flen);
    if (bitnet_state_seq_load_file(d, bad, 1, toks, 16, &n_tok) == 0) {
      CHECK(same_state(d, ds, dn));
      bitnet_clear_error();
    } else {
      /* A flip in KV data or a token still loads: restore seq 1 for the next round. */
      bitnet_memory_seq_rm(bitnet_get_memory(d), 1, -1, -1);
      free(ds);
      ds = snap(d, &dn);
    }
    file[at] ^= (uint8_t)(1u << (rng & 7));
  }
  remove(bad);
  remove(path);
  free(longer);
  free(file);
  free(ds);
  free(before);
  free(blob);
  free(blob2);
  bitnet_free(d);
  bitnet_free(b);
  bitnet_free(a);
}

static void backend_sampling(struct bitnet_model *m) {
  const struct bitnet_vocab *v = bitnet_model_get_vocab(m);
  bitnet_token prompt[16];
  int n = bitnet_tokenize(v, "Once upon a time", 16, prompt, 16, true, false);
  CHECK(n > 1);

  struct bitnet_sampler *chains[2];
  struct bitnet_sampler_seq_config cfg[2];
  for (int s = 0; s < 2; s++) {
    chains[s] = bitnet_sampler_chain_init(bitnet_sampler_chain_default_params());
    bitnet_sampler_chain_add(chains[s], bitnet_sampler_init_top_k(20));
    bitnet_sampler_chain_add(chains[s], bitnet_sampler_init_temp(0.9f));
    bitnet_sampler_chain_add(chains[s], bitnet_sampler_init_dist(77));
    cfg[s].seq_id = s;
    cfg[s].sampler = chains[s];
  }
  struct bitnet_context_params cp = bitnet_context_default_params();
  cp.n_ctx = 64;
  cp.n_seq_max = 2;
  cp.samplers = cfg;
  cp.n_samplers = 1;
  struct bitnet_context *ctx = bitnet_init_from_model(m, cp);
  CHECK(ctx != NULL);
  /* The same chain, sampling on the CPU side from a plain context. */
  struct bitnet_sampler *cpu = bitnet_sampler_clone(chains[0]);
  cp.samplers = NULL;
  cp.n_samplers = 0;
  struct bitnet_context *plain = bitnet_init_from_model(m, cp);
  CHECK(plain != NULL);

  bitnet_token pos0 = 0;
  bitnet_token cur[1];
  int agree = 1;
  for (int step = 0; step < 4; step++) {
    const bitnet_token *toks = step == 0 ? prompt : cur;
    int len = step == 0 ? n : 1;
    CHECK(decode_seq(ctx, toks, len, pos0, 0) == 0);
    CHECK(decode_seq(plain, toks, len, pos0, 0) == 0);
    pos0 += len;
    int last = len - 1;
    bitnet_token t = bitnet_get_sampled_token_ith(ctx, last);
    CHECK(t >= 0);
    CHECK(bitnet_get_sampled_token_ith(ctx, -1) == t);
    CHECK(bitnet_get_sampled_candidates_count_ith(ctx, last) == 20);
    CHECK(bitnet_get_sampled_logits_count_ith(ctx, last) == 20);
    CHECK(bitnet_get_sampled_probs_count_ith(ctx, last) == 20);
    const float *p = bitnet_get_sampled_probs_ith(ctx, last);
    const bitnet_token *ids = bitnet_get_sampled_candidates_ith(ctx, last);
    CHECK(p != NULL && ids != NULL && bitnet_get_sampled_logits_ith(ctx, last) != NULL);
    double sum = 0;
    int has_t = 0;
    for (int i = 0; p && ids && i < 20; i++) {
      sum += p[i];
      has_t |= ids[i] == t;
    }
    CHECK(fabs(sum - 1.0) < 1e-4 && has_t);
    if (len > 1) CHECK(bitnet_get_sampled_token_ith(ctx, 0) == BITNET_TOKEN_NULL); /* no output */
    bitnet_token got = bitnet_sampler_sample(chains[0], ctx, last);
    bitnet_token want = bitnet_sampler_sample(cpu, plain, last);
    CHECK(got == t);
    agree &= got == want;
    cur[0] = got;
  }
  CHECK(agree);

  /* More outputs for a sampled sequence than n_outputs_max_per_seq (1): refused, as llama.cpp. */
  struct bitnet_batch b = bitnet_batch_init(2, 0, 1);
  for (int i = 0; i < 2; i++) {
    b.token[i] = prompt[i];
    b.pos[i] = pos0 + i;
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = 0;
    b.logits[i] = 1;
  }
  b.n_tokens = 2;
  CHECK(bitnet_decode(ctx, b) == -1);
  bitnet_clear_error();
  bitnet_batch_free(b);
  CHECK(bitnet_memory_seq_pos_max(bitnet_get_memory(ctx), 0) == pos0 - 1);
  CHECK(bitnet_get_sampled_token_ith(ctx, 0) == BITNET_TOKEN_NULL);

  /* set_sampler: attach to seq 1, bad id, not a chain, detach. */
  CHECK(bitnet_set_sampler(ctx, 1, chains[1]));
  CHECK(decode_seq(ctx, prompt, 2, 0, 1) == 0);
  CHECK(bitnet_get_sampled_token_ith(ctx, 1) >= 0);
  CHECK(!bitnet_set_sampler(ctx, 2, chains[1]));
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  struct bitnet_sampler *lone = bitnet_sampler_init_greedy();
  CHECK(!bitnet_set_sampler(ctx, 1, lone));
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_set_sampler(ctx, 1, NULL));
  CHECK(decode_seq(ctx, prompt + 2, 1, 2, 1) == 0);
  CHECK(bitnet_get_sampled_token_ith(ctx, 0) == BITNET_TOKEN_NULL);
  CHECK(bitnet_get_sampled_probs_ith(ctx, 0) == NULL && bitnet_get_sampled_probs_count_ith(ctx, 0) == 0);

  /* Bad configurations. */
  cp.samplers = cfg;
  cp.n_samplers = 2;
  cfg[1].seq_id = 0;
  CHECK(bitnet_init_from_model(m, cp) == NULL); /* two chains for seq 0 */
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  cfg[1].seq_id = 7;
  CHECK(bitnet_init_from_model(m, cp) == NULL); /* seq 7 >= n_seq_max */
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  cp.samplers = NULL;
  CHECK(bitnet_init_from_model(m, cp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);

  bitnet_sampler_free(lone);
  bitnet_free(plain);
  bitnet_free(ctx);
  bitnet_sampler_free(cpu);
  bitnet_sampler_free(chains[0]);
  bitnet_sampler_free(chains[1]);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL.gguf [quick]\n", argv[0]);
    return 2;
  }
  int quick = argc > 2 && strcmp(argv[2], "quick") == 0;
  layout();
  defaults();
  struct bitnet_model *m = bitnet_model_load_from_file(argv[1], bitnet_model_default_params());
  CHECK(m != NULL);
  if (!m) CHECK_DONE();
  small_functions(m);
  refused_params(m, argv[1]);
  seq_state(m, quick);
  backend_sampling(m);
  bitnet_model_free(m);
  CHECK_DONE();
}
