/*
 * Bad input for every entry-point group: NULL handles, invalid tokens, sequence ids out of
 * range, short buffers, malformed files. Each call must return its documented failure value
 * and leave a message (bitnet_last_error / bitnet_last_status), never crash.
 *
 *   bad_input MODEL NOT_A_MODEL_FILE       (a tiny-spm model, any non-GGUF file)
 */
#include "bitnet.h"
#include "check.h"

#include <string.h>

static int warnings = 0;
static void on_log(enum bitnet_log_level level, const char *text, void *user_data) {
  (void)user_data;
  if (level == BITNET_LOG_LEVEL_WARN && strstr(text, "mlock")) warnings++;
}

static bool abort_load(float progress, void *user_data) {
  (void)progress;
  (void)user_data;
  return false;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL NOT_A_MODEL_FILE\n", argv[0]);
    return 2;
  }
  const char *model_path = argv[1];
  char buf[64];
  bitnet_token tok[8] = {1, 2, 3, 4, 5, 6, 7, 8};

  /* ---- model */
  struct bitnet_model_params mp = bitnet_model_default_params();
  CHECK(bitnet_model_load_from_file(NULL, mp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_model_load_from_file("/nonexistent/model.gguf", mp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_IO);
  CHECK(bitnet_model_load_from_file(argv[2], mp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_FORMAT);
  mp.progress_callback = abort_load;
  CHECK(bitnet_model_load_from_file(model_path, mp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_ABORTED);
  CHECK(bitnet_model_n_embd(NULL) == -1 && bitnet_model_n_layer(NULL) == -1 && bitnet_model_n_head(NULL) == -1);
  CHECK(bitnet_model_n_head_kv(NULL) == -1 && bitnet_model_n_ctx_train(NULL) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_model_size(NULL) == 0 && bitnet_model_n_params(NULL) == 0);
  CHECK(bitnet_model_desc(NULL, buf, sizeof buf) == -1);
  CHECK(bitnet_model_meta_count(NULL) == -1);
  CHECK(bitnet_model_meta_val_str(NULL, "general.name", buf, sizeof buf) == -1);
  CHECK(bitnet_model_chat_template(NULL, NULL) == NULL);
  CHECK(bitnet_model_get_vocab(NULL) == NULL);
  CHECK(!bitnet_model_has_encoder(NULL) && bitnet_model_decoder_start_token(NULL) == BITNET_TOKEN_NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_model_free(NULL);

  /* the log callback sees the warning for an unsupported option */
  bitnet_log_set(on_log, NULL);
  mp = bitnet_model_default_params();
  mp.load_mode = BITNET_LOAD_MODE_MLOCK;
  struct bitnet_model *model = bitnet_model_load_from_file(model_path, mp);
  bitnet_log_set(NULL, NULL);
  CHECK(model != NULL && warnings == 1);
  if (!model) CHECK_DONE();
  CHECK(bitnet_model_meta_val_str(model, NULL, buf, sizeof buf) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_model_meta_key_by_index(model, -1, buf, sizeof buf) == -1 && buf[0] == 0);
  CHECK(bitnet_model_meta_key_by_index(model, 1000, buf, sizeof buf) == -1);
  CHECK(bitnet_model_meta_val_str_by_index(model, 1000, buf, sizeof buf) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_model_desc(model, NULL, 10) == -1); /* NULL buffer with a size */
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);

  /* ---- vocab */
  const struct bitnet_vocab *vocab = bitnet_model_get_vocab(model);
  const int n_vocab = bitnet_vocab_n_tokens(vocab);
  CHECK(bitnet_vocab_n_tokens(NULL) == -1);
  CHECK(bitnet_tokenize(NULL, "a", 1, tok, 8, true, false) == INT32_MIN);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_tokenize(vocab, NULL, 5, tok, 8, true, false) == INT32_MIN);
  CHECK(bitnet_tokenize(vocab, "abc", -1, tok, 8, true, false) == INT32_MIN);
  CHECK(bitnet_tokenize(vocab, "abc", 3, NULL, 8, true, false) == INT32_MIN);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_tokenize(vocab, "abc", 3, NULL, 0, true, false) < 0); /* sizing call */
  CHECK_FAILED_WITH(BITNET_ERR_BUFFER_TOO_SMALL);
  CHECK(bitnet_token_to_piece(vocab, -5, buf, sizeof buf, 0, false) == INT32_MIN);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_TOKEN);
  CHECK(bitnet_token_to_piece(vocab, n_vocab, buf, sizeof buf, 0, false) == INT32_MIN);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_TOKEN);
  CHECK(bitnet_token_to_piece(vocab, 450, buf, sizeof buf, -1, false) == INT32_MIN);
  CHECK(bitnet_token_to_piece(NULL, 450, buf, sizeof buf, 0, false) == INT32_MIN);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_token bad_tokens[3] = {1, 999999, 2};
  CHECK(bitnet_detokenize(vocab, bad_tokens, 3, buf, sizeof buf, false, false) == INT32_MIN);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_TOKEN);
  CHECK(bitnet_detokenize(vocab, NULL, 3, buf, sizeof buf, false, false) == INT32_MIN);
  CHECK(bitnet_detokenize(vocab, tok, -3, buf, sizeof buf, false, false) == INT32_MIN);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_vocab_get_text(vocab, n_vocab) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_TOKEN);
  CHECK(bitnet_vocab_get_score(vocab, -1) == 0.0f);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_TOKEN);
  CHECK(bitnet_vocab_get_attr(vocab, -1) == BITNET_TOKEN_ATTR_UNDEFINED);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_TOKEN);
  CHECK(!bitnet_vocab_is_eog(vocab, -1) && !bitnet_vocab_is_control(vocab, n_vocab));
  CHECK(bitnet_vocab_bos(NULL) == BITNET_TOKEN_NULL && bitnet_vocab_eos(NULL) == BITNET_TOKEN_NULL);
  CHECK(bitnet_vocab_eot(vocab) == BITNET_TOKEN_NULL && bitnet_vocab_pad(vocab) == BITNET_TOKEN_NULL);
  CHECK(bitnet_vocab_sep(vocab) == BITNET_TOKEN_NULL);
  CHECK(!bitnet_vocab_get_add_bos(NULL) && !bitnet_vocab_is_eog(NULL, 2));
  CHECK(bitnet_vocab_type(NULL) == BITNET_VOCAB_TYPE_NONE);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);

  /* ---- context */
  struct bitnet_context_params cp = bitnet_context_default_params();
  CHECK(bitnet_init_from_model(NULL, cp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  cp.n_seq_max = 0;
  CHECK(bitnet_init_from_model(model, cp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  cp.n_seq_max = 65;
  CHECK(bitnet_init_from_model(model, cp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  cp = bitnet_context_default_params();
  cp.type_k = 8; /* Q8_0 */
  CHECK(bitnet_init_from_model(model, cp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  cp = bitnet_context_default_params();
  cp.embeddings = true;
  cp.pooling_type = BITNET_POOLING_TYPE_RANK; /* no classifier head */
  CHECK(bitnet_init_from_model(model, cp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  cp = bitnet_context_default_params();
  cp.n_ctx = 4000000000u;
  CHECK(bitnet_init_from_model(model, cp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_n_ctx(NULL) == 0 && bitnet_n_batch(NULL) == 0 && bitnet_n_ubatch(NULL) == 0);
  CHECK(bitnet_n_seq_max(NULL) == 0 && bitnet_n_threads(NULL) == -1 && bitnet_get_model(NULL) == NULL);
  bitnet_set_n_threads(NULL, 1, 1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_free(NULL);

  cp = bitnet_context_default_params();
  cp.n_ctx = 32;
  cp.n_batch = 32;
  cp.n_seq_max = 2;
  cp.n_threads = cp.n_threads_batch = 1;
  struct bitnet_context *ctx = bitnet_init_from_model(model, cp);
  CHECK(ctx != NULL);
  if (!ctx) CHECK_DONE();

  /* ---- batch */
  struct bitnet_batch b = bitnet_batch_init(0, 0, 1);
  CHECK(b.token == NULL && b.seq_id == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  b = bitnet_batch_init(4, 16, 1);
  CHECK(b.token == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  b = bitnet_batch_init(4, 0, -1);
  CHECK(b.token == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_batch_free(b); /* all NULL: a no-op */

  /* ---- decode */
  CHECK(bitnet_decode(NULL, bitnet_batch_get_one(tok, 2)) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(tok, 0)) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(NULL, 2)) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_token bad = n_vocab;
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(&bad, 1)) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_TOKEN);
  bad = -1;
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(&bad, 1)) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_TOKEN);
  bitnet_token many[40];
  for (int i = 0; i < 40; i++) many[i] = 100 + i;
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(many, 33)) == -1); /* > n_batch */
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);

  b = bitnet_batch_init(4, 0, 1);
  for (int i = 0; i < 2; i++) {
    b.token[i] = 100 + i;
    b.pos[i] = i;
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = 0;
    b.logits[i] = 1;
  }
  b.n_tokens = 2;
  b.seq_id[1][0] = 2; /* n_seq_max is 2 */
  CHECK(bitnet_decode(ctx, b) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  b.seq_id[1][0] = -1;
  CHECK(bitnet_decode(ctx, b) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  b.seq_id[1][0] = 0;
  b.n_seq_id[1] = 0; /* a token in no sequence */
  CHECK(bitnet_decode(ctx, b) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  b.n_seq_id[1] = 1;
  b.pos[1] = -4;
  CHECK(bitnet_decode(ctx, b) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  b.pos[1] = 1;
  int32_t *n_seq_id = b.n_seq_id;
  b.n_seq_id = NULL; /* seq_id without n_seq_id */
  CHECK(bitnet_decode(ctx, b) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  b.n_seq_id = n_seq_id;
  CHECK(bitnet_decode(ctx, b) == 0);
  bitnet_batch_free(b);

  /* logits */
  CHECK(bitnet_get_logits(NULL) == NULL && bitnet_get_logits_ith(NULL, 0) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_get_logits_ith(ctx, 2) == NULL && bitnet_get_logits_ith(ctx, -3) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_get_logits_ith(ctx, 1) != NULL && bitnet_get_logits_ith(ctx, -2) != NULL);

  /* KV full: 2 cells used of 32; 30 more fit, then one more does not (returns 1, cache kept) */
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(many, 30)) == 0);
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(many, 1)) == 1);
  CHECK_FAILED_WITH(BITNET_ERR_KV_FULL);
  bitnet_memory_t mem = bitnet_get_memory(ctx);
  CHECK(bitnet_memory_seq_pos_max(mem, 0) == 31);

  /* ---- memory */
  CHECK(bitnet_get_memory(NULL) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(!bitnet_memory_seq_rm(NULL, 0, -1, -1));
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(!bitnet_memory_seq_rm(mem, 2, -1, -1));
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_memory_seq_cp(mem, 0, 7, -1, -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_memory_seq_cp(mem, -1, 1, -1, -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_memory_seq_keep(mem, 64);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_memory_seq_add(mem, 3, 0, -1, 1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_memory_seq_div(mem, -2, 0, -1, 2);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_memory_seq_pos_min(mem, 9) == -1 && bitnet_memory_seq_pos_max(mem, -1) == -1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_memory_clear(NULL, true);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(!bitnet_memory_can_shift(NULL));
  CHECK(bitnet_memory_seq_pos_max(mem, 0) == 31); /* nothing above changed the cache */
  CHECK(bitnet_memory_seq_rm(mem, -1, 16, -1));   /* any sequence */
  CHECK(bitnet_memory_seq_pos_max(mem, 0) == 15);

  /* ---- state */
  CHECK(bitnet_state_get_size(NULL) == 0);
  uint8_t small_state[16];
  CHECK(bitnet_state_get_data(ctx, small_state, sizeof small_state) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_BUFFER_TOO_SMALL);
  CHECK(bitnet_state_get_data(ctx, NULL, 1u << 30) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  memset(small_state, 0xAB, sizeof small_state);
  CHECK(bitnet_state_set_data(ctx, small_state, sizeof small_state) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_FORMAT);
  CHECK(bitnet_state_set_data(ctx, NULL, 100) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  size_t n_loaded = 0;
  bitnet_token loaded[4];
  CHECK(!bitnet_state_load_file(ctx, "/nonexistent/session", loaded, 4, &n_loaded));
  CHECK_FAILED_WITH(BITNET_ERR_IO);
  CHECK(!bitnet_state_load_file(ctx, argv[2], loaded, 4, &n_loaded));
  CHECK_FAILED_WITH(BITNET_ERR_FORMAT);
  CHECK(!bitnet_state_save_file(ctx, NULL, tok, 2));
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(!bitnet_state_save_file(ctx, "/nonexistent/dir/session", tok, 2));
  CHECK_FAILED_WITH(BITNET_ERR_IO);
  char session[256];
  snprintf(session, sizeof session, "/tmp/bitnet-bad-input-%d.session", (int)(bitnet_time_us() % 1000000));
  CHECK(bitnet_state_save_file(ctx, session, tok, 8));
  CHECK(!bitnet_state_load_file(ctx, session, loaded, 4, &n_loaded)); /* 8 tokens, room for 4 */
  CHECK_FAILED_WITH(BITNET_ERR_BUFFER_TOO_SMALL);
  CHECK(!bitnet_state_load_file(ctx, session, loaded, 4, NULL));
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  remove(session);
  CHECK(bitnet_memory_seq_pos_max(mem, 0) == 15); /* failed loads left the context alone */

  /* ---- zero-size and too-small buffers: -(needed) or the full length, nothing overrun */
  char one[1] = {'x'};
  const int32_t desc_len = bitnet_model_desc(model, NULL, 0); /* sizing call */
  CHECK(desc_len > 0 && bitnet_model_desc(model, one, 1) == desc_len && one[0] == 0);
  one[0] = 'x';
  CHECK(bitnet_model_meta_val_str(model, "general.architecture", one, 1) > 0 && one[0] == 0);
  CHECK(bitnet_model_meta_key_by_index(model, 0, NULL, 0) > 0);
  const int32_t piece_len = bitnet_token_to_piece(vocab, 450, NULL, 0, 0, false);
  CHECK(piece_len < 0 && piece_len != INT32_MIN);
  CHECK_FAILED_WITH(BITNET_ERR_BUFFER_TOO_SMALL);
  one[0] = 'x';
  CHECK(bitnet_token_to_piece(vocab, 450, one, 1, 0, false) == piece_len && one[0] == 'x'); /* nothing written */
  CHECK(bitnet_token_to_piece(vocab, 450, buf, -piece_len, 0, false) == -piece_len);
  const bitnet_token three[3] = {450, 4996, 17354};
  const int32_t text_len = bitnet_detokenize(vocab, three, 3, NULL, 0, false, false);
  CHECK(text_len < 0 && text_len != INT32_MIN);
  CHECK_FAILED_WITH(BITNET_ERR_BUFFER_TOO_SMALL);
  CHECK(bitnet_detokenize(vocab, three, 3, buf, -text_len, false, false) == -text_len);
  CHECK(bitnet_tokenize(vocab, "hello world again", 17, tok, 1, true, false) < -1); /* BOS + 3 */
  CHECK_FAILED_WITH(BITNET_ERR_BUFFER_TOO_SMALL);
  CHECK(bitnet_detokenize(vocab, tok, 0, buf, sizeof buf, false, false) == 0); /* nothing to join */

  /* ---- more invalid tokens: the extremes */
  const bitnet_token extremes[3] = {INT32_MIN, -2, INT32_MAX};
  for (int i = 0; i < 3; i++) {
    CHECK(bitnet_vocab_get_text(vocab, extremes[i]) == NULL);
    CHECK_FAILED_WITH(BITNET_ERR_INVALID_TOKEN);
    CHECK(bitnet_token_to_piece(vocab, extremes[i], buf, sizeof buf, 0, false) == INT32_MIN);
    CHECK_FAILED_WITH(BITNET_ERR_INVALID_TOKEN);
    CHECK(bitnet_detokenize(vocab, &extremes[i], 1, buf, sizeof buf, false, false) == INT32_MIN);
    CHECK_FAILED_WITH(BITNET_ERR_INVALID_TOKEN);
    bitnet_token t = extremes[i];
    CHECK(bitnet_decode(ctx, bitnet_batch_get_one(&t, 1)) == -1);
    CHECK_FAILED_WITH(BITNET_ERR_INVALID_TOKEN);
    struct bitnet_logit_bias eb = {extremes[i], 1.0f};
    CHECK(bitnet_sampler_init_logit_bias(n_vocab, 1, &eb) == NULL);
    CHECK_FAILED_WITH(BITNET_ERR_INVALID_TOKEN);
  }
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(tok, -1)) == -1); /* negative n_tokens */
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);

  /* ---- per-sequence state: sequence ids outside 0..n_seq_max-1, short buffers */
  const bitnet_seq_id bad_seqs[4] = {-1, 2, 64, INT32_MAX};
  uint8_t seq_buf[64];
  for (int i = 0; i < 4; i++) {
    CHECK(bitnet_state_seq_get_size(ctx, bad_seqs[i]) == 0);
    CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
    CHECK(bitnet_state_seq_get_data(ctx, seq_buf, sizeof seq_buf, bad_seqs[i]) == 0);
    CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
    CHECK(bitnet_state_seq_set_data(ctx, seq_buf, sizeof seq_buf, bad_seqs[i]) == 0);
    CHECK(bitnet_last_status() != BITNET_OK && bitnet_last_error() != NULL);
    bitnet_clear_error();
    CHECK(!bitnet_memory_seq_rm(mem, bad_seqs[i] == -1 ? 2 : bad_seqs[i], -1, -1));
    CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  }
  CHECK(bitnet_state_seq_get_size(NULL, 0) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  const size_t seq_size = bitnet_state_seq_get_size(ctx, 0);
  CHECK(seq_size > sizeof seq_buf);
  CHECK(bitnet_state_seq_get_data(ctx, seq_buf, sizeof seq_buf, 0) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_BUFFER_TOO_SMALL);
  CHECK(bitnet_state_seq_get_data(ctx, NULL, seq_size, 0) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  memset(seq_buf, 0xAB, sizeof seq_buf);
  CHECK(bitnet_state_seq_set_data(ctx, seq_buf, sizeof seq_buf, 1) == 0);
  CHECK(bitnet_last_status() != BITNET_OK && bitnet_last_error() != NULL);
  bitnet_clear_error();
  CHECK(bitnet_state_seq_set_data(ctx, NULL, 10, 1) == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_memory_seq_pos_max(mem, 0) == 15); /* still untouched */

  /* ---- positions: a batch past n_ctx is KV_FULL (1), the cache unchanged */
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(many, 17)) == 1); /* 16 used + 17 > 32 */
  CHECK_FAILED_WITH(BITNET_ERR_KV_FULL);
  CHECK(bitnet_memory_seq_pos_max(mem, 0) == 15);
  CHECK(bitnet_decode(ctx, bitnet_batch_get_one(many, 16)) == 0); /* exactly full */
  CHECK(bitnet_memory_seq_pos_max(mem, 0) == 31);
  CHECK(bitnet_memory_seq_rm(mem, 0, 16, -1) && bitnet_memory_seq_pos_max(mem, 0) == 15);

  /* ---- a sampler added twice to one chain would be freed twice: refused */
  {
    struct bitnet_sampler *c2 = bitnet_sampler_chain_init(bitnet_sampler_chain_default_params());
    struct bitnet_sampler *g2 = bitnet_sampler_init_greedy();
    bitnet_sampler_chain_add(c2, g2);
    bitnet_sampler_chain_add(c2, g2);
    CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
    CHECK(bitnet_sampler_chain_n(c2) == 1);
    CHECK(bitnet_sampler_chain_get(c2, 1) == NULL && bitnet_sampler_chain_get(c2, INT32_MIN) == NULL);
    CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
    CHECK(bitnet_sampler_chain_remove(c2, 7) == NULL);
    CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
    bitnet_sampler_free(c2); /* frees g2 once */
  }

  /* ---- sampler */
  struct bitnet_sampler *greedy = bitnet_sampler_init_greedy();
  bitnet_sampler_chain_add(NULL, greedy); /* greedy stays ours */
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  struct bitnet_sampler *not_chain = bitnet_sampler_init_top_k(5);
  bitnet_sampler_chain_add(not_chain, greedy);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_sampler_chain_n(not_chain) == -1 && bitnet_sampler_chain_get(not_chain, 0) == NULL);
  CHECK(bitnet_sampler_chain_remove(not_chain, 0) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  struct bitnet_sampler *chain = bitnet_sampler_chain_init(bitnet_sampler_chain_default_params());
  bitnet_sampler_chain_add(chain, chain);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_sampler_chain_add(chain, NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_sampler_chain_get(chain, 0) == NULL && bitnet_sampler_chain_get(chain, -1) == chain); /* -1: the chain itself (llama.h) */
  CHECK(bitnet_sampler_chain_remove(chain, 0) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_sampler_chain_add(chain, not_chain); /* top-k only: selects nothing */
  CHECK(bitnet_sampler_sample(chain, ctx, -1) == BITNET_TOKEN_NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_sampler_sample(greedy, NULL, -1) == BITNET_TOKEN_NULL);
  CHECK(bitnet_sampler_sample(NULL, ctx, -1) == BITNET_TOKEN_NULL);
  CHECK(bitnet_sampler_sample(greedy, ctx, 5) == BITNET_TOKEN_NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_sampler_apply(greedy, NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_token_data_array cur = {NULL, 3, -1, false};
  bitnet_sampler_apply(greedy, &cur);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_sampler_accept(NULL, 1);
  bitnet_sampler_reset(NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_sampler_clone(NULL) == NULL && bitnet_sampler_name(NULL) == NULL);
  CHECK(bitnet_sampler_get_seed(NULL) == BITNET_DEFAULT_SEED);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  struct bitnet_logit_bias lb[1] = {{n_vocab, 1.0f}};
  CHECK(bitnet_sampler_init_logit_bias(n_vocab, 1, lb) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_TOKEN);
  CHECK(bitnet_sampler_init_logit_bias(n_vocab, 1, NULL) == NULL);
  CHECK(bitnet_sampler_init_logit_bias(0, 0, NULL) == NULL);
  CHECK(bitnet_sampler_init_mirostat(0, 1, 5.0f, 0.1f, 100) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_sampler_free(NULL);

  /* ---- perf */
  struct bitnet_perf_context_data pc = bitnet_perf_context(NULL);
  CHECK(pc.n_eval == 0 && pc.t_start_ms == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  struct bitnet_perf_sampler_data ps = bitnet_perf_sampler(greedy); /* not a chain */
  CHECK(ps.n_sample == 0);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_perf_sampler_reset(greedy);
  bitnet_perf_context_reset(NULL);
  bitnet_perf_context_print(NULL);
  bitnet_perf_sampler_print(NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);

  bitnet_sampler_free(greedy);
  bitnet_sampler_free(chain);
  bitnet_free(ctx);
  bitnet_model_free(model);
  CHECK_DONE();
}
