/*
 * Model files whose metadata and tensor directory disagree (issue 19, items 3 and 8): each is
 * a copy of a tiny model with one field of its header changed in place, and each must be
 * refused (NULL, a documented status, a message naming the key or tensor), where before they
 * loaded: `block_count = 1` with `blk.1.*` present, `token_embd` relabelled as I2_S, a token of
 * type 99, `context_length` of 2^31 (n_ctx_train would be -1) and 2^32-1 (a context of n_ctx 0
 * would round it to 0 cells). The unchanged copy loads.
 *
 *   hostile_models MODEL   (tiny-spm-tq2_0-q6k.gguf: bitnet-b1.58, SPM vocabulary)
 */
#define _GNU_SOURCE
#include "bitnet.h"
#include "check.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

static void quiet(enum bitnet_log_level level, const char *text, void *user_data) {
  (void)level;
  (void)text;
  (void)user_data;
}

static uint8_t *read_all(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *d = malloc((size_t)size);
  if (d && fread(d, 1, (size_t)size, f) != (size_t)size) {
    free(d);
    d = NULL;
  }
  fclose(f);
  *n = (size_t)size;
  return d;
}

static uint64_t rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static uint32_t rd32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* Size of one value of GGUF type `t` at p (arrays included); 0 if unknown. */
static size_t value_size(const uint8_t *p, uint32_t t) {
  static const size_t scalar[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  if (t == 8) return 8 + (size_t)rd64(p);
  if (t == 9) {
    uint32_t et = rd32(p);
    uint64_t n = rd64(p + 4);
    size_t off = 12;
    if (et == 8 || et == 9) {
      for (uint64_t i = 0; i < n; i++) off += value_size(p + off, et);
      return off;
    }
    return et < 13 ? off + (size_t)n * scalar[et] : 0;
  }
  return t < 13 ? scalar[t] : 0;
}

/* Offset of the value (after its type) of metadata key `key`; 0 if absent. The tensor
 * directory starts at *dir. */
static size_t find_key(const uint8_t *d, const char *key, size_t *dir) {
  uint64_t n_kv = rd64(d + 16);
  size_t off = 24, found = 0;
  for (uint64_t i = 0; i < n_kv; i++) {
    uint64_t len = rd64(d + off);
    const char *k = (const char *)d + off + 8;
    off += 8 + (size_t)len;
    uint32_t t = rd32(d + off);
    off += 4;
    if (len == strlen(key) && memcmp(k, key, (size_t)len) == 0) found = off;
    off += value_size(d + off, t);
  }
  *dir = off;
  return found;
}

/* Offset of the type field of tensor `name`; 0 if absent. */
static size_t find_tensor_type(const uint8_t *d, const char *name) {
  size_t off;
  find_key(d, "", &off);
  uint64_t n_t = rd64(d + 8);
  for (uint64_t i = 0; i < n_t; i++) {
    uint64_t len = rd64(d + off);
    int match = len == strlen(name) && memcmp(d + off + 8, name, (size_t)len) == 0;
    off += 8 + (size_t)len;
    uint32_t n_dims = rd32(d + off);
    off += 4 + 8 * (size_t)n_dims;
    if (match) return off;
    off += 4 + 8;
  }
  return 0;
}

static const char *tmp_path = "hostile_model.gguf";

/* Writes d and loads it: NULL expected with `status` and a message containing `needle`. */
static void refused(const uint8_t *d, size_t n, enum bitnet_status status, const char *needle) {
  FILE *f = fopen(tmp_path, "wb");
  CHECK(f && fwrite(d, 1, n, f) == n);
  if (f) fclose(f);
  bitnet_clear_error();
  struct bitnet_model *m = bitnet_model_load_from_file(tmp_path, bitnet_model_default_params());
  CHECK(m == NULL);
  CHECK(bitnet_last_status() == status);
  const char *msg = bitnet_last_error();
  CHECK(msg && strstr(msg, needle));
  if (msg) printf("refused: %s\n", msg);
  bitnet_model_free(m);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL\n", argv[0]);
    return 2;
  }
  bitnet_log_set(quiet, NULL);
  size_t n;
  uint8_t *d = read_all(argv[1], &n);
  CHECK(d != NULL);
  if (!d) CHECK_DONE();
  size_t dir;
  size_t blocks = find_key(d, "bitnet-b1.58.block_count", &dir);
  size_t ctx_len = find_key(d, "bitnet-b1.58.context_length", &dir);
  size_t types = find_key(d, "tokenizer.ggml.token_type", &dir);
  size_t embd_type = find_tensor_type(d, "token_embd.weight");
  CHECK(blocks && ctx_len && types && embd_type);
  CHECK(rd32(d + blocks) == 2 && rd32(d + types) == 5 /* INT32 array */);

  /* The unchanged copy loads. */
  {
    FILE *f = fopen(tmp_path, "wb");
    CHECK(f && fwrite(d, 1, n, f) == n);
    if (f) fclose(f);
    struct bitnet_model *m = bitnet_model_load_from_file(tmp_path, bitnet_model_default_params());
    CHECK(m != NULL);
    CHECK(bitnet_model_n_ctx_train(m) == 512);
    bitnet_model_free(m);
  }

  wr32(d + blocks, 1);
  refused(d, n, BITNET_ERR_FORMAT, "bitnet-b1.58.block_count = 1");
  wr32(d + blocks, 2);

  uint32_t old_type = rd32(d + embd_type);
  wr32(d + embd_type, 36); /* I2_S: smaller than the Q6_K data, so it still fits the file */
  refused(d, n, BITNET_ERR_UNSUPPORTED, "token_embd.weight");
  wr32(d + embd_type, old_type);

  uint8_t *t300 = d + types + 12 + 4 * 300;
  uint32_t old_tt = rd32(t300);
  wr32(t300, 99);
  refused(d, n, BITNET_ERR_METADATA, "tokenizer.ggml.token_type");
  wr32(t300, old_tt);

  wr32(d + ctx_len, 0x80000000u);
  refused(d, n, BITNET_ERR_METADATA, "context_length");
  wr32(d + ctx_len, 0xFFFFFFFFu);
  refused(d, n, BITNET_ERR_METADATA, "context_length");

  unlink(tmp_path);
  free(d);
  CHECK_DONE();
}
