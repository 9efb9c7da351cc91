/* A correctly rounded fmaf for x86_64-pc-windows-gnu (docs/portability.md, "Windows").
 *
 * Rust's f32::mul_add becomes a call to the C library's fmaf where the CPU target has no FMA
 * enabled; on windows-gnu that is mingw-w64's libmingwex fmaf, which (mingw-w64 10, Debian
 * bookworm) is not correctly rounded: fmaf(a, b, 0) can differ from the rounded product in
 * the last bit. The scalar kernels and the model's RoPE / exp use mul_add where the reference
 * fuses, so that broke bit-exactness on Windows. Linked before libmingwex, this definition wins.
 *
 * Method: the product of two floats is exact in double; the double sum s = p + z is rounded
 * once, and its rounding error e is recovered exactly (two-sum). Rounding s to odd (when e is
 * not zero and s's last bit is 0, step s one ulp toward p + z) and then to float gives the
 * correctly rounded result, as double has more than 24 + 2 bits. Invalid operations (inf * 0,
 * inf - inf) give the default NaN through the double arithmetic, as the instruction does. */
#include <stdint.h>
#include <string.h>

float fmaf(float x, float y, float z) {
    /* NaN operands: the first NaN of y, x, z, quieted: what glibc's fmaf returns on an x86 CPU
       with FMA (its VFMADD213SS; checked bit for bit on 20 million random bit patterns), the
       platform the AVX2 kernels are compared with it on; the kernels' tests compare NaN bits. */
    if (y != y) return y + y;
    if (x != x) return x + x;
    if (z != z) return z + z;
    double p = (double)x * (double)y; /* exact: 24 + 24 bits < 53 */
    double s = p + (double)z;
    double bb = s - p;
    double e = (p - (s - bb)) + ((double)z - bb); /* exact error of s */
    uint64_t u;
    memcpy(&u, &s, sizeof u);
    if (e != 0.0 && s == s && (u & 0x7ff0000000000000ull) != 0x7ff0000000000000ull &&
        (u & 1) == 0) {
        /* s and e are nonzero here; same sign: the exact sum is further from zero. */
        if ((e > 0.0) == (s > 0.0)) u += 1; else u -= 1;
        memcpy(&s, &u, sizeof s);
    }
    return (float)s;
}
