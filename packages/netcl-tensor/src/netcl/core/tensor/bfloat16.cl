// bfloat16 in OpenCL C, which has no such type: a bf16 is the upper 16 bits of
// a float32 (sign, the same 8 exponent bits, 7 mantissa bits), held as ushort.
// A load widens exactly; a store rounds to nearest, ties to even, as
// ml_dtypes' and PyTorch's float -> bfloat16 conversions do.

inline float bf16_load(const size_t i, __global const ushort *p) {
    return as_float((uint)p[i] << 16);
}

inline ushort bf16_bits(const float v) {
    const uint bits = as_uint(v);
    // A NaN stays a NaN (rounding could carry its payload into infinity): keep the
    // sign, set the quiet bit.
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (ushort)((bits >> 16) | 0x0040u);
    // Adding 0x7FFF plus the bit that stays lowest rounds a tie towards an even
    // result; a carry out of the mantissa raises the exponent, and past the
    // largest finite bf16 gives infinity, as it should.
    return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

inline void bf16_store(const float v, const size_t i, __global ushort *p) {
    p[i] = bf16_bits(v);
}

// Vectors of 4 and 8, for kernels that step flat buffers a vector at a time: the
// same rounding as bf16_bits, lane by lane (select's mask is a lane's all-ones).
#define BF16_VECTOR_IO(N)                                                        \
    inline float##N bf16_vload##N(const size_t i, __global const ushort *p) {    \
        return as_float##N(convert_uint##N(vload##N(0, p + i)) << 16);          \
    }                                                                            \
    inline void bf16_vstore##N(const float##N v, const size_t i, __global ushort *p) { \
        const uint##N bits = as_uint##N(v);                                      \
        const uint##N rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;    \
        const uint##N quiet = (bits >> 16) | 0x0040u;                            \
        const int##N nan = (bits & 0x7FFFFFFFu) > 0x7F800000u;                   \
        vstore##N(convert_ushort##N(select(rounded, quiet, nan)), 0, p + i);     \
    }
BF16_VECTOR_IO(4)
BF16_VECTOR_IO(8)

inline void bf16_store4(const float4 v, const size_t i, __global ushort *p) {
    bf16_vstore4(v, i, p);
}

inline float8 bf16_load8(const size_t i, __global const ushort *p) {
    return bf16_vload8(i, p);
}
