// Matrix multiply C[z] = A[z] @ B[z] over a batch z, in two families chosen
// by the device type (gemm.py picks one and supplies the #defines):
//
//   PANEL == 1  CPU (PoCL): no local memory. B is first packed into float
//               panels 16 columns wide (pack_b), A into 6-row panels when it
//               cannot be read in place (pack_a); each work-item then keeps a
//               6x16 block of C in twelve float8 registers and streams one
//               panel of B and six rows of A along K. PoCL runs a work-group
//               as a loop on one thread, so "local memory" would only be a
//               copy; the packed panels are what keep the loads in cache.
//   PANEL == 0  GPU: a BM x BN tile of C per work-group, K walked BK at a time
//               through double-buffered local-memory tiles; each work-item
//               keeps a TM x TN block of C in registers.
//
// Always defined by gemm.py:
//   A_T, B_T, C_T            storage C types ("float" or "half")
//   LOAD_A(p, i), LOAD_B(p, i)  element i of an operand, as float
//   STORE_C(p, i, v)         store float v at element i of C
//   STORE_C4(p, i, v)        store float4 v at elements i..i+3 of C (i a multiple of 4)
// A is read at a_off + m * a_sm + k * a_sk (B likewise at k * b_sk + n * b_sn),
// so transposed and other strided views need no copy. C is contiguous:
// (batch, M, N). Arithmetic is float for both dtypes: fp16 is only a storage
// format here (vload_half / vstore_half need no cl_khr_fp16).
//
// Every kernel takes its scalars as one int16 and one long8 (see PARAMS):
// PoCL spends ~9 us in clSetKernelArg per scalar argument, which for nine
// separate scalars was more than the launch of a small multiply itself.
//
// FMAs are written `acc += a * b`, which OpenCL C may contract to one fma
// instruction (FP_CONTRACT is on by default). PoCL compiles the builtins
// fma(float8, ...) and vload8 / vstore8 to out-of-line calls that spill every
// accumulator: with them the CPU kernel ran 1024^3 at 18 GFLOP/s, without
// them at 183.

// PARAMS, UNPACK_PARAMS and batch_offset come first, from matmul_params.cl.

#if PANEL

#define MR 6
#define NR 16

// Unaligned float8 access. Dereferencing a float8 pointer (rather than calling
// vload8/vstore8, which PoCL does not inline) is what lets the inner loop stay
// in registers; C rows are only 4-byte aligned, hence the aligned(4) type.
// This is a clang vector extension, which is fine: only PoCL builds PANEL.
typedef float float8_unaligned __attribute__((ext_vector_type(8), aligned(4)));
typedef float float4_unaligned __attribute__((ext_vector_type(4), aligned(4)));
typedef float float2_unaligned __attribute__((ext_vector_type(2), aligned(4)));

// Bp[z][panel][k][0..15] = B[z][k][panel * 16 + c], zero past column N, so the
// multiply kernel reads one contiguous, 64-byte aligned stream per panel and
// never tests a bound. Unpacked, B's rows lie N floats apart: at N = 1024
// that is 4 KiB, every row of a panel lands in one L1 set, and the multiply
// ran at 108 instead of 183 GFLOP/s (2-core EPYC, 1024^3).
__kernel void pack_b(PARAMS, __global const B_T *B, __global float *Bp)
{
    UNPACK_PARAMS
    const int k = get_global_id(0);
    const int panel = get_global_id(1);
    if (k >= K) return;
    const int panels = (N + NR - 1) / NR;
    B += b_off + batch_offset(z, batch_shape, b_bs);
    __global float *out = Bp + (((long)z * panels + panel) * K + k) * NR;
#if B_FLOAT
    // A whole panel of a float B stored along N: two vector copies, where the loop's
    // strided loads and bound tests ran at ~3 GB/s (PoCL).
    if (b_sn == 1 && (panel + 1) * NR <= N) {
        __global const float *row = B + k * b_sk + panel * NR;
        *(__global float8_unaligned *)out = *(__global const float8_unaligned *)row;
        *(__global float8_unaligned *)(out + 8) = *(__global const float8_unaligned *)(row + 8);
        return;
    }
#endif
    for (int c = 0; c < NR; ++c) {
        const int n = panel * NR + c;
        out[c] = n < N ? LOAD_B(B, k * b_sk + n * b_sn) : 0.0f;
    }
}

// Ap[z][block][k][0..5] = A[z][block * 6 + r][k], zero past row M: the A
// operand of matmul_panel when reading A in place would be slow. In place,
// the kernel streams six rows of A along K; that is fast only when K is A's
// unit stride. A transposed view (the weight gradient x.T @ g) would put
// every k on another page (1024^3 ran at 100 instead of 170 GFLOP/s), and
// fp16 would convert each element once per column panel instead of once.
__kernel void pack_a(PARAMS, __global const A_T *A, __global float *Ap)
{
    UNPACK_PARAMS
    const int k = get_global_id(0);
    const int block = get_global_id(1);
    if (k >= K) return;
    const int blocks = (M + MR - 1) / MR;
    A += a_off + batch_offset(z, batch_shape, a_bs);
    __global float *out = Ap + (((long)z * blocks + block) * K + k) * MR;
#if A_FLOAT
    // A whole block of a float A stored along M (a transposed view, the weight
    // gradient's x.T): its six rows at depth k are six consecutive floats.
    if (a_sm == 1 && (block + 1) * MR <= M) {
        __global const float *column = A + block * MR + k * a_sk;
        *(__global float4_unaligned *)out = *(__global const float4_unaligned *)column;
        *(__global float2_unaligned *)(out + 4) = *(__global const float2_unaligned *)(column + 4);
        return;
    }
#endif
    for (int r = 0; r < MR; ++r) {
        const int m = block * MR + r;
        out[r] = m < M ? LOAD_A(A, m * a_sm + k * a_sk) : 0.0f;
    }
}

#if A_PACKED
// Row r of the block at depth k, from the panel pack_a wrote.
#define A_AT(r, k) a_panel[(k) * MR + (r)]
#else
#define A_AT(r, k) a##r[k]
#endif

#define ROW(r)                                                                  \
    a = (float8)(A_AT(r, k));                                                   \
    c##r##0 += a * b0;                                                          \
    c##r##1 += a * b1;

// One C row of the 6x16 block: two unaligned float8 stores when the row is
// whole and C is float, element by element otherwise (edges, fp16).
#define STORE_ROW(r)                                                            \
    if (m0 + r < M) {                                                           \
        __global C_T *row = C + (long)(m0 + r) * N + n0;                        \
        if (VECTOR_STORE && full_width) {                                       \
            *(__global float8_unaligned *)(row) = c##r##0;                      \
            *(__global float8_unaligned *)(row + 8) = c##r##1;                  \
        } else {                                                                \
            float8 parts[2] = {c##r##0, c##r##1};                               \
            const float *values = (const float *)parts;                         \
            for (int c = 0; c < NR && n0 + c < N; ++c) STORE_C(row, c, values[c]); \
        }                                                                       \
    }

// Work-item (panel, block, z) computes C[z][6 block .. +6][16 panel .. +16].
// gemm.py launches work-groups of (1, G, 1): G blocks of rows share one
// packed panel of B (16 K floats: 50 KiB at K = 784) while it sits in L2.
// A_PACKED: A is the output of pack_a (`A` then points at it and the stride
// arguments are unused); else A is float with unit stride along K.
__kernel void matmul_panel(PARAMS, __global const float *A, __global const float *Bp,
                           __global C_T *C)
{
    UNPACK_PARAMS
    const int panel = get_global_id(0);
    const int block = get_global_id(1);
    const int m0 = block * MR;
    const int n0 = panel * NR;
    if (m0 >= M) return;
    const int panels = (N + NR - 1) / NR;
    C += (long)z * M * N;
#if A_PACKED
    const int blocks = (M + MR - 1) / MR;
    __global const float *a_panel = A + ((long)z * blocks + block) * K * MR;
#else
    A += a_off + batch_offset(z, batch_shape, a_bs);
    // Rows past M read row M - 1 again (always in bounds) and are not
    // stored, so the loop has no branch.
    __global const float *a0 = A + min(m0 + 0, M - 1) * a_sm;
    __global const float *a1 = A + min(m0 + 1, M - 1) * a_sm;
    __global const float *a2 = A + min(m0 + 2, M - 1) * a_sm;
    __global const float *a3 = A + min(m0 + 3, M - 1) * a_sm;
    __global const float *a4 = A + min(m0 + 4, M - 1) * a_sm;
    __global const float *a5 = A + min(m0 + 5, M - 1) * a_sm;
#endif
    __global const float8 *b = (__global const float8 *)(Bp + ((long)z * panels + panel) * K * NR);

    // 12 accumulators + 2 of B + 1 broadcast of A: 15 of AVX2's 16 ymm registers.
    float8 c00 = 0.0f, c01 = 0.0f, c10 = 0.0f, c11 = 0.0f, c20 = 0.0f, c21 = 0.0f;
    float8 c30 = 0.0f, c31 = 0.0f, c40 = 0.0f, c41 = 0.0f, c50 = 0.0f, c51 = 0.0f;
    float8 a;
    for (int k = 0; k < K; ++k) {
        const float8 b0 = b[0];
        const float8 b1 = b[1];
        b += 2;
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
    }

    const bool full_width = n0 + NR <= N;
    STORE_ROW(0) STORE_ROW(1) STORE_ROW(2) STORE_ROW(3) STORE_ROW(4) STORE_ROW(5)
}

#else  // PANEL == 0: the tiled GPU kernel

// Supplied by gemm.py:
//   BM, BN, BK, TM, TN  a BM x BN tile of C per work-group, K stepped BK at a
//                       time, a TM x TN block of C per work-item (TM, TN
//                       multiples of 4; BM * BK and BN * BK multiples of
//                       4 * THREADS, so each work-item loads whole float4s)
//   A_K_MAJOR, B_K_MAJOR  1 when the operand's unit stride runs along K: the
//                       four elements of a load slot then run along K, else
//                       along M (N), so a warp's loads are contiguous
//   A_VEC, B_VEC        1 when those four elements are one aligned float4 in
//                       memory (float32, unit stride, the other stride, the
//                       offset and the batch strides multiples of 4): tiles
//                       inside the matrix then load with one 16-byte read
//   C_VEC               1 when C rows can be stored as float4 (float, N % 4 == 0)
//   SWIZZLE             1: local rows unpadded, K-major tiles XOR-swizzled (below)
//   K_SLICES            work-items per C element: slice s of a work-group
//                       multiplies rows s * BK / K_SLICES .. of each local tile,
//                       and slice 0 adds the others' sums at the end (more
//                       work-items per compute unit for a problem with few tiles)
//   EDGE_SLOTS          1 when M or N is not a multiple of the tile (see A_EDGE4)
//   PIPELINED           1: each step's fragments are read while the step
//                       before it multiplies, the next tile's first ones too
//   SPLIT_K             1: batch entry z multiplies only K chunk z (ip.sb long)
//   SUM_Z               1: the ip.sc batch entries' products are summed into one
//                       C (split-K chunks, or a convolution's images for its
//                       weight gradient) in this one launch: each writes its
//                       product to slab z of W, and the work-group that
//                       finishes a tile last (a counter per tile) adds that
//                       tile's slabs up in slab order, so the sum is
//                       deterministic. GLOBAL_FENCE makes a work-item's slab
//                       writes visible to every compute unit before it
//                       counts. Without SUM_Z, gemm.py can write the slabs
//                       as C and sum them with sum_splits in a second launch.
//   B_GATHER            0: B is a matrix; 1-3: B is an NCHW tensor read as
//                       implicit-GEMM columns of a convolution (matmul_params.cl)
#define THREADS_X (BN / TN)
#define THREADS_Y (BM / TM)
#define THREADS (THREADS_X * THREADS_Y * K_SLICES)
#define SLICE_DEPTH (BK / K_SLICES)
#define A_SLOTS (BM * BK / 4 / THREADS)
#define B_SLOTS (BN * BK / 4 / THREADS)
// Local rows are padded by 4 floats: a K-major operand is stored transposed
// (local row k holds column k of the tile), and a warp's scalar writes of
// it then fall in fewer banks; a multiple of 4 keeps each row float4-aligned
// for the fragment reads. SWIZZLE instead leaves rows unpadded and stores a
// K-major tile's column i of rows 4c .. 4c+3 at column i ^ A_XOR(4c): the
// chunks c that a warp's load slots span then write distinct banks, and a
// 16-deep 128x256 tile fits 48 KiB. The XOR is a multiple of 4, so float4
// groups stay whole, and below 32, so it permutes float4s only within
// aligned groups of eight: the eight a quarter-warp reads stay in one
// 128-byte line.
#if SWIZZLE
#define AS_STRIDE BM
#define BS_STRIDE BN
#define CHUNK_XOR(k) ((k) / 4 % (BK / 4) * (128 / BK))
#else
#define AS_STRIDE (BM + 4)
#define BS_STRIDE (BN + 4)
#define CHUNK_XOR(k) 0
#endif
#if A_K_MAJOR
#define A_XOR(k) CHUNK_XOR(k)
#else
#define A_XOR(k) 0
#endif
#if B_K_MAJOR
#define B_XOR(k) CHUNK_XOR(k)
#else
#define B_XOR(k) 0
#endif

// Load slot e of a tile: the first of its four elements, as (row, depth),
// and the step to the next element.
#if A_K_MAJOR
#define A_SLOT_M(e) ((e) / (BK / 4))
#define A_SLOT_K(e) ((e) % (BK / 4) * 4)
#define A_DM 0
#define A_DK 1
#else
#define A_SLOT_M(e) ((e) % (BM / 4) * 4)
#define A_SLOT_K(e) ((e) / (BM / 4))
#define A_DM 1
#define A_DK 0
#endif
#if B_K_MAJOR
#define B_SLOT_N(e) ((e) / (BK / 4))
#define B_SLOT_K(e) ((e) % (BK / 4) * 4)
#define B_DN 0
#define B_DK 1
#else
#define B_SLOT_N(e) ((e) % (BN / 4) * 4)
#define B_SLOT_K(e) ((e) / (BN / 4))
#define B_DN 1
#define B_DK 0
#endif

#if B_GATHER
// A convolution's B operand read straight from its NCHW tensor X (batch
// entry z = image), so no column matrix is ever written (gather_offset in
// matmul_params.cl).
inline float gathered(__global const B_T *X, const int k, const int n)
{
    const int at = gather_offset(k, n);
    return at >= 0 ? LOAD_B(X, at) : 0.0f;
}
#define B_AT(k, n) gathered(B, k, n)
#else
#define B_AT(k, n) LOAD_B(B, (k) * b_sk + (n) * b_sn)
#endif
#define A_AT(m, k) LOAD_A(A, (m) * a_sm + (k) * a_sk)

// An element past M, N or this work-group's K range reads as 0.
#define A_SAFE(m, k) (((m) < M && (k) < k_end) ? A_AT(m, k) : 0.0f)
#define B_SAFE(k, n) (((k) < k_end && (n) < N) ? B_AT(k, n) : 0.0f)
#define A_SAFE4(m, k)                                                           \
    (float4)(A_SAFE(m, k), A_SAFE((m) + A_DM, (k) + A_DK),                      \
             A_SAFE((m) + 2 * A_DM, (k) + 2 * A_DK), A_SAFE((m) + 3 * A_DM, (k) + 3 * A_DK))
#define B_SAFE4(k, n)                                                           \
    (float4)(B_SAFE(k, n), B_SAFE((k) + B_DK, (n) + B_DN),                      \
             B_SAFE((k) + 2 * B_DK, (n) + 2 * B_DN), B_SAFE((k) + 3 * B_DK, (n) + 3 * B_DN))

// A slot that lies wholly inside the matrix: no bound tests. A float4 slot's
// unit stride is known here (A_VEC implies it), which saves a multiply per load.
#if A_VEC && A_K_MAJOR
#define A_FAST4(m, k) (*(__global const float4 *)(A + (m) * a_sm + (k)))
#elif A_VEC
#define A_FAST4(m, k) (*(__global const float4 *)(A + (m) + (k) * a_sk))
#else
#define A_FAST4(m, k)                                                           \
    (float4)(A_AT(m, k), A_AT((m) + A_DM, (k) + A_DK),                          \
             A_AT((m) + 2 * A_DM, (k) + 2 * A_DK), A_AT((m) + 3 * A_DM, (k) + 3 * A_DK))
#endif
#if B_VEC && B_K_MAJOR
#define B_FAST4(k, n) (*(__global const float4 *)(B + (k) + (n) * b_sn))
#elif B_VEC
#define B_FAST4(k, n) (*(__global const float4 *)(B + (k) * b_sk + (n)))
#elif B_GATHER
#define B_FAST4(k, n) B_SAFE4(k, n)  // the gather tests its own bounds
#else
#define B_FAST4(k, n)                                                           \
    (float4)(B_AT(k, n), B_AT((k) + B_DK, (n) + B_DN),                          \
             B_AT((k) + 2 * B_DK, (n) + 2 * B_DN), B_AT((k) + 3 * B_DK, (n) + 3 * B_DN))
#endif

// A slot of a tile over an edge. With EDGE_SLOTS, one that lies inside the
// matrix and this work-group's K range (its last element does) is still read
// whole: testing every element made the MLP's 8192 x 4096 @ 4096 x 784 weight
// gradient, whose last column of tiles is mostly past N, 0.72-0.74 of cuBLAS
// on the H200 instead of 0.76-0.86. Only then: in a problem without a ragged
// edge, the extra path slowed the interior loop of nn 4096 x 8192 x 8192 from
// 0.90 to 0.85 of cuBLAS.
#if EDGE_SLOTS
#define A_EDGE4(m, k)                                                           \
    (((m) + 3 * A_DM < M && (k) + 3 * A_DK < k_end) ? A_FAST4(m, k) : A_SAFE4(m, k))
#define B_EDGE4(k, n)                                                           \
    (((k) + 3 * B_DK < k_end && (n) + 3 * B_DN < N) ? B_FAST4(k, n) : B_SAFE4(k, n))
#else
#define A_EDGE4(m, k) A_SAFE4(m, k)
#define B_EDGE4(k, n) B_SAFE4(k, n)
#endif

#if SUM_Z
#define SUM_ARGS , __global float *W, __global int *counters
#else
#define SUM_ARGS
#endif

// The accumulators to `dst` (a float slab, or C), element (m, n) of the tile
// at dst[(mb + m) * N + nb + n]: float4 stores where a group of four lies
// inside a row and C_VEC allows it. C is stored with dst at the tile's first
// element (mb = nb = 0): ptxas then schedules the main loop differently, and
// 128x256x16/16x8 ran tn 2048^3 at 0.91 of cuBLAS instead of 0.88, 4096^3 at
// 0.94 instead of 0.90. A SUM_Z slab is stored from the matrix's origin
// (mb = m0, nb = n0): at the tile's first element, tn 256x1024x1024 split in
// four ran at 0.63 instead of 0.79 (H200, seventh pass in RESULTS.md).
#define STORE_ACC(dst, mb, nb, T, STORE)                                        \
    _Pragma("unroll") for (int i = 0; i < TM; ++i) {                            \
        const int m = (i / 4) * 4 * THREADS_Y + ty * 4 + i % 4;                 \
        if (m0 + m >= M) continue;                                              \
        __global T *row = (dst) + (long)((mb) + m) * N;                         \
        _Pragma("unroll") for (int g = 0; g < TN / 4; ++g) {                    \
            const int n = g * 4 * THREADS_X + tx * 4;                           \
            if (C_VEC && n0 + n + 3 < N) {                                      \
                *(__global float4 *)(row + (nb) + n) = (float4)(                \
                    acc[i][4 * g], acc[i][4 * g + 1], acc[i][4 * g + 2], acc[i][4 * g + 3]); \
                continue;                                                       \
            }                                                                   \
            _Pragma("unroll") for (int j = 0; j < 4; ++j)                       \
                if (n0 + n + j < N) STORE(row, (nb) + n + j, acc[i][4 * g + j]); \
        }                                                                       \
    }
#define STORE_FLOAT(p, i, v) (p)[i] = (v)

__kernel __attribute__((reqd_work_group_size(THREADS_X, THREADS_Y * K_SLICES, 1)))
void matmul_tiled(PARAMS, __global const A_T *A, __global const B_T *B, __global C_T *C SUM_ARGS)
{
    UNPACK_PARAMS
    // Declared float4 so that every local row is 16-byte aligned for the
    // vector fragment reads; K-major tiles are written through float pointers.
    __local float4 As[2][BK][AS_STRIDE / 4];
    __local float4 Bs[2][BK][BS_STRIDE / 4];

    const int tx = get_local_id(0);
    const int tid = get_local_id(1) * THREADS_X + tx;
#if K_SLICES > 1
    const int ty = get_local_id(1) % THREADS_Y;
    const int slice = get_local_id(1) / THREADS_Y;
#else
    const int ty = get_local_id(1);
    const int slice = 0;
#endif
    const int m0 = get_group_id(1) * BM;
    const int n0 = get_group_id(0) * BN;
    A += a_off + batch_offset(z, batch_shape, a_bs);
    B += b_off + batch_offset(z, batch_shape, b_bs);
#if !SUM_Z
    C += (long)z * M * N;
#endif
#if SPLIT_K
    const int k_begin = z * ip.sb;
    const int k_end = min(K, k_begin + ip.sb);
#else
    const int k_begin = 0;
    const int k_end = K;
#endif
    // Uniform over the work-group, so its branches below never diverge.
    const bool interior = m0 + BM <= M && n0 + BN <= N;

    float4 a_next[A_SLOTS];
    float4 b_next[B_SLOTS];
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

// Global -> registers for the tile at depth k0, then registers -> local
// buffer `buf`: split in two so the next tile's loads are in flight while
// the current one is multiplied.
#define FETCH(k0)                                                               \
    if (interior && (k0) + BK <= k_end) {                                       \
        _Pragma("unroll") for (int i = 0; i < A_SLOTS; ++i) {                   \
            const int e = tid + i * THREADS;                                    \
            a_next[i] = A_FAST4(m0 + A_SLOT_M(e), (k0) + A_SLOT_K(e));          \
        }                                                                       \
        _Pragma("unroll") for (int i = 0; i < B_SLOTS; ++i) {                   \
            const int e = tid + i * THREADS;                                    \
            b_next[i] = B_FAST4((k0) + B_SLOT_K(e), n0 + B_SLOT_N(e));          \
        }                                                                       \
    } else {                                                                    \
        _Pragma("unroll") for (int i = 0; i < A_SLOTS; ++i) {                   \
            const int e = tid + i * THREADS;                                    \
            a_next[i] = A_EDGE4(m0 + A_SLOT_M(e), (k0) + A_SLOT_K(e));          \
        }                                                                       \
        _Pragma("unroll") for (int i = 0; i < B_SLOTS; ++i) {                   \
            const int e = tid + i * THREADS;                                    \
            b_next[i] = B_EDGE4((k0) + B_SLOT_K(e), n0 + B_SLOT_N(e));          \
        }                                                                       \
    }
// A slot along K becomes four local rows (`tile` is one buffer of As or Bs,
// `stride` its row length), a slot along M (N) one float4.
#define PUT_ALONG_K(tile, stride, k, i, v, XOR)                                 \
    {                                                                           \
        __local float *at = (__local float *)(tile)[k] + ((i) ^ XOR(k));        \
        at[0] = (v).x;                                                          \
        at[stride] = (v).y;                                                     \
        at[2 * (stride)] = (v).z;                                               \
        at[3 * (stride)] = (v).w;                                               \
    }
#if A_K_MAJOR
#define PUT_A(buf, i, e) PUT_ALONG_K(As[buf], AS_STRIDE, A_SLOT_K(e), A_SLOT_M(e), a_next[i], A_XOR)
#else
#define PUT_A(buf, i, e) As[buf][A_SLOT_K(e)][A_SLOT_M(e) / 4] = a_next[i];
#endif
#if B_K_MAJOR
#define PUT_B(buf, i, e) PUT_ALONG_K(Bs[buf], BS_STRIDE, B_SLOT_K(e), B_SLOT_N(e), b_next[i], B_XOR)
#else
#define PUT_B(buf, i, e) Bs[buf][B_SLOT_K(e)][B_SLOT_N(e) / 4] = b_next[i];
#endif
#define PUT(buf)                                                                \
    _Pragma("unroll") for (int i = 0; i < A_SLOTS; ++i) {                       \
        const int e = tid + i * THREADS;                                        \
        PUT_A(buf, i, e)                                                        \
    }                                                                           \
    _Pragma("unroll") for (int i = 0; i < B_SLOTS; ++i) {                       \
        const int e = tid + i * THREADS;                                        \
        PUT_B(buf, i, e)                                                        \
    }

    FETCH(k_begin)
    PUT(0)
    barrier(CLK_LOCAL_MEM_FENCE);

    // Work-item (tx, ty) owns rows ty*4 + g*4*THREADS_Y + 0..3 and likewise
    // for columns: its float4 reads of a local row are spread over the tile,
    // so a warp reads each row without bank conflicts (the work-items of a
    // warp sharing ty share one A fragment: a broadcast). A swizzled row's
    // float4 g * THREADS_Y + ty sits at g * THREADS_Y + (ty ^ A_XOR / 4):
    // THREADS_Y is a multiple of 8 (TileConfig checks), so the XOR stays
    // inside ty. Row kk of local buffer buf into fragments fa and fb.
#define READ_FRAGMENTS(fa, fb, buf, kk)                                         \
    _Pragma("unroll") for (int g = 0; g < TM / 4; ++g) {                        \
        const float4 v = As[buf][kk][g * THREADS_Y + (ty ^ A_XOR(kk) / 4)];     \
        fa[4 * g + 0] = v.x; fa[4 * g + 1] = v.y;                               \
        fa[4 * g + 2] = v.z; fa[4 * g + 3] = v.w;                               \
    }                                                                           \
    _Pragma("unroll") for (int g = 0; g < TN / 4; ++g) {                        \
        const float4 v = Bs[buf][kk][g * THREADS_X + (tx ^ B_XOR(kk) / 4)];     \
        fb[4 * g + 0] = v.x; fb[4 * g + 1] = v.y;                               \
        fb[4 * g + 2] = v.z; fb[4 * g + 3] = v.w;                               \
    }
#define MULTIPLY(fa, fb)                                                        \
    _Pragma("unroll") for (int i = 0; i < TM; ++i)                              \
        _Pragma("unroll") for (int j = 0; j < TN; ++j) acc[i][j] += fa[i] * fb[j];

    int buf = 0;
#if PIPELINED
#if SLICE_DEPTH % 2
#error "PIPELINED alternates two fragment sets by step: SLICE_DEPTH must be even"
#endif
    // Each step's fragments are read while the step before multiplies, across
    // the barrier too: the next tile is stored and the barrier passed before
    // the tile's last step, whose multiplies then hide the first reads of the
    // other buffer (last read before the previous barrier). Fragment set
    // `step % 2` belongs to the step. The loop runs at least once (K > 0), so
    // these first reads are done before the K_SLICES code reuses As.
    float a_frag[2][TM];
    float b_frag[2][TN];
    READ_FRAGMENTS(a_frag[0], b_frag[0], 0, slice * SLICE_DEPTH)
#endif
    for (int k0 = k_begin; k0 < k_end; k0 += BK) {
        const bool more = k0 + BK < k_end;
        if (more) {
            FETCH(k0 + BK)
        }
#if PIPELINED
#pragma unroll
        for (int step = 0; step < SLICE_DEPTH; ++step) {
            const int now = step % 2;
            if (step < SLICE_DEPTH - 1) {
                READ_FRAGMENTS(a_frag[now ^ 1], b_frag[now ^ 1], buf,
                               slice * SLICE_DEPTH + step + 1)
            } else {
                if (more) {
                    PUT(buf ^ 1)
                }
                barrier(CLK_LOCAL_MEM_FENCE);
                if (more) {
                    READ_FRAGMENTS(a_frag[now ^ 1], b_frag[now ^ 1], buf ^ 1,
                                   slice * SLICE_DEPTH)
                }
            }
            MULTIPLY(a_frag[now], b_frag[now])
        }
#else
#pragma unroll
        for (int step = 0; step < SLICE_DEPTH; ++step) {
            float a_frag[TM];
            float b_frag[TN];
            READ_FRAGMENTS(a_frag, b_frag, buf, slice * SLICE_DEPTH + step)
            MULTIPLY(a_frag, b_frag)
        }
        // The other buffer was last read before the previous barrier, so it
        // may be overwritten now; one barrier per tile suffices.
        if (more) {
            PUT(buf ^ 1)
        }
        barrier(CLK_LOCAL_MEM_FENCE);
#endif
        buf ^= 1;
    }

#if K_SLICES > 1
    // Slices 1.. hand their sums to slice 0 through local memory (free: no
    // work-item reads it after the loop's last barrier), four rows of each
    // work-item's block at a time (TileConfig checks that they fit), laid out
    // so that consecutive work-items touch consecutive floats. Slice 0 adds
    // them in slice order.
    __local float *partial = (__local float *)As;
    const int lane = ty * THREADS_X + tx;
#define ROUND_FLOATS (4 * TN * THREADS_X * THREADS_Y)
#define PARTIAL(s, r, j) partial[((s) - 1) * ROUND_FLOATS + ((r) * TN + (j)) * THREADS_X * THREADS_Y + lane]
#pragma unroll
    for (int g = 0; g < TM / 4; ++g) {
        if (slice > 0) {
#pragma unroll
            for (int r = 0; r < 4; ++r)
#pragma unroll
                for (int j = 0; j < TN; ++j) PARTIAL(slice, r, j) = acc[4 * g + r][j];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (slice == 0) {
            for (int s = 1; s < K_SLICES; ++s)
#pragma unroll
                for (int r = 0; r < 4; ++r)
#pragma unroll
                    for (int j = 0; j < TN; ++j) acc[4 * g + r][j] += PARTIAL(s, r, j);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#endif

#if !SUM_Z
    if (slice > 0) return;
    STORE_ACC(C + (long)m0 * N + n0, 0, 0, C_T, STORE_C)
#else
    const long size = (long)M * N;
    if (slice == 0) {
        STORE_ACC(W + z * size, m0, n0, float, STORE_FLOAT)
    }
    GLOBAL_FENCE;
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
    __local int last;
    const int tile = get_group_id(1) * get_num_groups(0) + get_group_id(0);
    if (tid == 0) last = atomic_inc(counters + tile) == ip.sc - 1;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (!last) return;
    if (slice > 0) return;  // slice 0 holds the tile's sums
    GLOBAL_FENCE;
    // Volatile: the slabs come from memory every compute unit sees, never
    // from a copy cached on this one. Summed in slab order from 0.0f, as
    // sum_splits sums, so the result does not depend on which work-group came
    // last. Whole float4s where the rows allow: read one float at a time, the
    // sum ran 1024^3 split in two on the H200 in 93 us instead of 68.
    __global volatile const float *slabs = W;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + (i / 4) * 4 * THREADS_Y + ty * 4 + i % 4;
        if (m >= M) continue;
#pragma unroll
        for (int g = 0; g < TN / 4; ++g) {
            const int n = n0 + g * 4 * THREADS_X + tx * 4;
            const long at = (long)m * N + n;
            if (C_VEC && n + 3 < N) {
                float4 sum = 0.0f;
                for (int s = 0; s < ip.sc; ++s)
                    sum += *(__global volatile const float4 *)(slabs + s * size + at);
                STORE_C4(C, at, sum);
                continue;
            }
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                if (n + j >= N) continue;
                float sum = 0.0f;
                for (int s = 0; s < ip.sc; ++s) sum += slabs[s * size + at + j];
                STORE_C(C, at + j, sum);
            }
        }
    }
    if (tid == 0) counters[tile] = 0;  // ready for the next launch
#endif
}

// C[i] = the sum over the ip.sc split-K slabs of W (each M * N floats), in
// slab order, so a split product is as deterministic as an unsplit one.
__kernel void sum_splits(PARAMS, __global const float *W, __global C_T *C)
{
    UNPACK_PARAMS
    const int i = get_global_id(0);
    const int size = M * N;
    if (i >= size) return;
    float sum = 0.0f;
    for (int s = 0; s < ip.sc; ++s) sum += W[(long)s * size + i];
    STORE_C(C, i, sum);
}

#endif
