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

/* ---- Toeplitz matrix–vector product ---------------------------------------------------- */

#define TMVP_BASE_WORDS 4   /* 256 × 256 blocks are done directly */

/* out[0, na + nb) = a[0, na) · b[0, nb) by carry-less schoolbook. */
#if defined(__x86_64__)
__attribute__((target("pclmul,sse2")))
static void rectangle_hw(const uint64_t *a, size_t na, const uint64_t *b, size_t nb, uint64_t *out) {
    memset(out, 0, (na + nb) * sizeof(uint64_t));
    for (size_t j = 0; j < nb; j++) {
        __m128i bj = _mm_set_epi64x(0, (long long)b[j]);
        for (size_t i = 0; i < na; i++) {
            __m128i r = _mm_clmulepi64_si128(_mm_set_epi64x(0, (long long)a[i]), bj, 0x00);
            out[i + j] ^= (uint64_t)_mm_cvtsi128_si64(r);
            out[i + j + 1] ^= (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(r, r));
        }
    }
}
#endif

static void rectangle(const uint64_t *a, size_t na, const uint64_t *b, size_t nb, uint64_t *out) {
#if defined(__x86_64__)
    if (qkd_gf2_uses_pclmul()) { rectangle_hw(a, na, b, nb, out); return; }
#endif
    memset(out, 0, (na + nb) * sizeof(uint64_t));
    for (size_t j = 0; j < nb; j++) {
        for (size_t i = 0; i < na; i++) {
            uint64_t lo, hi;
            clmul_sw(a[i], b[j], &lo, &hi);
            out[i + j] ^= lo;
            out[i + j + 1] ^= hi;
        }
    }
}

/* Bits [from, from + 64·words) of p into out (words), p having p_words words (zero beyond). */
static void bit_window(const uint64_t *p, size_t p_words, size_t from, size_t words, uint64_t *out) {
    size_t w = from >> 6, sh = from & 63;
    for (size_t i = 0; i < words; i++) {
        uint64_t lo = w + i < p_words ? p[w + i] : 0;
        uint64_t hi = w + i + 1 < p_words ? p[w + i + 1] : 0;
        out[i] = sh ? (lo >> sh) | (hi << (64 - sh)) : lo;
    }
}

/* y[0, n) = T·x for the n×n Toeplitz matrix with parameters p[0, 2n − 1) (p has 2n/64 words;
   the top bit is never used), n = 64·nw bits, nw = TMVP_BASE_WORDS · 2^k. */
static void tmvp(const uint64_t *p, const uint64_t *x, size_t nw, uint64_t *y, uint64_t *scratch) {
    if (nw <= TMVP_BASE_WORDS) {
        /* Coefficients [n − 1, 2n − 1) of P·X: a (2nw × nw)-word product, then a slice. */
        uint64_t full[3 * TMVP_BASE_WORDS + 1];
        rectangle(p, 2 * nw, x, nw, full);
        bit_window(full, 3 * nw, 64 * nw - 1, nw, y);
        return;
    }
    size_t hw = nw / 2;                          /* h = 64·hw bits */
    const uint64_t *B = p, *A = p + hw, *C = p + 2 * hw;   /* windows of 2h bits */
    const uint64_t *x0 = x, *x1 = x + hw;
    uint64_t *sx = scratch, *ab = sx + hw, *ac = ab + 2 * hw, *p1 = ac + 2 * hw, *p2 = p1 + hw, *p3 = p2 + hw;
    uint64_t *rest = p3 + hw;
    for (size_t i = 0; i < hw; i++) sx[i] = x0[i] ^ x1[i];
    for (size_t i = 0; i < 2 * hw; i++) { ab[i] = A[i] ^ B[i]; ac[i] = A[i] ^ C[i]; }
    tmvp(A, sx, hw, p1, rest);
    tmvp(ab, x1, hw, p2, rest);
    tmvp(ac, x0, hw, p3, rest);
    for (size_t i = 0; i < hw; i++) { y[i] = p1[i] ^ p2[i]; y[hw + i] = p1[i] ^ p3[i]; }
}

int qkd_toeplitz_multiply(const uint64_t *s, size_t n_bits, size_t m_bits, const uint64_t *x, uint64_t *y) {
    size_t m_words = (m_bits + 63) / 64;
    memset(y, 0, m_words * sizeof(uint64_t));
    if (m_bits == 0 || n_bits == 0) return 0;
    size_t mw = TMVP_BASE_WORDS;
    while (mw * 64 < m_bits) mw <<= 1;           /* square blocks of M = 64·mw ≥ m bits */
    size_t M = 64 * mw;
    size_t chunks = (n_bits + M - 1) / M;
    size_t s_bits = n_bits + m_bits - 1, s_words = (s_bits + 63) / 64;
    size_t x_words = (n_bits + 63) / 64;
    /* Seed shifted so every window starts on a word: spad[t] = s[t − shift]. */
    size_t shift = M + (64 - (n_bits & 63)) % 64;
    size_t spad_words = (shift + s_bits + 2 * M) / 64 + 2;
    uint64_t *spad = calloc(spad_words, sizeof(uint64_t));
    uint64_t *xchunk = malloc(mw * sizeof(uint64_t));
    uint64_t *window = malloc(2 * mw * sizeof(uint64_t));
    uint64_t *acc = calloc(mw, sizeof(uint64_t));
    uint64_t *part = malloc(mw * sizeof(uint64_t));
    uint64_t *scratch = malloc((16 * mw + 64) * sizeof(uint64_t));
    if (!spad || !xchunk || !window || !acc || !part || !scratch) {
        free(spad); free(xchunk); free(window); free(acc); free(part); free(scratch);
        return -1;
    }
    {   /* spad = s shifted left by `shift` bits (word-level). */
        size_t ws = shift >> 6, bs = shift & 63;
        for (size_t i = 0; i < s_words; i++) {
            uint64_t w = s[i];
            if (i == s_words - 1 && (s_bits & 63)) w &= ((uint64_t)1 << (s_bits & 63)) - 1;
            spad[i + ws] ^= w << bs;
            if (bs) spad[i + ws + 1] ^= w >> (64 - bs);
        }
    }
    for (size_t k = 0; k < chunks; k++) {
        /* x chunk k, zero-padded. */
        size_t first = k * M;
        for (size_t i = 0; i < mw; i++) {
            size_t w = first / 64 + i;
            xchunk[i] = w < x_words ? x[w] : 0;
        }
        if (first + M > n_bits) {                /* clear bits at or beyond n */
            size_t valid = n_bits - first;
            for (size_t i = 0; i < mw; i++) {
                size_t lo = 64 * i;
                if (lo >= valid) xchunk[i] = 0;
                else if (valid - lo < 64) xchunk[i] &= ((uint64_t)1 << (valid - lo)) - 1;
            }
        }
        /* Parameters of T_k: s[d + n − 1 − kM] for d ∈ [−(M−1), M−1] → start n − (k+1)M. */
        size_t start = shift + n_bits - (k + 1) * M;
        bit_window(spad, spad_words, start, 2 * mw, window);
        tmvp(window, xchunk, mw, part, scratch);
        for (size_t i = 0; i < mw; i++) acc[i] ^= part[i];
    }
    memcpy(y, acc, m_words * sizeof(uint64_t));
    if (m_bits & 63) y[m_words - 1] &= ((uint64_t)1 << (m_bits & 63)) - 1;
    free(spad); free(xchunk); free(window); free(acc); free(part); free(scratch);
    return 0;
}
