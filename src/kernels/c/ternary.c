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
    int j, l, m;
    /* element j*4 + l*32 + m is bits 2l of qs[j + m], j in {0, 32} */
    for (j = 0; j < 2; j++)
        for (l = 0; l < 4; l++)
            for (m = 0; m < 32; m++) c[128 * j + 32 * l + m] = (b->qs[32 * j + m] >> (2 * l)) & 3;
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

/* Lanes of one ternary block: code*q per lane p (elements with (e % 32) / 4 == p), minus the
 * sum of q over [32p, 32p+32). */
static void tq_lanes(const uint8_t c[BITNET_QK_K], const int8_t q[BITNET_QK_K], int32_t lanes[8]) {
    int g, p, i;
    for (p = 0; p < 8; p++) lanes[p] = 0;
    for (g = 0; g < 8; g++) {
        const uint8_t *cg = c + 32 * g;
        const int8_t *qg = q + 32 * g;
        int32_t qsum = 0;
        for (p = 0; p < 8; p++) {
            int32_t s = 0;
            for (i = 0; i < 4; i++) s += (int32_t)cg[4 * p + i] * qg[4 * p + i];
            lanes[p] += s;
        }
        for (i = 0; i < 32; i++) qsum += qg[i];
        lanes[g] -= qsum;
    }
}

/* Token groups: each weight block is decoded once and used for up to 4 activation rows. */
#define TOKEN_GROUP 4

/* acc[p] = acc[p] + lane_p * D with D = d_x * d_w (multiply, then add: no fma). */
#define TQ_MATMUL(NAME, BLOCK, DECODE)                                                        \
    void NAME(const BLOCK *w, const bitnet_block_q8_K *x, size_t k, size_t rows, size_t n_tok, \
              float *out) {                                                                   \
        size_t nb = k / BITNET_QK_K, r, t0, i, j, nt;                                         \
        uint8_t c[BITNET_QK_K];                                                               \
        int32_t lanes[8];                                                                     \
        int p;                                                                                \
        for (r = 0; r < rows; r++) {                                                          \
            for (t0 = 0; t0 < n_tok; t0 += nt) {                                              \
                float acc[TOKEN_GROUP][8] = {{0}};                                            \
                nt = n_tok - t0 < TOKEN_GROUP ? n_tok - t0 : TOKEN_GROUP;                     \
                for (i = 0; i < nb; i++) {                                                    \
                    const BLOCK *wb = &w[r * nb + i];                                         \
                    float dw = bitnet_c_f16_to_f32(wb->d);                                    \
                    DECODE(wb, c);                                                            \
                    for (j = 0; j < nt; j++) {                                                \
                        const bitnet_block_q8_K *xb = &x[(t0 + j) * nb + i];                  \
                        float dd = xb->d * dw;                                                \
                        tq_lanes(c, xb->qs, lanes);                                           \
                        for (p = 0; p < 8; p++) {                                             \
                            float prod = (float)lanes[p] * dd;                                \
                            acc[j][p] = acc[j][p] + prod;                                     \
                        }                                                                     \
                    }                                                                         \
                }                                                                             \
                for (j = 0; j < nt; j++) out[r * n_tok + t0 + j] = bitnet_c_hsum8(acc[j]);    \
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

/* Q6_K: lane p = sum sc[e/16] * q6_e * q_e over (e % 32) / 4 == p; acc = fma(D, lane, acc).
 * The values are pre-multiplied by their sub-block scale once per block (sc * q6 fits int16). */
void bitnet_c_q6_K_matmul(const bitnet_block_q6_K *w, const bitnet_block_q8_K *x, size_t k,
                          size_t rows, size_t n_tok, float *out) {
    size_t nb = k / BITNET_QK_K, r, t0, i, j, nt;
    int8_t v[BITNET_QK_K];
    int16_t sv[BITNET_QK_K];
    int e, g, p, m;
    for (r = 0; r < rows; r++) {
        for (t0 = 0; t0 < n_tok; t0 += nt) {
            float acc[TOKEN_GROUP][8] = {{0}};
            nt = n_tok - t0 < TOKEN_GROUP ? n_tok - t0 : TOKEN_GROUP;
            for (i = 0; i < nb; i++) {
                const bitnet_block_q6_K *wb = &w[r * nb + i];
                float dw = bitnet_c_f16_to_f32(wb->d);
                q6k_values(wb, v);
                for (e = 0; e < BITNET_QK_K; e++) sv[e] = (int16_t)(wb->scales[e / 16] * v[e]);
                for (j = 0; j < nt; j++) {
                    const bitnet_block_q8_K *xb = &x[(t0 + j) * nb + i];
                    int32_t lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                    float dd = xb->d * dw;
                    for (g = 0; g < 8; g++) {
                        for (p = 0; p < 8; p++) {
                            int32_t s = 0;
                            for (m = 0; m < 4; m++) {
                                e = 32 * g + 4 * p + m;
                                s += (int32_t)sv[e] * xb->qs[e];
                            }
                            lanes[p] += s;
                        }
                    }
                    for (p = 0; p < 8; p++) acc[j][p] = fmaf(dd, (float)lanes[p], acc[j][p]);
                }
            }
            for (j = 0; j < nt; j++) out[r * n_tok + t0 + j] = bitnet_c_hsum8(acc[j]);
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
