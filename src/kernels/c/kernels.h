/* Portable C99 kernels of bitnet (the fallback table "c"). Plain C, no intrinsics; must be
 * compiled with -ffp-contract=off so that every float operation rounds exactly where the scalar
 * Rust reference rounds (fmaf only where the reference fuses). Block structs mirror
 * src/tensor/blocks.rs byte for byte; sizes are checked at compile time. */
#ifndef BITNET_KERNELS_H
#define BITNET_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BITNET_QK_K 256

typedef struct { float d; int8_t qs[BITNET_QK_K]; int16_t bsums[BITNET_QK_K / 16]; } bitnet_block_q8_K;
typedef struct { uint8_t qs[64]; uint16_t d; } bitnet_block_tq2_0;
typedef struct { uint8_t qs[48]; uint8_t qh[4]; uint16_t d; } bitnet_block_tq1_0;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } bitnet_block_q6_K;
typedef struct { uint16_t d; int8_t qs[32]; } bitnet_block_q8_0;

/* C99 has no _Static_assert: a negative array size fails the build instead. */
typedef char bitnet_check_q8_K[sizeof(bitnet_block_q8_K) == 292 ? 1 : -1];
typedef char bitnet_check_tq2_0[sizeof(bitnet_block_tq2_0) == 66 ? 1 : -1];
typedef char bitnet_check_tq1_0[sizeof(bitnet_block_tq1_0) == 54 ? 1 : -1];
typedef char bitnet_check_q6_K[sizeof(bitnet_block_q6_K) == 210 ? 1 : -1];
typedef char bitnet_check_q8_0[sizeof(bitnet_block_q8_0) == 34 ? 1 : -1];

/* Shared helpers (common.c; the f16 conversion is inline because it runs per element). */
float bitnet_c_hsum8(const float acc[8]);
float bitnet_c_reduce_4x8(const float acc[4][8]);
int32_t bitnet_c_nearest_int(float x);

/* Matrix kernels: `rows` weight rows of `k` inputs against `n_tok` prepared activation rows;
 * out[r * n_tok + t]. */
void bitnet_c_i2s_matmul(const uint8_t *codes, float w_scale, const int8_t *q,
                         const float *act_scale, const int32_t *act_sum, size_t k, size_t rows,
                         size_t n_tok, float *out);
void bitnet_c_tq2_0_matmul(const bitnet_block_tq2_0 *w, const bitnet_block_q8_K *x, size_t k,
                           size_t rows, size_t n_tok, float *out);
void bitnet_c_tq1_0_matmul(const bitnet_block_tq1_0 *w, const bitnet_block_q8_K *x, size_t k,
                           size_t rows, size_t n_tok, float *out);
void bitnet_c_q6_K_matmul(const bitnet_block_q6_K *w, const bitnet_block_q8_K *x, size_t k,
                          size_t rows, size_t n_tok, float *out);
void bitnet_c_q8_0_matmul(const bitnet_block_q8_0 *w, const bitnet_block_q8_0 *x, size_t k,
                          size_t rows, size_t n_tok, float *out);

/* Float dots (FORWARD.md section 8 orders) and matmuls built on them. */
float bitnet_c_dot_f32_ggml(const float *a, const float *b, size_t n);
float bitnet_c_dot_f16_ggml(const uint16_t *a, const uint16_t *b, size_t n);
float bitnet_c_dot_f16_ggml_wide(const uint16_t *a, const float *b, size_t n);
float bitnet_c_dot_f32_tinyblas(const float *a, const float *b, size_t n);
float bitnet_c_dot_f16_f32_tinyblas(const uint16_t *a, const float *b, size_t n);
void bitnet_c_f32_ggml_matmul(const float *w, const float *x, size_t k, size_t rows, size_t n_tok,
                              float *out);
void bitnet_c_f16_ggml_matmul(const uint16_t *w, const uint16_t *x, size_t k, size_t rows,
                              size_t n_tok, float *out);
void bitnet_c_f32_tinyblas_matmul(const float *w, const float *x, size_t k, size_t rows,
                                  size_t n_tok, float *out);
void bitnet_c_f16_tinyblas_matmul(const uint16_t *w, const float *x, size_t k, size_t rows,
                                  size_t n_tok, float *out);

/* Activation quantization (I2_S.md sections 4 and 6a). */
void bitnet_c_quantize_row_i8(const float *x, size_t n, int8_t *q, float *scale, int32_t *sum);
void bitnet_c_quantize_row_q8_K(const float *x, bitnet_block_q8_K *y, size_t nblocks);

/* Exact f16 -> f32. */
static inline float bitnet_c_f16_to_f32(uint16_t h) {
    /* Exponent and mantissa moved into float position, then scaled by 2^112 (exact: halves
     * have 11 significant bits; a subnormal half becomes a float subnormal whose product is an
     * exact normal). Needs denormals-are-zero off, the C and Rust default. inf / NaN
     * (exponent 31) keep their payload, like the hardware conversion. */
    static const float two_112 = 5.192296858534828e33f; /* 2^112 */
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t em = (uint32_t)(h & 0x7fff) << 13;
    uint32_t bits;
    float f;
    if ((h & 0x7c00) == 0x7c00) {
        bits = sign | 0x7f800000u | em;
    } else {
        memcpy(&f, &em, 4);
        f *= two_112;
        memcpy(&bits, &f, 4);
        bits |= sign;
    }
    memcpy(&f, &bits, 4);
    return f;
}

#endif
