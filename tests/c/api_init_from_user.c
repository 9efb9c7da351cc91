/* bitnet_model_init_from_user and the bitnet_gguf_* metadata builder (llama.h's
 * llama_model_init_from_user, issue 17), through the installed package:
 *  - a shared model's metadata and tensor infos read with bitnet_gguf_init_from_file, its
 *    tensors filled from the file in the callback (bitnet_tensor_set): the logits equal loading
 *    the file, bit for bit;
 *  - a model built from scratch (bitnet_gguf_init_empty, set_val_*, set_arr_str/_data for the
 *    tokenizer): every tensor F32 by default, one declared F16 with bitnet_gguf_add_tensor; it
 *    decodes, and saved and reloaded it gives the same logits;
 *  - bad input: NULL metadata or callback, missing keys, bad types and ranges: errors, no crash.
 * Usage: api_init_from_user MODEL.gguf OUT_DIR [FILE_PREFIX] */
#include <bitnet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "logits.h"

#define N_PROMPT 3

/* Fills tensors from the model file the metadata was read from. */
struct from_file {
  FILE *f;
  const struct bitnet_gguf_context *meta;
  int calls, bad;
};

static void fill_from_file(struct bitnet_tensor *t, void *ud) {
  struct from_file *s = ud;
  s->calls++;
  int64_t id = bitnet_gguf_find_tensor(s->meta, t->name);
  size_t size = id >= 0 ? bitnet_gguf_get_tensor_size(s->meta, id) : 0;
  if (id < 0 || size != t->size || size != bitnet_tensor_nbytes(t) ||
      t->type != bitnet_gguf_get_tensor_type(s->meta, id)) {
    s->bad++;
    return;
  }
  long at = (long)(bitnet_gguf_get_data_offset(s->meta) + (size_t)bitnet_gguf_get_tensor_offset(s->meta, id));
  void *buf = malloc(size);
  if (!buf || fseek(s->f, at, SEEK_SET) != 0 || fread(buf, 1, size, s->f) != size) {
    s->bad++;
  } else {
    bitnet_tensor_set(t, buf, 0, size);
  }
  free(buf);
}

/* Fills F32 tensors with fixed pseudo-random values (norms: 1), others with zeros. */
struct synth {
  int calls, f32, f16, bad;
  unsigned state;
};

static void fill_synthetic(struct bitnet_tensor *t, void *ud) {
  struct synth *s = ud;
  s->calls++;
  if (t->nb[1] != t->nb[0] * (size_t)t->ne[0] || bitnet_tensor_nelements(t) * (int64_t)t->nb[0] != (int64_t)t->size) {
    s->bad++;
  }
  if (t->type == BITNET_GGML_TYPE_F32) {
    s->f32++;
    float *x = t->data;
    int norm = strstr(t->name, "norm") != NULL;
    for (int64_t i = 0; i < bitnet_tensor_nelements(t); i++) {
      s->state = s->state * 1664525u + 1013904223u;
      x[i] = norm ? 1.0f : ((float)(s->state >> 8) / 16777216.0f - 0.5f) * 0.2f;
    }
  } else if (t->type == BITNET_GGML_TYPE_F16) {
    s->f16++;
    memset(t->data, 0, t->size);
  } else {
    s->bad++;
  }
}

#define N_WORDS 8
#define N_TOKENS (3 + 256 + N_WORDS)

/* Metadata of a small bitnet-b1.58 model with an SPM vocabulary, built key by key. */
static struct bitnet_gguf_context *scratch_metadata(void) {
  struct bitnet_gguf_context *c = bitnet_gguf_init_empty();
  bitnet_gguf_set_val_str(c, "general.architecture", "bitnet-b1.58");
  bitnet_gguf_set_val_str(c, "general.name", "from-scratch");
  bitnet_gguf_set_val_u32(c, "bitnet-b1.58.context_length", 64);
  bitnet_gguf_set_val_u32(c, "bitnet-b1.58.embedding_length", 64);
  bitnet_gguf_set_val_u32(c, "bitnet-b1.58.block_count", 1);
  bitnet_gguf_set_val_u32(c, "bitnet-b1.58.feed_forward_length", 128);
  bitnet_gguf_set_val_u32(c, "bitnet-b1.58.attention.head_count", 2);
  bitnet_gguf_set_val_u32(c, "bitnet-b1.58.attention.head_count_kv", 1);
  bitnet_gguf_set_val_f32(c, "bitnet-b1.58.attention.layer_norm_rms_epsilon", 1e-5f);
  bitnet_gguf_set_val_f32(c, "bitnet-b1.58.rope.freq_base", 10000.0f);
  bitnet_gguf_set_val_str(c, "tokenizer.ggml.model", "llama");
  static char bytes[256][8];
  /* "\xe2\x96\x81" is U+2581, SentencePiece's space. */
#define SP "\xe2\x96\x81"
  static const char *words[N_WORDS] = {SP "the", SP "quick", SP "brown", SP "fox", SP, "the", "ing", SP "a"};
#undef SP
  const char *tokens[N_TOKENS];
  float scores[N_TOKENS];
  int32_t types[N_TOKENS];
  tokens[0] = "<unk>";
  tokens[1] = "<s>";
  tokens[2] = "</s>";
  types[0] = 2;
  types[1] = types[2] = 3;
  for (int i = 0; i < 256; i++) {
    snprintf(bytes[i], sizeof bytes[i], "<0x%02X>", i);
    tokens[3 + i] = bytes[i];
    types[3 + i] = 6;
  }
  for (int i = 0; i < N_WORDS; i++) {
    tokens[259 + i] = words[i];
    types[259 + i] = 1;
  }
  for (int i = 0; i < N_TOKENS; i++) scores[i] = i < 259 ? 0.0f : -(float)i;
  bitnet_gguf_set_arr_str(c, "tokenizer.ggml.tokens", tokens, N_TOKENS);
  bitnet_gguf_set_arr_data(c, "tokenizer.ggml.scores", BITNET_GGUF_TYPE_FLOAT32, scores, N_TOKENS);
  bitnet_gguf_set_arr_data(c, "tokenizer.ggml.token_type", BITNET_GGUF_TYPE_INT32, types, N_TOKENS);
  bitnet_gguf_set_val_u32(c, "tokenizer.ggml.bos_token_id", 1);
  bitnet_gguf_set_val_u32(c, "tokenizer.ggml.eos_token_id", 2);
  bitnet_gguf_set_val_u32(c, "tokenizer.ggml.unknown_token_id", 0);
  bitnet_gguf_set_val_bool(c, "tokenizer.ggml.add_bos_token", true);
  return c;
}

static void from_file(const char *path) {
  struct bitnet_model_params mp = bitnet_model_default_params();
  struct bitnet_gguf_context *meta = bitnet_gguf_init_from_file(path);
  CHECK(meta != NULL);
  if (!meta) return;
  CHECK(bitnet_gguf_get_n_tensors(meta) > 0 && bitnet_gguf_get_n_kv(meta) > 0);
  int64_t arch = bitnet_gguf_find_key(meta, "general.architecture");
  CHECK(arch >= 0 && strcmp(bitnet_gguf_get_key(meta, arch), "general.architecture") == 0);
  CHECK(bitnet_gguf_find_key(meta, "no.such.key") == -1);
  CHECK(bitnet_gguf_get_data_offset(meta) > 0);
  struct from_file s = {fopen(path, "rb"), meta, 0, 0};
  CHECK(s.f != NULL);
  if (!s.f) return;
  struct bitnet_model *built = bitnet_model_init_from_user(meta, fill_from_file, &s, mp);
  CHECK(built != NULL);
  CHECK(s.calls == bitnet_gguf_get_n_tensors(meta) && s.bad == 0);
  fclose(s.f);
  bitnet_gguf_free(meta);
  struct bitnet_model *loaded = bitnet_model_load_from_file(path, mp);
  CHECK(loaded != NULL);
  if (built && loaded) {
    int n_vocab = bitnet_vocab_n_tokens(bitnet_model_get_vocab(loaded));
    CHECK(bitnet_vocab_n_tokens(bitnet_model_get_vocab(built)) == n_vocab);
    CHECK(bitnet_model_ftype(built) == bitnet_model_ftype(loaded));
    const bitnet_token prompt[N_PROMPT] = {1, 450, 4996};
    float *a = last_logits(built, prompt, N_PROMPT), *b = last_logits(loaded, prompt, N_PROMPT);
    CHECK(a && b && memcmp(a, b, sizeof(float) * (size_t)n_vocab) == 0);
    free(a);
    free(b);
  }
  bitnet_model_free(built);
  bitnet_model_free(loaded);
}

static void from_scratch(const char *saved) {
  struct bitnet_model_params mp = bitnet_model_default_params();
  struct bitnet_gguf_context *meta = scratch_metadata();
  CHECK(bitnet_gguf_get_n_kv(meta) == 18 && bitnet_gguf_get_n_tensors(meta) == 0);
  /* One tensor declared F16 (a GGUF tensor info), the rest F32 by default. */
  struct bitnet_tensor q;
  memset(&q, 0, sizeof q);
  strcpy(q.name, "blk.0.attn_q.weight");
  q.type = BITNET_GGML_TYPE_F16;
  q.ne[0] = 64;
  q.ne[1] = 64;
  q.ne[2] = q.ne[3] = 1;
  bitnet_gguf_add_tensor(meta, &q);
  CHECK(bitnet_gguf_get_n_tensors(meta) == 1);
  CHECK(bitnet_gguf_get_tensor_type(meta, 0) == BITNET_GGML_TYPE_F16);
  CHECK(bitnet_gguf_get_tensor_size(meta, 0) == 64 * 64 * 2);
  CHECK(strcmp(bitnet_gguf_get_tensor_name(meta, 0), "blk.0.attn_q.weight") == 0);
  struct synth s = {0, 0, 0, 0, 12345u};
  struct bitnet_model *m = bitnet_model_init_from_user(meta, fill_synthetic, &s, mp);
  CHECK(m != NULL);
  CHECK(s.calls == 13 && s.f32 == 12 && s.f16 == 1 && s.bad == 0);
  bitnet_gguf_free(meta);
  if (!m) return;
  CHECK(bitnet_model_n_layer(m) == 1 && bitnet_model_n_embd(m) == 64);
  CHECK(bitnet_vocab_n_tokens(bitnet_model_get_vocab(m)) == N_TOKENS);
  const bitnet_token prompt[N_PROMPT] = {1, 259, 262};
  float *a = last_logits(m, prompt, N_PROMPT);
  CHECK(a != NULL);
  int finite = 1, varied = 0;
  for (int i = 0; a && i < N_TOKENS; i++) {
    finite &= isfinite(a[i]) != 0;
    varied |= a[i] != a[0];
  }
  CHECK(finite && varied);
  /* A regular model: saved and reloaded, the same logits. */
  bitnet_model_save_to_file(m, saved);
  CHECK(bitnet_last_error() == NULL);
  struct bitnet_model *r = bitnet_model_load_from_file(saved, mp);
  CHECK(r != NULL);
  if (r) {
    float *b = last_logits(r, prompt, N_PROMPT);
    CHECK(a && b && memcmp(a, b, sizeof(float) * N_TOKENS) == 0);
    free(b);
    bitnet_model_free(r);
  }
  remove(saved);
  free(a);
  bitnet_model_free(m);
}

static void bad_input(const char *path) {
  struct bitnet_model_params mp = bitnet_model_default_params();
  struct synth s = {0, 0, 0, 0, 1u};
  CHECK(bitnet_model_init_from_user(NULL, fill_synthetic, &s, mp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  struct bitnet_gguf_context *meta = scratch_metadata();
  CHECK(bitnet_model_init_from_user(meta, NULL, &s, mp) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  /* A required key missing: named in the message; the callback never ran. */
  CHECK(bitnet_gguf_remove_key(meta, "bitnet-b1.58.embedding_length") >= 0);
  CHECK(bitnet_gguf_remove_key(meta, "bitnet-b1.58.embedding_length") == -1);
  CHECK(bitnet_model_init_from_user(meta, fill_synthetic, &s, mp) == NULL);
  CHECK(bitnet_last_error() && strstr(bitnet_last_error(), "embedding_length") != NULL);
  bitnet_clear_error();
  CHECK(s.calls == 0);
  bitnet_gguf_free(meta);
  meta = bitnet_gguf_init_empty();
  CHECK(bitnet_model_init_from_user(meta, fill_synthetic, &s, mp) == NULL);
  CHECK(bitnet_last_error() && strstr(bitnet_last_error(), "general.architecture") != NULL);
  bitnet_clear_error();
  /* Builder misuse: errors with a message, the context unchanged. */
  bitnet_gguf_set_val_u32(NULL, "k", 1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_gguf_set_val_u32(meta, NULL, 1);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_gguf_set_val_str(meta, "k", NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  int32_t xs[2] = {1, 2};
  bitnet_gguf_set_arr_data(meta, "k", BITNET_GGUF_TYPE_STRING, xs, 2);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_gguf_set_arr_data(meta, "k", BITNET_GGUF_TYPE_INT32, NULL, 2);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  const char *strs[2] = {"a", NULL};
  bitnet_gguf_set_arr_str(meta, "k", strs, 2);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_gguf_get_n_kv(meta) == 0);
  CHECK(bitnet_gguf_get_key(meta, 0) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  struct bitnet_tensor t;
  memset(&t, 0, sizeof t);
  strcpy(t.name, "x");
  t.type = 12; /* Q4_K: not a bitnet type */
  t.ne[0] = 256;
  t.ne[1] = t.ne[2] = t.ne[3] = 1;
  bitnet_gguf_add_tensor(meta, &t);
  CHECK_FAILED_WITH(BITNET_ERR_UNSUPPORTED);
  t.type = BITNET_GGML_TYPE_Q8_0;
  t.ne[0] = 33; /* not whole blocks */
  bitnet_gguf_add_tensor(meta, &t);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  t.ne[0] = 0;
  bitnet_gguf_add_tensor(meta, &t);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_gguf_get_n_tensors(meta) == 0);
  CHECK(bitnet_gguf_get_tensor_name(meta, 0) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_gguf_set_tensor_type(meta, "x", BITNET_GGML_TYPE_F32);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  /* bitnet_tensor_set outside the tensor. */
  float data[4] = {0};
  t.type = BITNET_GGML_TYPE_F32;
  t.ne[0] = 4;
  t.data = data;
  t.size = sizeof data;
  CHECK(bitnet_tensor_nbytes(&t) == sizeof data);
  float two[2] = {1, 2};
  bitnet_tensor_set(&t, two, 3 * sizeof(float), sizeof two);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  bitnet_tensor_set(&t, two, sizeof(float), sizeof two);
  CHECK(bitnet_last_error() == NULL && data[1] == 1 && data[2] == 2);
  CHECK(bitnet_tensor_nbytes(NULL) == 0);
  bitnet_clear_error();
  bitnet_gguf_free(meta);
  bitnet_gguf_free(NULL);
  CHECK(bitnet_gguf_init_from_file(NULL) == NULL);
  CHECK_FAILED_WITH(BITNET_ERR_INVALID_ARG);
  CHECK(bitnet_gguf_init_from_file("/nonexistent/model.gguf") == NULL);
  CHECK(bitnet_last_error() != NULL);
  bitnet_clear_error();
  /* vocab_only: the vocabulary of the metadata, no tensors, no callback. */
  meta = bitnet_gguf_init_from_file(path);
  mp.vocab_only = true;
  struct bitnet_model *v = bitnet_model_init_from_user(meta, NULL, NULL, mp);
  CHECK(v != NULL && bitnet_vocab_n_tokens(bitnet_model_get_vocab(v)) > 0);
  bitnet_model_free(v);
  bitnet_gguf_free(meta);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL.gguf OUT_DIR [FILE_PREFIX]\n", argv[0]);
    return 2;
  }
  char saved[4096];
  snprintf(saved, sizeof saved, "%s/%s-from-scratch.gguf", argv[2], argc > 3 ? argv[3] : "user");
  from_file(argv[1]);
  from_scratch(saved);
  bad_input(argv[1]);
  CHECK_DONE();
}
