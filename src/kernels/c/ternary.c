/* Integer-dot kernels: I2_S x int8 rows (I2_S.md section 5), TQ2_0 / TQ1_0 / Q6_K x Q8_K
 * (section 6a: 8 integer lanes per block, lane p = elements with (e % 32) / 4 == p) and
 * Q8_0 x Q8_0. The integer parts are exact; the float parts round exactly like the Rust
 * scalar reference. */
#include <math.h>

#include "kernels.h"

/* Exact integer dot of one I2_S row with int8 values: per 128-element block, byte j holds
 * elements j, j+32, j+64, j+96 at shifts 6, 4, 2, 0. Written so compilers can vectorize it. */
static int32_t i2s_dot(const uint8_t *row, const int8_t *q, size_t k) {
    int32_t acc = 0;
    size_t b;
    int j;
    for (b = 0; b < k / 128; b++) {
        const uint8_t *c = row + 32 * b;
        const int8_t *x = q + 128 * b;
        int32_t s = 0;
        for (j = 0; j < 32; j++) {
            s += ((c[j] >> 6) & 3) * x[j] + ((c[j] >> 4) & 3) * x[j + 32] +
                 ((c[j] >> 2) & 3) * x[j + 64] + (c[j] & 3) * x[j + 96];
        }
        acc += s;
    }
    return acc;
}

void bitnet_c_i2s_matmul(const uint8_t *codes, float w_scale, const int8_t *q,
                         const float *act_scale, const int32_t *act_sum, size_t k, size_t rows,
                         size_t n_tok, float *out) {
    size_t r, t;
    for (r = 0; r < rows; r++) {
        for (t = 0; t < n_tok; t++) {
            int32_t dot = i2s_dot(codes + r * (k / 4), q + t * k, k);
            /* subtract, divide by the act scale, multiply by the weight scale (section 5) */
            out[r * n_tok + t] = (((float)dot - (float)act_sum[t]) / act_scale[t]) * w_scale;
        }
    }
}

static void tq2_0_codes(const bitnet_block_tq2_0 *b, uint8_t c[BITNET_QK_K]) {
    int e;
    for (e = 0; e < BITNET_QK_K; e++) {
        /* element j*4 + l*32 + m is bits 2l of qs[j + m], j in {0, 32} */
        uint8_t byte = b->qs[32 * (e / 128) + e % 32];
        c[e] = (byte >> (2 * ((e % 128) / 32))) & 3;
    }
}

static uint8_t trit(uint8_t byte, int n) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    uint8_t q = (uint8_t)(byte * pow3[n]);
    return (uint8_t)(((uint16_t)q * 3) >> 8);
}

static void tq1_0_codes(const bitnet_block_tq1_0 *b, uint8_t c[BITNET_QK_K]) {
    int n, m, j;
    for (n = 0; n < 5; n++) {
        for (m = 0; m < 32; m++) c[n * 32 + m] = trit(b->qs[m], n);
        for (m = 0; m < 16; m++) c[160 + n * 16 + m] = trit(b->qs[32 + m], n);
    }
    for (n = 0; n < 4; n++) {
        for (j = 0; j < 4; j++) c[240 + n * 4 + j] = trit(b->qh[j], n);
    }
}

/* Lanes of one ternary block: code*q per lane, minus the sum of q over [32p, 32p+32). */
static void tq_lanes(const uint8_t c[BITNET_QK_K], const int8_t q[BITNET_QK_K], int32_t lanes[8]) {
    int e, p;
    for (p = 0; p < 8; p++) lanes[p] = 0;
    for (e = 0; e < BITNET_QK_K; e++) lanes[(e % 32) / 4] += (int32_t)c[e] * q[e];
    for (e = 0; e < BITNET_QK_K; e++) lanes[e / 32] -= q[e];
}

/* acc[p] = acc[p] + lane_p * D with D = d_x * d_w (multiply, then add: no fma). */
#define TQ_MATMUL(NAME, BLOCK, DECODE)                                                        \
    void NAME(const BLOCK *w, const bitnet_block_q8_K *x, size_t k, size_t rows, size_t n_tok, \
              float *out) {                                                                   \
        size_t nb = k / BITNET_QK_K, r, t, i;                                                 \
        uint8_t c[BITNET_QK_K];                                                               \
        int32_t lanes[8];                                                                     \
        int p;                                                                                \
        for (r = 0; r < rows; r++) {                                                          \
            for (t = 0; t < n_tok; t++) {                                                     \
                float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                      \
                for (i = 0; i < nb; i++) {                                                    \
                    const BLOCK *wb = &w[r * nb + i];                                         \
                    const bitnet_block_q8_K *xb = &x[t * nb + i];                             \
                    float dd = xb->d * bitnet_c_f16_to_f32(wb->d);                            \
                    DECODE(wb, c);                                                            \
                    tq_lanes(c, xb->qs, lanes);                                               \
                    for (p = 0; p < 8; p++) {                                                 \
                        float prod = (float)lanes[p] * dd;                                    \
                        acc[p] = acc[p] + prod;                                               \
                    }                                                                         \
                }                                                                             \
                out[r * n_tok + t] = bitnet_c_hsum8(acc);                                     \
            }                                                                                 \
        }                                                                                     \
    }

TQ_MATMUL(bitnet_c_tq2_0_matmul, bitnet_block_tq2_0, tq2_0_codes)
TQ_MATMUL(bitnet_c_tq1_0_matmul, bitnet_block_tq1_0, tq1_0_codes)

static void q6k_values(const bitnet_block_q6_K *b, int8_t v[BITNET_QK_K]) {
    int h, l;
    for (h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h;
        const uint8_t *qh = b->qh + 32 * h;
        int8_t *y = v + 128 * h;
        for (l = 0; l < 32; l++) {
            y[l] = (int8_t)(((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32);
            y[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            y[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            y[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

/* Q6_K: lane p = sum sc[e/16] * q6_e * q_e over (e % 32) / 4 == p; acc = fma(D, lane, acc). */
void bitnet_c_q6_K_matmul(const bitnet_block_q6_K *w, const bitnet_block_q8_K *x, size_t k,
                          size_t rows, size_t n_tok, float *out) {
    size_t nb = k / BITNET_QK_K, r, t, i;
    int8_t v[BITNET_QK_K];
    int e, p;
    for (r = 0; r < rows; r++) {
        for (t = 0; t < n_tok; t++) {
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (i = 0; i < nb; i++) {
                const bitnet_block_q6_K *wb = &w[r * nb + i];
                const bitnet_block_q8_K *xb = &x[t * nb + i];
                int32_t lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                float dd = xb->d * bitnet_c_f16_to_f32(wb->d);
                q6k_values(wb, v);
                for (e = 0; e < BITNET_QK_K; e++) {
                    lanes[(e % 32) / 4] += (int32_t)wb->scales[e / 16] * v[e] * xb->qs[e];
                }
                for (p = 0; p < 8; p++) acc[p] = fmaf(dd, (float)lanes[p], acc[p]);
            }
            out[r * n_tok + t] = bitnet_c_hsum8(acc);
        }
    }
}

/* Q8_0: lane p = elements 4p..4p+3 of the block; acc = fma(d_w * d_x, lane, acc). */
void bitnet_c_q8_0_matmul(const bitnet_block_q8_0 *w, const bitnet_block_q8_0 *x, size_t k,
                          size_t rows, size_t n_tok, float *out) {
    size_t nb = k / 32, r, t, i;
    int e, p;
    for (r = 0; r < rows; r++) {
        for (t = 0; t < n_tok; t++) {
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (i = 0; i < nb; i++) {
                const bitnet_block_q8_0 *wb = &w[r * nb + i];
                const bitnet_block_q8_0 *xb = &x[t * nb + i];
                float dd = bitnet_c_f16_to_f32(wb->d) * bitnet_c_f16_to_f32(xb->d);
                for (p = 0; p < 8; p++) {
                    int32_t lane = 0;
                    for (e = 4 * p; e < 4 * p + 4; e++) lane += (int32_t)wb->qs[e] * xb->qs[e];
                    acc[p] = fmaf(dd, (float)lane, acc[p]);
                }
            }
            out[r * n_tok + t] = bitnet_c_hsum8(acc);
        }
    }
}
