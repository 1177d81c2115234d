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

/* Portable 64×64 carry-less product, four bits of b at a time: a table of a·i for i < 16
   (as 128-bit values), then 16 shifted lookups. */
static void clmul_sw(uint64_t a, uint64_t b, uint64_t *lo, uint64_t *hi) {
    uint64_t tl[16], th[16];
    tl[0] = 0; th[0] = 0;
    tl[1] = a; th[1] = 0;
    for (int i = 2; i < 16; i += 2) {
        tl[i] = tl[i / 2] << 1;
        th[i] = (th[i / 2] << 1) | (tl[i / 2] >> 63);
        tl[i + 1] = tl[i] ^ a;
        th[i + 1] = th[i];
    }
    uint64_t l = tl[b & 15], h = th[b & 15];
    for (int w = 4; w < 64; w += 4) {
        unsigned i = (unsigned)(b >> w) & 15;
        l ^= tl[i] << w;
        h ^= (th[i] << w) | (tl[i] >> (64 - w));
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

/* Every Toeplitz block below works on P' = P shifted up by one bit (P'[t] = P[t − 1]; P'[0] is
   never read by an output that is kept), so that y = T·x is exactly the words [nw, 2nw) of the
   polynomial product P'·X: no bit shifts anywhere below the top level. The windows A, B, C of
   the recursion are again such shifted windows, for the same reason. */

#define TMVP_MAX_BASE 8

/* y[0, nw) = words [nw, 2nw) of P'·X by carry-less schoolbook (portable; nw ≤ TMVP_MAX_BASE). */
static void base_portable(const uint64_t *p, const uint64_t *x, size_t nw, uint64_t *y) {
    uint64_t full[4 * TMVP_MAX_BASE];
    memset(full, 0, sizeof full);
    for (size_t j = 0; j < nw; j++) {
        for (size_t i = nw - 1 - j; i < 2 * nw - j; i++) {   /* only i + j ≥ nw − 1 reach the slice */
            uint64_t lo, hi;
            clmul_sw(p[i], x[j], &lo, &hi);
            full[i + j] ^= lo;
            full[i + j + 1] ^= hi;
        }
    }
    memcpy(y, full + nw, nw * sizeof(uint64_t));
}

#if defined(__x86_64__)
/* The same with PCLMULQDQ, accumulating the 128-bit partial sums of each diagonal
   s = i + j ∈ [nw − 1, 2nw − 1] in registers: nw·(nw + 1) products instead of 2nw². */
__attribute__((target("pclmul,sse2")))
static void base_pclmul(const uint64_t *p, const uint64_t *x, size_t nw, uint64_t *y) {
    __m128i acc[TMVP_MAX_BASE + 1];
    for (size_t d = 0; d <= nw; d++) {
        size_t s = nw - 1 + d;
        __m128i a = _mm_setzero_si128();
        for (size_t j = 0; j < nw; j++) {
            a = _mm_xor_si128(a, _mm_clmulepi64_si128(_mm_loadl_epi64((const __m128i *)(p + s - j)),
                                                      _mm_loadl_epi64((const __m128i *)(x + j)), 0x00));
        }
        acc[d] = a;
    }
    for (size_t t = 0; t < nw; t++) {
        uint64_t lo = (uint64_t)_mm_cvtsi128_si64(acc[t + 1]);
        uint64_t hi = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(acc[t], acc[t]));
        y[t] = lo ^ hi;
    }
}

/* nw = 8 with VPCLMULQDQ on 512-bit registers (four 64×64 products per instruction): for
   each x_j one load of p[7 − j, 15 − j) gives the diagonals s = 7, 9, 11, 13 (low words of
   the 128-bit lanes) and s = 8, 10, 12, 14 (high words); s = 15 is one more product. Then
   y[t] = lo(acc_{8+t}) ⊕ hi(acc_{7+t}). */
__attribute__((target("avx512f,vpclmulqdq,pclmul,sse2")))
static void base8_vpclmul(const uint64_t *p, const uint64_t *x, uint64_t *y) {
    __m512i odd = _mm512_setzero_si512(), even = _mm512_setzero_si512();
    __m128i last = _mm_setzero_si128();
    for (int j = 0; j < 8; j++) {
        __m512i xj = _mm512_set1_epi64((long long)x[j]);
        __m512i w = _mm512_loadu_si512((const void *)(p + 7 - j));
        odd = _mm512_xor_si512(odd, _mm512_clmulepi64_epi128(w, xj, 0x00));
        even = _mm512_xor_si512(even, _mm512_clmulepi64_epi128(w, xj, 0x01));
        last = _mm_xor_si128(last, _mm_clmulepi64_si128(_mm_loadl_epi64((const __m128i *)(p + 15 - j)),
                                                        _mm512_castsi512_si128(xj), 0x00));
    }
    /* next = [acc9, acc11, acc13, acc15]; lane k of y = [lo(acc_{8+2k}) ⊕ hi(acc_{7+2k}),
       lo(acc_{9+2k}) ⊕ hi(acc_{8+2k})]. */
    __m512i next = _mm512_alignr_epi64(_mm512_zextsi128_si512(last), odd, 2);
    __m512i lows = _mm512_unpacklo_epi64(even, next);
    __m512i highs = _mm512_unpackhi_epi64(odd, even);
    _mm512_storeu_si512((void *)y, _mm512_xor_si512(lows, highs));
}
#endif

enum base_kind { BASE_PORTABLE, BASE_PCLMUL, BASE_VPCLMUL };
static int base_kind_best = -1;

/* The fastest base case this CPU runs. */
static enum base_kind toeplitz_best(void) {
    if (base_kind_best < 0) {
        int kind = BASE_PORTABLE;
#if defined(__x86_64__)
        if (qkd_gf2_uses_pclmul()) {
            kind = BASE_PCLMUL;
            if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vpclmulqdq")) kind = BASE_VPCLMUL;
        }
#endif
        base_kind_best = kind;
    }
    return (enum base_kind)base_kind_best;
}

int qkd_toeplitz_best_kernel(void) { return (int)toeplitz_best(); }

/* y[0, nw) = T·x for the nw-word Toeplitz block given by its shifted parameters p[0, 2nw),
   nw = 8·2^k (or any nw ≤ 8). Fan & Hasan's two-way split: T = [[A, B], [C, A]] with
   y0 = A(x0 + x1) + (A + B)x1, y1 = A(x0 + x1) + (A + C)x0. Scratch: 4nw words per level. */
static void tmvp(const uint64_t *p, const uint64_t *x, size_t nw, uint64_t *y, uint64_t *scratch, enum base_kind kind) {
    if (nw <= TMVP_MAX_BASE) {
        switch (kind) {
#if defined(__x86_64__)
        case BASE_VPCLMUL:
            if (nw == 8) { base8_vpclmul(p, x, y); return; }
            base_pclmul(p, x, nw, y);
            return;
        case BASE_PCLMUL:
            if (nw > 4) break;          /* one more Karatsuba level beats 72 products */
            base_pclmul(p, x, nw, y);
            return;
#endif
        default:
            if (nw > 4) break;
            base_portable(p, x, nw, y);
            return;
        }
    }
    size_t hw = nw / 2;
    const uint64_t *B = p, *A = p + hw, *C = p + 2 * hw;   /* windows of 2h bits */
    const uint64_t *x0 = x, *x1 = x + hw;
    uint64_t *sx = scratch, *ab = sx + hw, *ac = ab + 2 * hw, *p1 = ac + 2 * hw, *p2 = p1 + hw, *p3 = p2 + hw;
    uint64_t *rest = p3 + hw;
    for (size_t i = 0; i < hw; i++) sx[i] = x0[i] ^ x1[i];
    for (size_t i = 0; i < 2 * hw; i++) { ab[i] = A[i] ^ B[i]; ac[i] = A[i] ^ C[i]; }
    tmvp(A, sx, hw, p1, rest, kind);
    tmvp(ab, x1, hw, p2, rest, kind);
    tmvp(ac, x0, hw, p3, rest, kind);
    for (size_t i = 0; i < hw; i++) { y[i] = p1[i] ^ p2[i]; y[hw + i] = p1[i] ^ p3[i]; }
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

int qkd_toeplitz_multiply(const uint64_t *s, size_t n_bits, size_t m_bits, const uint64_t *x, uint64_t *y) {
    return qkd_toeplitz_multiply_with(qkd_toeplitz_best_kernel(), s, n_bits, m_bits, x, y);
}

int qkd_toeplitz_multiply_with(int kernel, const uint64_t *s, size_t n_bits, size_t m_bits, const uint64_t *x, uint64_t *y) {
    size_t m_words = (m_bits + 63) / 64;
    memset(y, 0, m_words * sizeof(uint64_t));
    if (m_bits == 0 || n_bits == 0) return 0;
    if (kernel < BASE_PORTABLE || kernel > (int)toeplitz_best()) return -2;
    enum base_kind kind = (enum base_kind)kernel;
    size_t mw = 8;
    while (mw * 64 < m_bits) mw <<= 1;           /* square blocks of M = 64·mw ≥ m bits */
    size_t M = 64 * mw;
    size_t chunks = (n_bits + M - 1) / M;
    size_t s_bits = n_bits + m_bits - 1, s_words = (s_bits + 63) / 64;
    size_t x_words = (n_bits + 63) / 64;
    /* Seed shifted so every block's window starts on a word: spad[t] = s[t − shift], and
       shift + n − 1 ≡ 0 (mod 64). */
    size_t shift = M + ((64 - ((n_bits - 1) & 63)) & 63);
    size_t spad_words = (shift + s_bits + 2 * M) / 64 + 2;
    uint64_t *spad = calloc(spad_words, sizeof(uint64_t));
    uint64_t *xchunk = malloc(mw * sizeof(uint64_t));
    uint64_t *window = malloc(2 * mw * sizeof(uint64_t));
    uint64_t *acc = calloc(mw, sizeof(uint64_t));
    uint64_t *part = malloc(mw * sizeof(uint64_t));
    uint64_t *scratch = malloc((8 * mw + 64) * sizeof(uint64_t));
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
        /* T_k[i][j] = s[i − j + n − 1 − kM] = W[i − j + M − 1] with W starting at
           s[n − (k+1)M]; the shifted window P' starts one bit lower. */
        size_t start = shift + n_bits - 1 - (k + 1) * M;
        bit_window(spad, spad_words, start, 2 * mw, window);
        tmvp(window, xchunk, mw, part, scratch, kind);
        for (size_t i = 0; i < mw; i++) acc[i] ^= part[i];
    }
    memcpy(y, acc, m_words * sizeof(uint64_t));
    if (m_bits & 63) y[m_words - 1] &= ((uint64_t)1 << (m_bits & 63)) - 1;
    free(spad); free(xchunk); free(window); free(acc); free(part); free(scratch);
    return 0;
}
