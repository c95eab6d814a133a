// Matrix multiply C[z] = A[z] @ B[z] on NVIDIA tensor cores (compute
// capability 8.0 and up), through inline PTX: warp-level `mma.sync` (PTX ISA,
// "Warp-level matrix multiply-accumulate instructions") and `ldmatrix`.
// OpenCL has no tensor-core builtin; NVIDIA's OpenCL compiler passes inline
// PTX through (its PTX is `.target sm_90` on the H200, so Hopper's `wgmma`,
// which needs sm_90a, is out of reach). gemm.py picks this kernel where
// tensor_cores(device) holds, and the tiled kernel of matmul.cl elsewhere.
//
// MMA_TYPE 0: float32 inputs rounded to TF32 (10-bit mantissa, cvt.rna)
//             before they multiply (ROUND and FRAG below), m16n8k8 products;
//          1: float16 inputs, 2: bfloat16 inputs, m16n8k16 products.
// Products are accumulated in float32 in a fixed order (K ascending, one
// accumulator per output), so results are deterministic.
//
// Supplied by gemm.py (with PARAMS and batch_offset from matmul_params.cl):
//   BM, BN, BK            a BM x BN tile of C per work-group, K stepped BK deep
//   WARPS_M, WARPS_N      warps per tile along M and N; each warp owns a
//                         (BM / WARPS_M) x (BN / WARPS_N) block of C
//   A_K_MAJOR, B_K_MAJOR  1 when the operand's unit stride runs along K
//   A_VEC, B_VEC          1 when 16 bytes of the operand along its unit stride
//                         may be read as one aligned vector (gemm.py checks
//                         the strides, offset and batch strides)
//   LDMATRIX              1: fragments come from local memory by ldmatrix
//                         (TF32: rows along K only), 0: by plain local loads
//   ASYNC, STAGES         1: tiles go from global to local memory by cp.async,
//                         STAGES deep (needs A_VEC and B_VEC); 0: through
//                         registers, double-buffered
//   C_T, STORE_C(p, i, v) the output's storage type and a float store
//   C_VEC2                1: C is float with N even, stored two floats at a time
//   SWIZZLE               1: local tiles unpadded, vectors XOR-swizzled (below)
//   RASTER                0: work-groups in row order; R: in bands of R tile rows
//   B_GATHER              0: B is a matrix; 1-3: B is a convolution's NCHW
//                         tensor read as its implicit-GEMM columns
//                         (gather_offset in matmul_params.cl; needs ASYNC 0)
//   WIDE_GATHER           1 (with B_GATHER; gemm.py checks the geometry and
//                         alignment): a gathered B vector is read as the one
//                         or two aligned 16-byte vectors of X that hold it
//                         (gather_conv_wide), not element by element
//   SUM_IMAGES            1: the images' K ranges, each zero-padded to whole
//                         BK steps, form one sequence of ip.sc * ceil(K / BK)
//                         steps; batch entry z multiplies steps z * ip.sb to
//                         z * ip.sb + ip.sb - 1 of it, in order, into the same
//                         accumulators: a weight gradient's sum over images
//                         (or its share of it) in a fixed order (needs ASYNC 0)
//   EVEN_TILES            1: M, N and K are whole tiles (gemm.py checks; needs
//                         ASYNC): no edge checks, and each copy's source is a
//                         pointer set once and advanced BK along K a step
//   FRAG_PIPELINE         1 (needs ASYNC, an even number of MMA_K slices a
//                         step): two fragment sets, slice kk + 1's read from
//                         local memory before slice kk's products issue, and
//                         the next stage's first slice read right after the
//                         stage barrier, before this stage's last products
//   ROUND_STAGED          1 (TF32, needs ASYNC): each work-item rounds the
//                         vectors it copied, in local memory, once its copies
//                         have landed (before the stage barrier), instead of
//                         each fragment register as it is read

#if MMA_TYPE == 0
#define E uint  // float bits
#define EPV 4   // elements per 16-byte vector
#define MMA_K 8
#else
#define E ushort
#define EPV 8
#define MMA_K 16
#endif

#define THREADS (32 * WARPS_M * WARPS_N)
#define WARP_M (BM / WARPS_M)
#define WARP_N (BN / WARPS_N)
#define MT (WARP_M / 16)  // m16 fragments per warp
#define NT (WARP_N / 8)   // n8 fragments per warp

// Local tiles keep each operand's global layout (rows along its unit stride),
// so a 16-byte global read is one 16-byte local store. The eight rows one
// fragment read touches must fall in distinct banks. Without SWIZZLE, rows
// are padded: along K by one vector (a row of 40 halves, 20 words, or of 20
// floats puts rows g = 0..7 at words 20 g mod 32: 0, 20, 8, 28, ...), along M
// or N by 8 elements (136 floats put fragment words t * 136 + g at 8 t + g mod
// 32). With SWIZZLE, rows are unpadded (three stages of 128 x 128 x 32 halves
// fit 48 KiB where two padded did) and the 16-byte vector c of row r is
// stored at c ^ x(r): x(r) = r mod 8 where a row holds 8 vectors or more, else
// r / (8 / V) mod V for V vectors a row, so eight consecutive rows at one
// vector fill the 128 bytes of a bank cycle once. TF32 tiles stored along M
// or N are read a word per lane from four rows of 8 columns (two vectors):
// x(r) = 2 r mod 8 keeps those eight vectors apart.
#if SWIZZLE
#define K_XOR(r, v) ((v) >= 8 ? (r) % 8 : (r) / (8 / (v)) % (v))
#if MMA_TYPE == 0
#define MN_XOR(r) (2 * (r) % 8)
#else
#define MN_XOR(r) ((r) % 8)
#endif
// Element c of row r in a tile of rows s long whose vectors are XORed with x.
#define SWIZZLED(r, c, s, x) ((r) * (s) + ((c) / EPV ^ (x)) * EPV + (c) % EPV)
#define PAD_K 0
#define PAD_MN 0
#else
#define SWIZZLED(r, c, s, x) ((r) * (s) + (c))
#define PAD_K EPV
#define PAD_MN 8
#endif
#if A_K_MAJOR
#define A_STRIDE (BK + PAD_K)
#define A_ROWS BM
#define A_AT(m, k) SWIZZLED(m, k, A_STRIDE, K_XOR(m, BK / EPV))
#else
#define A_STRIDE (BM + PAD_MN)
#define A_ROWS BK
#define A_AT(m, k) SWIZZLED(k, m, A_STRIDE, MN_XOR(k))
#endif
#if B_K_MAJOR
#define B_STRIDE (BK + PAD_K)
#define B_ROWS BN
#define B_AT(n, k) SWIZZLED(n, k, B_STRIDE, K_XOR(n, BK / EPV))
#else
#define B_STRIDE (BN + PAD_MN)
#define B_ROWS BK
#define B_AT(n, k) SWIZZLED(k, n, B_STRIDE, MN_XOR(k))
#endif
#define A_WORDS (A_ROWS * A_STRIDE * sizeof(E) / 16)
#define B_WORDS (B_ROWS * B_STRIDE * sizeof(E) / 16)

// Vectors of a tile each work-item loads per step (gemm.py checks they divide).
#define A_LOADS (BM * BK / EPV / THREADS)
#define B_LOADS (BN * BK / EPV / THREADS)

// Vector e of a tile as (row, depth): EPV elements along the unit stride.
#if A_K_MAJOR
#define A_VM(e) ((e) / (BK / EPV))
#define A_VK(e) ((e) % (BK / EPV) * EPV)
#else
#define A_VM(e) ((e) % (BM / EPV) * EPV)
#define A_VK(e) ((e) / (BM / EPV))
#endif
#if B_K_MAJOR
#define B_VN(e) ((e) / (BK / EPV))
#define B_VK(e) ((e) % (BK / EPV) * EPV)
#else
#define B_VN(e) ((e) % (BN / EPV) * EPV)
#define B_VK(e) ((e) / (BN / EPV))
#endif
// Where copy vector e lands in a stage's local tile (every copy, store and
// in-place rounding of a vector goes through these).
#define A_SLOT(e) A_AT(A_VM(e), A_VK(e))
#define B_SLOT(e) B_AT(B_VN(e), B_VK(e))

#if ASYNC && (B_GATHER || SUM_IMAGES)
#error "a gathered B and a sum over images load through registers (ASYNC 0)"
#endif
#if (EVEN_TILES || FRAG_PIPELINE) && !ASYNC
#error "EVEN_TILES and FRAG_PIPELINE are cp.async paths (ASYNC 1)"
#endif
#if ROUND_STAGED && (MMA_TYPE != 0 || !ASYNC)
#error "ROUND_STAGED rounds TF32 tiles copied by cp.async (MMA_TYPE 0, ASYNC 1)"
#endif
#if FRAG_PIPELINE && BK / MMA_K % 2
#error "FRAG_PIPELINE alternates two fragment sets by slice: BK / MMA_K must be even"
#endif

// EPV elements as one 16-byte vector, the first in the low bits.
inline uint4 pack(const E v[EPV])
{
#if MMA_TYPE == 0
    return (uint4)(v[0], v[1], v[2], v[3]);
#else
    return (uint4)(v[0] | (uint)v[1] << 16, v[2] | (uint)v[3] << 16,
                   v[4] | (uint)v[5] << 16, v[6] | (uint)v[7] << 16);
#endif
}

// The first `valid` of EPV elements `step` apart, zero after: an edge
// vector, or one whose strides do not allow a vector read.
inline uint4 gather(__global const E *p, const int step, const int valid)
{
    E v[EPV];
#pragma unroll
    for (int i = 0; i < EPV; ++i) v[i] = i < valid ? p[i * step] : (E)0;
    return pack(v);
}

#if B_GATHER
// The B vector from (k, n) along B's unit axis, read from the convolution's
// tensor X: the first `valid` elements, zero in the padding and after. Along
// that axis only the position moves (K for the weight gradient, N otherwise),
// so the row's channel and tap are split out once and the position is
// stepped, not divided, per element.
inline uint4 gather_conv(__global const E *X, const int k, const int n, const int valid)
{
    const int r = B_K_MAJOR ? n : k, p = B_K_MAJOR ? k : n;
    const int c = r / (G_KH * G_KW), kh = r / G_KW % G_KH, kw = r % G_KW;
    int y = p / G_POSITIONS_W, x = p % G_POSITIONS_W;
    E v[EPV];
#pragma unroll
    for (int i = 0; i < EPV; ++i) {
        const int at = i < valid ? position_offset(c, kh, kw, y, x) : -1;
        v[i] = at >= 0 ? X[at] : (E)0;
        if (++x == G_POSITIONS_W) {
            x = 0;
            ++y;
        }
    }
    return pack(v);
}

#if WIDE_GATHER
// Elements shift .. shift + EPV - 1 of the 2 EPV elements lo, hi (shift < EPV):
// word j + shift / 2 of the pair picked by two selects on shift's bits, and for
// an odd shift (16-bit elements) each word's halves taken across two words.
inline uint4 shifted(const uint4 lo, const uint4 hi, const int shift)
{
    const uint w[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
#if MMA_TYPE == 0
    const int words = shift, odd = 0;
#else
    const int words = shift / 2, odd = shift % 2;
#endif
    uint picked[5];
#pragma unroll
    for (int j = 0; j < 5; ++j) {
        const uint low = words & 1 ? w[j + 1] : w[j];
        const uint high = words & 1 ? w[j + 3] : w[j + 2];
        picked[j] = words & 2 ? high : low;
    }
    uint out[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) out[j] = odd ? picked[j] >> 16 | picked[j + 1] << 16 : picked[j];
    return (uint4)(out[0], out[1], out[2], out[3]);
}

// gather_conv's vector of EPV positions, whole (valid == EPV), where gemm.py
// found: unit stride along the plane's rows both ways (G_SW 1, G_S3 1), rows of
// positions and of X of whole vectors (so a vector's positions lie in one row
// and read consecutive columns of one row of X, and an aligned vector of X lies
// wholly inside its row or wholly in the padding), X's rows 16-byte aligned.
// The row and the first column are window_offset's (source_offset's for the
// input gradient) with the column split off.
inline uint4 gather_conv_wide(__global const E *X, const int k, const int n)
{
    const int r = B_K_MAJOR ? n : k, p = B_K_MAJOR ? k : n;
    const int c = r / (G_KH * G_KW), kh = r / G_KW % G_KH, kw = r % G_KW;
    const int y = p / G_POSITIONS_W, x = p % G_POSITIONS_W;
#if B_GATHER == 3
    const int th = y + G_PH - kh * G_DH, row = th / G_SH;
    const bool inside = th >= 0 && th % G_SH == 0 && row < G_OH;
    const int col = x + G_PW - kw * G_DW, width = G_OW;
#else
    const int row = y * G_SH - G_PH + kh * G_DH;
    const bool inside = row >= 0 && row < G_IH;
    const int col = x - G_PW + kw * G_DW, width = G_IW;
#endif
    if (!inside) return (uint4)(0);
    __global const E *line = X + c * G_S1 + row * G_S2;
    const int first = col & -EPV, shift = col - first;  // first: col rounded down
    const uint4 lo = first >= 0 && first < width ? VLOAD16(line + first) : (uint4)(0);
    const uint4 hi = shift && first + EPV >= 0 && first + EPV < width
        ? VLOAD16(line + first + EPV) : (uint4)(0);
    return shifted(lo, hi, shift);
}
#define LOAD_B_VECTOR(src, n, k, valid)                                         \
    (valid == EPV ? gather_conv_wide(B, k, n) : gather_conv(B, k, n, valid))
#else
#define LOAD_B_VECTOR(src, n, k, valid) gather_conv(B, k, n, valid)
#endif
#else
#define LOAD_B_VECTOR(src, n, k, valid) load_vector(src, B_K_MAJOR ? b_sk : b_sn, valid, B_VEC)
#endif

inline uint4 load_vector(__global const E *p, const int step, const int valid, const bool vec)
{
    if (vec && valid == EPV) return VLOAD16(p);
    return gather(p, step, valid);
}

#if STAGES == 2
#define PENDING "0"
#elif STAGES == 3
#define PENDING "1"
#elif STAGES == 4
#define PENDING "2"
#endif

#if MMA_TYPE == 0
#define ROUND(v) (uint4)(to_tf32((v).x), to_tf32((v).y), to_tf32((v).z), to_tf32((v).w))
#else
#define ROUND(v) (v)
#endif
// cp.async copies float32 as it is, so TF32 fragments are rounded as read,
// or the tiles once they land (ROUND_STAGED: a vector is read by several
// warps' fragments, so rounding it once costs fewer conversions).
#if MMA_TYPE == 0 && ASYNC && !ROUND_STAGED
#define FRAG(x) to_tf32(x)
#else
#define FRAG(x) (x)
#endif
#if ASYNC
#define BUFFERS STAGES
#else
#define BUFFERS 2
#endif

// Two 16-bit elements, k and k + 1, as one register (low half first).
#define PAIR(p, at0, at1) ((uint)(p)[at0] | (uint)(p)[at1] << 16)

// The A and B fragments of the warp at (wm, wn) for the MMA_K-deep slice at
// kk of the local tiles as, bs.
inline __attribute__((always_inline))
void load_fragments(uint af[MT][4], uint bf[NT][2], __local const E *as, __local const E *bs,
                    const int kk, const int wm, const int wn, const int lane)
{
    const int g = lane / 4, t = lane % 4;
    // ldmatrix: lane l gives the row address of 8 x 8 matrix l / 8
    // (8 rows of 16 bytes); matrices 0-3 become a fragment's registers
    // 0-3. A: rows m 0-7 / 8-15, then the second 16 bytes along K; B:
    // two n8 fragments, each its two K halves. Rows along K suit TF32
    // too (a row is 4 floats, a register one float); .trans reads a
    // 16-bit tile stored along M (N) as K-paired registers.
#pragma unroll
    for (int i = 0; i < MT; ++i) {
#if LDMATRIX && A_K_MAJOR
        LDSM_X4(af[i], as + A_AT(wm + i * 16 + lane % 16, kk + lane / 16 * EPV));
#elif LDMATRIX && MMA_TYPE != 0
        LDSM_X4_T(af[i], as + A_AT(wm + i * 16 + lane / 8 % 2 * 8,
                                   kk + lane % 8 + lane / 16 * 8));
#elif MMA_TYPE == 0
        const int m = wm + i * 16 + g;
        af[i][0] = as[A_AT(m, kk + t)];
        af[i][1] = as[A_AT(m + 8, kk + t)];
        af[i][2] = as[A_AT(m, kk + t + 4)];
        af[i][3] = as[A_AT(m + 8, kk + t + 4)];
#else
        const int m = wm + i * 16 + g;
        const int k = kk + 2 * t;
        af[i][0] = PAIR(as, A_AT(m, k), A_AT(m, k + 1));
        af[i][1] = PAIR(as, A_AT(m + 8, k), A_AT(m + 8, k + 1));
        af[i][2] = PAIR(as, A_AT(m, k + 8), A_AT(m, k + 9));
        af[i][3] = PAIR(as, A_AT(m + 8, k + 8), A_AT(m + 8, k + 9));
#endif
#pragma unroll
        for (int r = 0; r < 4; ++r) af[i][r] = FRAG(af[i][r]);
    }
#pragma unroll
    for (int j = 0; j < NT; j += 2) {
#if LDMATRIX && (B_K_MAJOR || MMA_TYPE != 0)
        uint r[4];
#if B_K_MAJOR
        LDSM_X4(r, bs + B_AT(wn + j * 8 + lane % 8 + lane / 16 * 8,
                             kk + lane / 8 % 2 * EPV));
#else
        LDSM_X4_T(r, bs + B_AT(wn + j * 8 + lane / 16 * 8,
                               kk + lane % 8 + lane / 8 % 2 * 8));
#endif
        bf[j][0] = r[0];
        bf[j][1] = r[1];
        bf[j + 1][0] = r[2];
        bf[j + 1][1] = r[3];
#else
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int n = wn + (j + h) * 8 + g;
#if MMA_TYPE == 0
            bf[j + h][0] = bs[B_AT(n, kk + t)];
            bf[j + h][1] = bs[B_AT(n, kk + t + 4)];
#else
            const int k = kk + 2 * t;
            bf[j + h][0] = PAIR(bs, B_AT(n, k), B_AT(n, k + 1));
            bf[j + h][1] = PAIR(bs, B_AT(n, k + 8), B_AT(n, k + 9));
#endif
        }
#endif
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            bf[j + h][0] = FRAG(bf[j + h][0]);
            bf[j + h][1] = FRAG(bf[j + h][1]);
        }
    }
}

// acc += the products of one slice's fragments.
inline __attribute__((always_inline))
void mma_slice(float acc[MT][NT][4], uint af[MT][4], uint bf[NT][2] MMA_SCRATCH_PARAM)
{
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j) MMA(acc[i][j], af[i], bf[j]);
}

__kernel __attribute__((reqd_work_group_size(THREADS, 1, 1)))
void matmul_mma(PARAMS, __global const E *A, __global const E *B, __global C_T *C)
{
    UNPACK_PARAMS
    __local uint4 As[BUFFERS][A_WORDS];
    __local uint4 Bs[BUFFERS][B_WORDS];
    MMA_SCRATCH(THREADS)
    // Room for every group in flight: the copies of STAGES tiles.
    CP_ASYNC_QUEUE(STAGES * (A_LOADS + B_LOADS))

    const int tid = get_local_id(0);
    const int lane = tid % 32;
    const int warp = tid / 32;
    // Fragment coordinates (PTX ISA, the mma.m16n8k16 / m16n8k8 layouts).
    const int g = lane / 4, t = lane % 4;
    const int wm = warp / WARPS_N * WARP_M;
    const int wn = warp % WARPS_N * WARP_N;
#if RASTER
    // Work-groups go down bands of RASTER tile rows a column at a time, so those
    // running at once share A's rows and B's columns in L2 (row by row, each
    // wave would read all of B).
    const int groups_n = get_num_groups(0), groups_m = get_num_groups(1);
    const int id = get_group_id(1) * groups_n + get_group_id(0);
    const int band_first = id / (RASTER * groups_n) * RASTER;
    const int band_rows = min(groups_m - band_first, RASTER);
    const int in_band = id % (RASTER * groups_n);
    const int m0 = (band_first + in_band % band_rows) * BM;
    const int n0 = in_band / band_rows * BN;
#else
    const int m0 = get_group_id(1) * BM;
    const int n0 = get_group_id(0) * BN;
#endif
#if SUM_IMAGES
    __global const E *const a_images = A + a_off;
    __global const E *const b_images = B + b_off;
    const int k_steps = (K + BK - 1) / BK;
    const int first_step = z * ip.sb;
    const int end_step = min(first_step + ip.sb, ip.sc * k_steps);
    // The operands of the image step s multiplies.
#define SELECT_IMAGE(s)                                                         \
    A = a_images + batch_offset((s) / k_steps, batch_shape, a_bs);              \
    B = b_images + batch_offset((s) / k_steps, batch_shape, b_bs);
#else
    A += a_off + batch_offset(z, batch_shape, a_bs);
    B += b_off + batch_offset(z, batch_shape, b_bs);
#endif
    C += (long)z * M * N;

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

    // Vector e of the A tile at depth k0: where it starts and how many of its
    // elements lie inside the matrix (zero past it).
#define A_VECTOR(e, k0)                                                         \
    const int m = m0 + A_VM(e), k = (k0) + A_VK(e);                             \
    const int valid = A_K_MAJOR ? (m < M ? clamp(K - k, 0, EPV) : 0)            \
                                : (k < K ? clamp(M - m, 0, EPV) : 0);           \
    __global const E *src = valid ? A + m * a_sm + k * a_sk : A;
#define B_VECTOR(e, k0)                                                         \
    const int n = n0 + B_VN(e), k = (k0) + B_VK(e);                             \
    const int valid = B_K_MAJOR ? (n < N ? clamp(K - k, 0, EPV) : 0)            \
                                : (k < K ? clamp(N - n, 0, EPV) : 0);           \
    __global const E *src = valid ? B + k * b_sk + n * b_sn : B;

#if ASYNC && EVEN_TILES
    // Every vector lies inside the matrices, so each copy's addresses are set
    // once: local offsets fixed, sources advanced one step at a time (copies
    // are issued in K order). Groups past K are committed empty (their stages
    // are never read), so the wait counts stay those of the checked path.
    __global const E *a_src[A_LOADS];
    __global const E *b_src[B_LOADS];
    int a_dst[A_LOADS], b_dst[B_LOADS];
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) {
        const int e = tid + i * THREADS;
        a_src[i] = A + (m0 + A_VM(e)) * a_sm + A_VK(e) * a_sk;
        a_dst[i] = A_SLOT(e);
    }
#pragma unroll
    for (int i = 0; i < B_LOADS; ++i) {
        const int e = tid + i * THREADS;
        b_src[i] = B + B_VK(e) * b_sk + (n0 + B_VN(e)) * b_sn;
        b_dst[i] = B_SLOT(e);
    }
    const int a_step = BK * a_sk, b_step = BK * b_sk;
#define COPY(stage, k0)                                                         \
    if ((k0) < K) {                                                             \
        _Pragma("unroll") for (int i = 0; i < A_LOADS; ++i) {                   \
            copy_async((__local E *)As[stage] + a_dst[i], a_src[i], 16);        \
            a_src[i] += a_step;                                                 \
        }                                                                       \
        _Pragma("unroll") for (int i = 0; i < B_LOADS; ++i) {                   \
            copy_async((__local E *)Bs[stage] + b_dst[i], b_src[i], 16);        \
            b_src[i] += b_step;                                                 \
        }                                                                       \
    }                                                                           \
    CP_ASYNC_COMMIT();
#elif ASYNC
    // Global -> local buffer `stage` for the tile at depth k0, as one group.
#define COPY(stage, k0)                                                         \
    _Pragma("unroll") for (int i = 0; i < A_LOADS; ++i) {                       \
        const int e = tid + i * THREADS;                                        \
        A_VECTOR(e, k0)                                                         \
        copy_async((__local E *)As[stage] + A_SLOT(e), src,                     \
                   valid * (int)sizeof(E));                                     \
    }                                                                           \
    _Pragma("unroll") for (int i = 0; i < B_LOADS; ++i) {                       \
        const int e = tid + i * THREADS;                                        \
        B_VECTOR(e, k0)                                                         \
        copy_async((__local E *)Bs[stage] + B_SLOT(e), src,                     \
                   valid * (int)sizeof(E));                                     \
    }                                                                           \
    CP_ASYNC_COMMIT();
#endif
#if ASYNC
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        COPY(s, s * BK)
    }
#else
    uint4 a_next[A_LOADS];
    uint4 b_next[B_LOADS];
    // Global -> registers for the tile at depth k0.
#define FETCH(k0)                                                               \
    _Pragma("unroll") for (int i = 0; i < A_LOADS; ++i) {                       \
        const int e = tid + i * THREADS;                                        \
        A_VECTOR(e, k0)                                                         \
        a_next[i] = load_vector(src, A_K_MAJOR ? a_sk : a_sm, valid, A_VEC);    \
    }                                                                           \
    _Pragma("unroll") for (int i = 0; i < B_LOADS; ++i) {                       \
        const int e = tid + i * THREADS;                                        \
        B_VECTOR(e, k0)                                                         \
        b_next[i] = LOAD_B_VECTOR(src, n, k, valid);                            \
    }
    // Registers -> local buffer buf.
#define PUT(buf)                                                                \
    _Pragma("unroll") for (int i = 0; i < A_LOADS; ++i) {                       \
        const int e = tid + i * THREADS;                                        \
        *(__local uint4 *)((__local E *)As[buf] + A_SLOT(e)) = ROUND(a_next[i]); \
    }                                                                           \
    _Pragma("unroll") for (int i = 0; i < B_LOADS; ++i) {                       \
        const int e = tid + i * THREADS;                                        \
        *(__local uint4 *)((__local E *)Bs[buf] + B_SLOT(e)) = ROUND(b_next[i]); \
    }

#if SUM_IMAGES
    SELECT_IMAGE(first_step)
    FETCH(first_step % k_steps * BK)
#else
    FETCH(0)
#endif
    PUT(0)
    barrier(CLK_LOCAL_MEM_FENCE);
#endif

#if ROUND_STAGED
    // Only this work-item's copies are known to have landed before the barrier:
    // it rounds the vectors it copied into buffer `stage`.
#define ROUND_STAGE(stage)                                                      \
    _Pragma("unroll") for (int i = 0; i < A_LOADS; ++i) {                       \
        const int e = tid + i * THREADS;                                        \
        __local uint4 *v = (__local uint4 *)((__local E *)As[stage] + A_SLOT(e)); \
        const uint4 landed = *v;                                                \
        *v = ROUND(landed);                                                     \
    }                                                                           \
    _Pragma("unroll") for (int i = 0; i < B_LOADS; ++i) {                       \
        const int e = tid + i * THREADS;                                        \
        __local uint4 *v = (__local uint4 *)((__local E *)Bs[stage] + B_SLOT(e)); \
        const uint4 landed = *v;                                                \
        *v = ROUND(landed);                                                     \
    }
#else
#define ROUND_STAGE(stage)
#endif
    // Buffer `stage` ready for every warp's fragment reads: its group has
    // landed once at most STAGES - 2 are pending, and after the barrier every
    // work-item's copies (rounded, with ROUND_STAGED) are visible.
#define STAGE_READY(stage)                                                      \
    CP_ASYNC_WAIT(PENDING);                                                     \
    ROUND_STAGE(stage)                                                          \
    barrier(CLK_LOCAL_MEM_FENCE);

    int buf = 0;
#if FRAG_PIPELINE
    // Set kk / MMA_K % 2 holds slice kk's fragments; a step starts with its
    // first slice's in set 0 (BK / MMA_K is even).
    uint af[2][MT][4];
    uint bf[2][NT][2];
    STAGE_READY(0)
    load_fragments(af[0], bf[0], (__local const E *)As[0], (__local const E *)Bs[0], 0, wm, wn,
                   lane);
    for (int k0 = 0; k0 < K; k0 += BK) {
        const int next = buf == STAGES - 1 ? 0 : buf + 1;
#pragma unroll
        for (int kk = 0; kk < BK; kk += MMA_K) {
            const int set = kk / MMA_K % 2;
            if (kk == 0) {
                // The buffer read in the last step: every work-item passed the
                // barrier after its last fragment read.
                const int refill = buf == 0 ? STAGES - 1 : buf - 1;
                COPY(refill, k0 + (STAGES - 1) * BK)
            }
            if (kk + MMA_K < BK) {
                load_fragments(af[set ^ 1], bf[set ^ 1], (__local const E *)As[buf],
                               (__local const E *)Bs[buf], kk + MMA_K, wm, wn, lane);
            } else {
                // The checked loop's wait for the next stage, one step early.
                STAGE_READY(next)
                load_fragments(af[set ^ 1], bf[set ^ 1], (__local const E *)As[next],
                               (__local const E *)Bs[next], 0, wm, wn, lane);
            }
            mma_slice(acc, af[set], bf[set] MMA_SCRATCH_ARG);
        }
        buf = next;
    }
#else
#if SUM_IMAGES
    for (int s = first_step; s < end_step; ++s) {
#else
    for (int k0 = 0; k0 < K; k0 += BK) {
#endif
#if ASYNC
        // After the barrier the buffer read in the last step is free for the
        // tile STAGES - 1 ahead (past K zeros, or nothing with EVEN_TILES:
        // every step commits one group).
        STAGE_READY(buf)
        {
            const int refill = buf == 0 ? STAGES - 1 : buf - 1;
            COPY(refill, k0 + (STAGES - 1) * BK)
        }
#elif SUM_IMAGES
        const bool more = s + 1 < end_step;
        if (more) {
            SELECT_IMAGE(s + 1)
            FETCH((s + 1) % k_steps * BK)
        }
#else
        const bool more = k0 + BK < K;
        if (more) {
            FETCH(k0 + BK)
        }
#endif
        __local const E *as = (__local const E *)As[buf];
        __local const E *bs = (__local const E *)Bs[buf];
#pragma unroll
        for (int kk = 0; kk < BK; kk += MMA_K) {
            uint af[MT][4];
            uint bf[NT][2];
            load_fragments(af, bf, as, bs, kk, wm, wn, lane);
            mma_slice(acc, af, bf MMA_SCRATCH_ARG);
        }
#if ASYNC
        buf = buf == STAGES - 1 ? 0 : buf + 1;
#else
        // The other buffer was last read before the previous barrier.
        if (more) {
            PUT(buf ^ 1)
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        buf ^= 1;
#endif
    }
#endif  // FRAG_PIPELINE
#if ASYNC
    CP_ASYNC_WAIT_ALL();  // the groups committed past K
#endif

    // Accumulator r of fragment (i, j) is C row g (+ 8 for r >= 2), column
    // 2 t (+ 1 for odd r) of that 16 x 8 block.
#pragma unroll
    for (int i = 0; i < MT; ++i) {
#pragma unroll
        for (int row_half = 0; row_half < 2; ++row_half) {
            const int m = m0 + wm + i * 16 + g + row_half * 8;
#if !EVEN_TILES
            if (m >= M) continue;
#endif
            __global C_T *row = C + (long)m * N;
#pragma unroll
            for (int j = 0; j < NT; ++j) {
                const int n = n0 + wn + j * 8 + 2 * t;
                const float v0 = acc[i][j][2 * row_half], v1 = acc[i][j][2 * row_half + 1];
                if (C_VEC2 && n + 1 < N) {
                    *(__global float2 *)(row + n) = (float2)(v0, v1);
                    continue;
                }
                if (n < N) STORE_C(row, n, v0);
                if (n + 1 < N) STORE_C(row, n + 1, v1);
            }
        }
    }
}
