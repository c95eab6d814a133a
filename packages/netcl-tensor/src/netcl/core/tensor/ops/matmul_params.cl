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


#if B_GATHER
// A convolution's B operand as both matmul kernels read it from an NCHW tensor
// X: 1 (forward) unfold(X), 2 (weight gradient) unfold(X) transposed, 3 (input
// gradient) the output gradient X seen through the windows. Geometry is
// compile-time (G_* defines, one build per convolution shape), which turns
// every / and % below into multiplies and shifts. X has channel, row and
// column strides G_S1, G_S2, G_S3 and spatial size G_IH x G_IW; the
// convolution's output is G_OH x G_OW.

// Row r = (c * KH + kh) * KW + kw names a channel and kernel tap, column
// p = oh * OW + ow an output position, as torch.nn.functional.unfold orders
// them. The offset in X of tap (kh, kw) of channel c in the window at output
// (oh, ow), or -1 in the zero padding:
inline int window_offset(const int c, const int kh, const int kw, const int oh, const int ow)
{
    const int h = oh * G_SH - G_PH + kh * G_DH;
    const int w = ow * G_SW - G_PW + kw * G_DW;
    return (h >= 0 && h < G_IH && w >= 0 && w < G_IW) ? c * G_S1 + h * G_S2 + w * G_S3 : -1;
}

// The input gradient's B: row r = (o * KH + kh) * KW + kw, column
// q = h * IW + w of the input. The offset of the output-gradient pixel (oh, ow)
// whose window read input pixel (h, w) through tap (kh, kw), or -1 where no
// window did. X here is the output gradient (G_OH x G_OW).
inline int source_offset(const int o, const int kh, const int kw, const int h, const int w)
{
    const int th = h + G_PH - kh * G_DH;
    const int tw = w + G_PW - kw * G_DW;
    const int oh = th / G_SH, ow = tw / G_SW;
    return (th >= 0 && tw >= 0 && th % G_SH == 0 && tw % G_SW == 0 && oh < G_OH && ow < G_OW)
        ? o * G_S1 + oh * G_S2 + ow * G_S3 : -1;
}

// B's rows name (channel, tap) and its positions run along an output (1, 2) or
// input (3) plane of G_POSITIONS_W columns; row r at position p:
#if B_GATHER == 3
#define G_POSITIONS_W G_IW
#define position_offset source_offset
#else
#define G_POSITIONS_W G_OW
#define position_offset window_offset
#endif
inline int row_position_offset(const int r, const int p)
{
    return position_offset(r / (G_KH * G_KW), r / G_KW % G_KH, r % G_KW,
                           p / G_POSITIONS_W, p % G_POSITIONS_W);
}

// The offset in X of B[k][n], or -1 where B holds a zero.
#if B_GATHER == 2
#define gather_offset(k, n) row_position_offset(n, k)
#else
#define gather_offset(k, n) row_position_offset(k, n)
#endif
#endif
