#ifndef QKDNET_QKD_KERNELS_H
#define QKDNET_QKD_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/// Product of two polynomials over GF(2), each given as little-endian 64-bit words (bit i of
/// word w is the coefficient of x^(64w+i)). `out` receives na + nb words. Karatsuba above 32
/// words, carry-less multiplication (PCLMULQDQ where the CPU has it) below. Pure: no I/O, no
/// global state besides a one-time CPU feature check.
void qkd_gf2_multiply(const uint64_t *a, size_t na, const uint64_t *b, size_t nb, uint64_t *out);

/// 1 if the hardware carry-less multiply is used, 0 for the portable fallback.
int qkd_gf2_uses_pclmul(void);

/// y = T·x over GF(2) for the m×n Toeplitz matrix T[i][j] = s[i − j + n − 1] given by its
/// n + m − 1 seed bits `s` (little-endian words), x of n bits; y receives ⌈m/64⌉ words (bits
/// beyond m are cleared). Karatsuba-style Toeplitz-matrix–vector product: only the m outputs
/// are computed. Returns 0, or −1 if memory could not be allocated.
int qkd_toeplitz_multiply(const uint64_t *s, size_t n_bits, size_t m_bits, const uint64_t *x, uint64_t *y);

/// The fastest base case of the Toeplitz product this CPU runs: 0 portable, 1 PCLMULQDQ,
/// 2 VPCLMULQDQ on AVX-512 registers.
int qkd_toeplitz_best_kernel(void);

/// qkd_toeplitz_multiply with a given base case (for tests and benchmarks); −2 if the CPU
/// lacks it.
int qkd_toeplitz_multiply_with(int kernel, const uint64_t *s, size_t n_bits, size_t m_bits, const uint64_t *x, uint64_t *y);
#endif
