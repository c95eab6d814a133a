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

inline void bf16_store4(const float4 v, const size_t i, __global ushort *p) {
    vstore4((ushort4)(bf16_bits(v.s0), bf16_bits(v.s1), bf16_bits(v.s2), bf16_bits(v.s3)),
            0, p + i);
}
