#include "qkd_kernels.h"
#include <stdlib.h>
#include <string.h>

#ifndef QKD_KARATSUBA_THRESHOLD
#define QKD_KARATSUBA_THRESHOLD 8
#endif

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("pclmul,sse2")))
static void clmul_hw(uint64_t a, uint64_t b, uint64_t *lo, uint64_t *hi) {
    __m128i r = _mm_clmulepi64_si128(_mm_set_epi64x(0, (long long)a), _mm_set_epi64x(0, (long long)b), 0x00);
    *lo = (uint64_t)_mm_cvtsi128_si64(r);
    *hi = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(r, r));
}
#endif

static void clmul_sw(uint64_t a, uint64_t b, uint64_t *lo, uint64_t *hi) {
    uint64_t l = 0, h = 0;
    for (int i = 0; i < 64; i++) {
        if ((b >> i) & 1) {
            l ^= a << i;
            if (i) h ^= a >> (64 - i);
        }
    }
    *lo = l;
    *hi = h;
}

static int use_hw = -1;

int qkd_gf2_uses_pclmul(void) {
    if (use_hw < 0) {
#if defined(__x86_64__)
        __builtin_cpu_init();
        use_hw = __builtin_cpu_supports("pclmul") ? 1 : 0;
#else
        use_hw = 0;
#endif
    }
    return use_hw;
}

#if defined(__x86_64__)
__attribute__((target("pclmul,sse2")))
static void schoolbook_hw(const uint64_t *a, const uint64_t *b, size_t n, uint64_t *out) {
    memset(out, 0, 2 * n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) {
        __m128i ai = _mm_set_epi64x(0, (long long)a[i]);
        for (size_t j = 0; j < n; j++) {
            __m128i r = _mm_clmulepi64_si128(ai, _mm_set_epi64x(0, (long long)b[j]), 0x00);
            out[i + j] ^= (uint64_t)_mm_cvtsi128_si64(r);
            out[i + j + 1] ^= (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(r, r));
        }
    }
}
#endif

static void schoolbook(const uint64_t *a, const uint64_t *b, size_t n, uint64_t *out) {
#if defined(__x86_64__)
    if (qkd_gf2_uses_pclmul()) { schoolbook_hw(a, b, n, out); return; }
#endif
    memset(out, 0, 2 * n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            uint64_t lo, hi;
            clmul_sw(a[i], b[j], &lo, &hi);
            out[i + j] ^= lo;
            out[i + j + 1] ^= hi;
        }
    }
}

/// out[0, 2n) = a[0, n) * b[0, n); scratch holds at least 4n + 64 words more than the
/// recursion below needs (callers give 8n + 256).
static void karatsuba(const uint64_t *a, const uint64_t *b, size_t n, uint64_t *out, uint64_t *scratch) {
    if (n <= QKD_KARATSUBA_THRESHOLD) { schoolbook(a, b, n, out); return; }
    size_t h = n / 2, hi = n - h;
    karatsuba(a, b, h, out, scratch);                    /* z0 -> out[0, 2h) */
    karatsuba(a + h, b + h, hi, out + 2 * h, scratch);   /* z2 -> out[2h, 2n) */
    uint64_t *sa = scratch, *sb = scratch + hi, *z1 = scratch + 2 * hi, *rest = scratch + 4 * hi;
    for (size_t i = 0; i < hi; i++) {
        sa[i] = a[h + i] ^ (i < h ? a[i] : 0);
        sb[i] = b[h + i] ^ (i < h ? b[i] : 0);
    }
    karatsuba(sa, sb, hi, z1, rest);
    for (size_t i = 0; i < 2 * h; i++) z1[i] ^= out[i];
    for (size_t i = 0; i < 2 * hi; i++) z1[i] ^= out[2 * h + i];
    for (size_t i = 0; i < 2 * hi; i++) out[h + i] ^= z1[i];
}

/* out[0, na + nb) ^= a * b, for any sizes: equal sizes go to Karatsuba; otherwise the longer
   operand is cut into pieces the length of the shorter, and a shorter remainder recurses
   with the roles swapped (so no piece is padded with zeros). */
static void multiply_into(const uint64_t *a, size_t na, const uint64_t *b, size_t nb, uint64_t *out,
                          uint64_t *prod, uint64_t *scratch) {
    if (na == 0 || nb == 0) return;
    if (na < nb) { const uint64_t *t = a; a = b; b = t; size_t tn = na; na = nb; nb = tn; }
    size_t off = 0;
    for (; off + nb <= na; off += nb) {
        karatsuba(a + off, b, nb, prod, scratch);
        for (size_t i = 0; i < 2 * nb; i++) out[off + i] ^= prod[i];
    }
    if (off < na) multiply_into(a + off, na - off, b, nb, out + off, prod, scratch);
}

void qkd_gf2_multiply(const uint64_t *a, size_t na, const uint64_t *b, size_t nb, uint64_t *out) {
    memset(out, 0, (na + nb) * sizeof(uint64_t));
    if (na == 0 || nb == 0) return;
    size_t m = na < nb ? nb : na;
    uint64_t *prod = malloc(2 * m * sizeof(uint64_t));
    uint64_t *scratch = malloc((8 * m + 256) * sizeof(uint64_t));
    multiply_into(a, na, b, nb, out, prod, scratch);
    free(prod);
    free(scratch);
}
