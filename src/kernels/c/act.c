/* Activation quantization, exactly as src/kernels/act.rs (I2_S.md sections 4 and 6a). */
#include <math.h>
#include <string.h>

#include "kernels.h"

/* quantize_row_i8_s: max(1e-5, max|x|) in double (the reference's `a > b ? a : b`),
 * s = (float)(127 / max), q = clamp(nearest_int(x * s), -128, 127). */
void bitnet_c_quantize_row_i8(const float *x, size_t n, int8_t *q, float *scale, int32_t *sum) {
    double max = 0.00001;
    float s;
    int32_t total = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        double a = fabs((double)x[i]);
        max = max > a ? max : a;
    }
    s = (float)(127.0 / max);
    for (i = 0; i < n; i++) {
        int32_t v = bitnet_c_nearest_int(x[i] * s);
        if (v < -128) v = -128;
        if (v > 127) v = 127;
        q[i] = (int8_t)v;
        total += v;
    }
    *scale = s;
    *sum = total;
}

/* quantize_row_q8_K (reference C): m = the signed value of largest |x| (first on ties),
 * iscale = -127 / m, q = min(127, nearest_int(iscale * x)), d = 1 / iscale. */
void bitnet_c_quantize_row_q8_K(const float *x, bitnet_block_q8_K *y, size_t nblocks) {
    size_t i;
    int j, g;
    for (i = 0; i < nblocks; i++, x += BITNET_QK_K) {
        float amax = 0, max = 0, iscale;
        for (j = 0; j < BITNET_QK_K; j++) {
            float a = fabsf(x[j]);
            if (a > amax) {
                amax = a;
                max = x[j];
            }
        }
        if (amax == 0) {
            y[i].d = 0;
            memset(y[i].qs, 0, sizeof y[i].qs);
            memset(y[i].bsums, 0, sizeof y[i].bsums);
            continue;
        }
        iscale = -127.0f / max;
        for (j = 0; j < BITNET_QK_K; j++) {
            int32_t v = bitnet_c_nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (g = 0; g < BITNET_QK_K / 16; g++) {
            int s = 0;
            for (j = 0; j < 16; j++) s += y[i].qs[16 * g + j];
            y[i].bsums[g] = (int16_t)s;
        }
        y[i].d = 1.0f / iscale;
    }
}
