/* Float dot products in the reference's orders (FORWARD.md section 8) and the matmuls built
 * on them. fmaf wherever the reference fuses; every other operation rounds separately
 * (this file must be compiled with -ffp-contract=off). */
#include <math.h>

#include "kernels.h"

/* ggml_vec_dot_f32: 4 x 8 fma lanes over whole 32-element chunks, then the leftovers as
 * sum = fma(a, b, sum) in float after the reduction. */
float bitnet_c_dot_f32_ggml(const float *a, const float *b, size_t n) {
    float acc[4][8] = {{0}};
    size_t np = n & ~(size_t)31, c, i;
    int j, l;
    float sum;
    for (c = 0; c < np; c += 32) {
        for (j = 0; j < 4; j++) {
            for (l = 0; l < 8; l++) {
                i = c + 8 * j + l;
                acc[j][l] = fmaf(a[i], b[i], acc[j][l]);
            }
        }
    }
    sum = bitnet_c_reduce_4x8((const float(*)[8])acc);
    for (i = np; i < n; i++) sum = fmaf(a[i], b[i], sum);
    return sum;
}

/* ggml_vec_dot_f16: same lanes on exactly converted operands; the total is kept in double and
 * the leftover products (exact in float) are added in double, then rounded once. The _wide
 * form takes b already widened to float (its values are f16 values, so the products and sums
 * are the same): attention's grouped query heads. */
#define DOT_F16_GGML(name, BT, CVT_B)                                                  \
    float name(const uint16_t *a, const BT *b, size_t n) {                             \
        float acc[4][8] = {{0}};                                                        \
        size_t np = n & ~(size_t)31, c, i;                                              \
        int j, l;                                                                       \
        double sum;                                                                     \
        for (c = 0; c < np; c += 32) {                                                  \
            for (j = 0; j < 4; j++) {                                                   \
                for (l = 0; l < 8; l++) {                                               \
                    i = c + 8 * j + l;                                                  \
                    acc[j][l] = fmaf(bitnet_c_f16_to_f32(a[i]), CVT_B(b[i]), acc[j][l]); \
                }                                                                       \
            }                                                                           \
        }                                                                               \
        sum = (double)bitnet_c_reduce_4x8((const float(*)[8])acc);                      \
        for (i = np; i < n; i++) {                                                      \
            float p = bitnet_c_f16_to_f32(a[i]) * CVT_B(b[i]);                          \
            sum += (double)p;                                                           \
        }                                                                               \
        return (float)sum;                                                              \
    }

#define AS_FLOAT(v) (v)
DOT_F16_GGML(bitnet_c_dot_f16_ggml, uint16_t, bitnet_c_f16_to_f32)
DOT_F16_GGML(bitnet_c_dot_f16_ggml_wide, float, AS_FLOAT)

/* tinyBLAS: 8 fma lanes in steps of 8, hsum8; leftovers (not a reference case) fma'd after. */
float bitnet_c_dot_f32_tinyblas(const float *a, const float *b, size_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t np = n & ~(size_t)7, c, i;
    int l;
    float sum;
    for (c = 0; c < np; c += 8) {
        for (l = 0; l < 8; l++) acc[l] = fmaf(a[c + l], b[c + l], acc[l]);
    }
    sum = bitnet_c_hsum8(acc);
    for (i = np; i < n; i++) sum = fmaf(a[i], b[i], sum);
    return sum;
}

float bitnet_c_dot_f16_f32_tinyblas(const uint16_t *a, const float *b, size_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t np = n & ~(size_t)7, c, i;
    int l;
    float sum;
    for (c = 0; c < np; c += 8) {
        for (l = 0; l < 8; l++) acc[l] = fmaf(bitnet_c_f16_to_f32(a[c + l]), b[c + l], acc[l]);
    }
    sum = bitnet_c_hsum8(acc);
    for (i = np; i < n; i++) sum = fmaf(bitnet_c_f16_to_f32(a[i]), b[i], sum);
    return sum;
}

#define FLOAT_MATMUL(NAME, WT, XT, DOT)                                                     \
    void NAME(const WT *w, const XT *x, size_t k, size_t rows, size_t n_tok, float *out) { \
        size_t r, t;                                                                        \
        for (r = 0; r < rows; r++)                                                          \
            for (t = 0; t < n_tok; t++) out[r * n_tok + t] = DOT(w + r * k, x + t * k, k);  \
    }

FLOAT_MATMUL(bitnet_c_f32_ggml_matmul, float, float, bitnet_c_dot_f32_ggml)
FLOAT_MATMUL(bitnet_c_f16_ggml_matmul, uint16_t, uint16_t, bitnet_c_dot_f16_ggml)
FLOAT_MATMUL(bitnet_c_f32_tinyblas_matmul, float, float, bitnet_c_dot_f32_tinyblas)
FLOAT_MATMUL(bitnet_c_f16_tinyblas_matmul, uint16_t, float, bitnet_c_dot_f16_f32_tinyblas)
