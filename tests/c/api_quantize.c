/* bitnet_model_quantize and bitnet_model_quantize_default_params (llama.h's quantization,
 * issue 17), through the installed package:
 *  - the defaults are llama.cpp's;
 *  - a TQ2_0 model dequantized to ALL_F32 (allow_requantize) and quantized back to TQ2_0 gives
 *    the original logits bit for bit; without allow_requantize it is refused;
 *  - an F32/F16 model quantized to Q8_0 loads as file type 7 and decodes;
 *  - dry_run writes nothing; kv_overrides and prune_layers reach the output;
 *  - bad input (NULL arguments, a missing or malformed input, an unsupported file type or
 *    tensor type, imatrix / tt_overrides, an unwritable output): 1, a message, no file.
 * Usage: api_quantize F32_MODEL.gguf TQ2_0_MODEL.gguf OUT_DIR [FILE_PREFIX]
 * (runs that may overlap in OUT_DIR, e.g. plain and under valgrind, use different prefixes) */
#include <bitnet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "logits.h"

#define N_PROMPT 4

/* The logits of the last token of a fixed prompt for the model at `path` (n_vocab floats,
 * malloc'ed), or NULL. */
static float *logits_of(const char *path, int *n_vocab_out) {
  struct bitnet_model *m = bitnet_model_load_from_file(path, bitnet_model_default_params());
  CHECK(m != NULL);
  if (!m) return NULL;
  *n_vocab_out = bitnet_vocab_n_tokens(bitnet_model_get_vocab(m));
  const bitnet_token prompt[N_PROMPT] = {1, 450, 4996, 17354};
  float *out = last_logits(m, prompt, N_PROMPT);
  bitnet_model_free(m);
  return out;
}

static int exists(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f) fclose(f);
  return f != NULL;
}

static int ftype_of(const char *path) {
  struct bitnet_model_params mp = bitnet_model_default_params();
  mp.vocab_only = true;
  struct bitnet_model *m = bitnet_model_load_from_file(path, mp);
  CHECK(m != NULL);
  int f = m ? bitnet_model_ftype(m) : -1;
  bitnet_model_free(m);
  return f;
}

/* The call failed: 1, a message, and no file at `out`. */
#define CHECK_REFUSED(call, out)                                  \
  do {                                                            \
    CHECK((call) == 1);                                           \
    CHECK(bitnet_last_status() != BITNET_OK);                     \
    CHECK(bitnet_last_error() != NULL);                           \
    bitnet_clear_error();                                         \
    CHECK(!exists(out));                                          \
  } while (0)

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s F32_MODEL TQ2_0_MODEL OUT_DIR\n", argv[0]);
    return 2;
  }
  const char *f32_model = argv[1], *tq_model = argv[2], *dir = argv[3];
  const char *pre = argc > 4 ? argv[4] : "quant";
  char as_f32[4096], back[4096], q8[4096], never[4096], garbage[4096], pruned[4096];
  snprintf(as_f32, sizeof as_f32, "%s/%s-tq2-as-f32.gguf", dir, pre);
  snprintf(back, sizeof back, "%s/%s-tq2-back.gguf", dir, pre);
  snprintf(q8, sizeof q8, "%s/%s-q8_0.gguf", dir, pre);
  snprintf(never, sizeof never, "%s/%s-never.gguf", dir, pre);
  snprintf(garbage, sizeof garbage, "%s/%s-garbage.gguf", dir, pre);
  snprintf(pruned, sizeof pruned, "%s/%s-pruned.gguf", dir, pre);
  remove(never);

  /* llama.cpp's defaults. */
  struct bitnet_model_quantize_params p = bitnet_model_quantize_default_params();
  CHECK(p.nthread == 0 && p.ftype == BITNET_FTYPE_MOSTLY_Q8_0);
  CHECK(p.output_tensor_type == BITNET_GGML_TYPE_COUNT && p.token_embedding_type == BITNET_GGML_TYPE_COUNT);
  CHECK(!p.allow_requantize && p.quantize_output_tensor && !p.only_copy && !p.pure && !p.keep_split && !p.dry_run);
  CHECK(p.imatrix == NULL && p.kv_overrides == NULL && p.tt_overrides == NULL && p.prune_layers == NULL);
  CHECK(p.max_buf_size == 0);

  /* TQ2_0 -> F32 -> TQ2_0 is lossless; the embedding (Q6_K) is kept as it is. */
  p.nthread = 2;
  p.ftype = BITNET_FTYPE_ALL_F32;
  p.token_embedding_type = BITNET_GGML_TYPE_Q6_K;
  CHECK_REFUSED(bitnet_model_quantize(tq_model, as_f32, &p), as_f32);
  p.allow_requantize = true;
  CHECK(bitnet_model_quantize(tq_model, as_f32, &p) == 0);
  CHECK(ftype_of(as_f32) == BITNET_FTYPE_ALL_F32);
  p.allow_requantize = false;
  p.ftype = BITNET_FTYPE_MOSTLY_TQ2_0;
  CHECK(bitnet_model_quantize(as_f32, back, &p) == 0);
  CHECK(ftype_of(back) == BITNET_FTYPE_MOSTLY_TQ2_0);
  int n_vocab = 0, n_vocab2 = 0;
  float *want = logits_of(tq_model, &n_vocab);
  float *got = logits_of(back, &n_vocab2);
  CHECK(want && got && n_vocab == n_vocab2);
  if (want && got) CHECK(memcmp(want, got, sizeof(float) * (size_t)n_vocab) == 0);
  free(want);
  free(got);
  remove(as_f32);
  remove(back);

  /* The float model to Q8_0 with the defaults, a metadata override on the way. */
  p = bitnet_model_quantize_default_params();
  p.nthread = 2;
  struct bitnet_model_kv_override kv[2];
  memset(kv, 0, sizeof kv);
  kv[0].tag = BITNET_KV_OVERRIDE_TYPE_STR;
  strcpy(kv[0].key, "general.name");
  strcpy(kv[0].value.val_str, "quantized-tiny");
  p.kv_overrides = kv;
  CHECK(bitnet_model_quantize(f32_model, q8, &p) == 0);
  CHECK(ftype_of(q8) == BITNET_FTYPE_MOSTLY_Q8_0);
  float *l = logits_of(q8, &n_vocab);
  CHECK(l != NULL);
  for (int i = 0; l && i < n_vocab; i++) {
    if (!isfinite(l[i])) {
      CHECK(isfinite(l[i]));
      break;
    }
  }
  free(l);
  struct bitnet_model_params vp = bitnet_model_default_params();
  vp.vocab_only = true;
  struct bitnet_model *m = bitnet_model_load_from_file(q8, vp);
  CHECK(m != NULL);
  char name[64] = {0};
  CHECK(m && bitnet_model_meta_val_str(m, "general.name", name, sizeof name) > 0);
  CHECK(strcmp(name, "quantized-tiny") == 0);
  bitnet_model_free(m);
  remove(q8);

  /* A dry run writes nothing; pruning layer 0 leaves one layer. */
  p.kv_overrides = NULL;
  p.dry_run = true;
  CHECK(bitnet_model_quantize(f32_model, never, &p) == 0);
  CHECK(!exists(never));
  p.dry_run = false;
  int32_t prune[] = {0, -1};
  p.prune_layers = prune;
  CHECK(bitnet_model_quantize(f32_model, pruned, &p) == 0);
  m = bitnet_model_load_from_file(pruned, bitnet_model_default_params());
  CHECK(m != NULL && bitnet_model_n_layer(m) == 1);
  bitnet_model_free(m);
  remove(pruned);
  int32_t prune_bad[] = {9, -1};
  p.prune_layers = prune_bad;
  CHECK_REFUSED(bitnet_model_quantize(f32_model, never, &p), never);
  p.prune_layers = NULL;

  /* Bad input. */
  CHECK_REFUSED(bitnet_model_quantize(NULL, never, &p), never);
  CHECK_REFUSED(bitnet_model_quantize(f32_model, NULL, &p), never);
  CHECK_REFUSED(bitnet_model_quantize(f32_model, never, NULL), never);
  CHECK_REFUSED(bitnet_model_quantize("/nonexistent/model.gguf", never, &p), never);
  FILE *g = fopen(garbage, "wb");
  CHECK(g != NULL);
  if (g) {
    fputs("GGUF\x03garbage that is not a model", g);
    fclose(g);
  }
  CHECK_REFUSED(bitnet_model_quantize(garbage, never, &p), never);
  remove(garbage);
  p.ftype = BITNET_FTYPE_MOSTLY_Q4_K_M;
  CHECK_REFUSED(bitnet_model_quantize(f32_model, never, &p), never);
  p.ftype = -3;
  CHECK_REFUSED(bitnet_model_quantize(f32_model, never, &p), never);
  p.ftype = BITNET_FTYPE_MOSTLY_Q8_0;
  p.output_tensor_type = 12; /* Q4_K */
  CHECK_REFUSED(bitnet_model_quantize(f32_model, never, &p), never);
  p.output_tensor_type = BITNET_GGML_TYPE_COUNT;
  float imx[4] = {1, 1, 1, 1};
  struct bitnet_model_imatrix_data im[2] = {{"blk.0.attn_q.weight", imx, 4}, {NULL, NULL, 0}};
  p.imatrix = im;
  CHECK_REFUSED(bitnet_model_quantize(f32_model, never, &p), never);
  p.imatrix = NULL;
  struct bitnet_model_tensor_override tt[2] = {{"attn_.*", BITNET_GGML_TYPE_Q8_0}, {NULL, 0}};
  p.tt_overrides = tt;
  CHECK_REFUSED(bitnet_model_quantize(f32_model, never, &p), never);
  p.tt_overrides = tt + 1; /* an empty list is fine */
  p.dry_run = true;
  CHECK(bitnet_model_quantize(f32_model, never, &p) == 0);
  p.dry_run = false;
  p.tt_overrides = NULL;
  CHECK_REFUSED(bitnet_model_quantize(f32_model, "/nonexistent/dir/out.gguf", &p), never);

  CHECK_DONE();
}
