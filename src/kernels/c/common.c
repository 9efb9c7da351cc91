/* Helpers shared by the C kernels: exact f16 -> f32, the reference's horizontal sums, and
 * ggml's nearest_int. */
#include <string.h>

#include "kernels.h"

float bitnet_c_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    float f;
    if (exp == 0x1f) {
        /* inf / NaN: keep the payload, like the hardware conversion */
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        /* subnormal half: normalise (value = mant * 2^-24, exact in f32) */
        exp = 113;
        while ((mant & 0x400) == 0) {
            mant <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
    memcpy(&f, &bits, 4);
    return f;
}

/* ggml hsum_float_8 / tinyBLAS hsum: t[l] = acc[l+4] + acc[l], (t0+t2) + (t1+t3). */
float bitnet_c_hsum8(const float acc[8]) {
    float t0 = acc[4] + acc[0];
    float t1 = acc[5] + acc[1];
    float t2 = acc[6] + acc[2];
    float t3 = acc[7] + acc[3];
    return (t0 + t2) + (t1 + t3);
}

/* GGML_F32x8_REDUCE: a = (acc0+acc2) + (acc1+acc3); t[l] = a[l] + a[l+4]; (t0+t1) + (t2+t3). */
float bitnet_c_reduce_4x8(const float acc[4][8]) {
    float a[8];
    int l;
    for (l = 0; l < 8; l++) {
        float x = acc[0][l] + acc[2][l];
        float y = acc[1][l] + acc[3][l];
        a[l] = x + y;
    }
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

/* ggml nearest_int: round half to even through the float adder. */
int32_t bitnet_c_nearest_int(float x) {
    float v = x + 12582912.0f;
    uint32_t i;
    memcpy(&i, &v, 4);
    return (int32_t)(i & 0x007fffff) - 0x00400000;
}
