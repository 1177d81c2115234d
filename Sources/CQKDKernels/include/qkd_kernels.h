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

#endif
