// What every matmul kernel shares (matmul.cl, matmul_mma.cl): the scalar
// arguments and the batch addressing. gemm.py builds each kernel file after
// this one.

// The element offset of batch entry z. The batch is at most three collapsed
// dimensions, outermost first in s0..s2 (unused ones have size 1); a
// broadcast dimension has stride 0. Strides are long: a batch of big
// matrices passes 2^31 elements easily, one matrix does not (gemm.py checks).
inline long batch_offset(int z, const int4 shape, const long4 strides)
{
    const int i2 = z % shape.s2;
    z /= shape.s2;
    const int i1 = z % shape.s1;
    const int i0 = z / shape.s1;
    return i0 * strides.s0 + i1 * strides.s1 + i2 * strides.s2;
}

// The scalar arguments, in the order gemm.py packs them (params).
#define PARAMS const int16 ip, const long8 lp
#define UNPACK_PARAMS                                                           \
    const int M = ip.s0, N = ip.s1, K = ip.s2;                                  \
    const int a_sm = ip.s3, a_sk = ip.s4, b_sk = ip.s5, b_sn = ip.s6;           \
    const int4 batch_shape = (int4)(ip.s7, ip.s8, ip.s9, 1);                    \
    const long a_off = lp.s0, b_off = lp.s4;                                    \
    const long4 a_bs = (long4)(lp.s1, lp.s2, lp.s3, 0);                         \
    const long4 b_bs = (long4)(lp.s5, lp.s6, lp.s7, 0);                         \
    const int z = get_global_id(2) + BATCH_BASE;

// Batches past the grid's z limit run in slices, each told its first entry
// (gemm.py builds such launches with BATCH_SLICED). Only then: reading the
// base unconditionally made the NVIDIA compiler's tiled kernel 15% slower
// (H100, 2048^3: 27.0 instead of 31.5 TFLOP/s).
#if BATCH_SLICED
#define BATCH_BASE ip.sa
#else
#define BATCH_BASE 0
#endif

