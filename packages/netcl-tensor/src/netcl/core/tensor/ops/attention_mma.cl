// Scaled dot-product attention for float16 and bfloat16 on tensor cores: FlashAttention-2
// (Dao, 2023, "FlashAttention-2", algorithm 1) on mma.sync m16n8k16 through mma.cl's
// helpers, the same online softmax and log-sum-exp as attention_tiled.cl.
//
// A work-group of WARPS warps owns BM = 16 WARPS query rows, each warp 16 of them, and
// walks the keys in steps of BN staged in local memory as 16-bit elements. A warp holds
// its query rows as A fragments for the whole walk; S = Q K^T of a step is BN / 8
// float32 accumulator fragments (K's rows are B's columns, read by ldmatrix). The row
// maximum and sum run on those fragments: a row's BN scores lie in the 4 lanes of one
// quad (PTX ISA, the m16n8 accumulator layout), so a quad's exchange (SHFL_XOR 1 and 2)
// completes them. P is rounded to 16 bits straight into A fragments (an accumulator pair
// is an A register of the same rows and keys) and O += P V reads V by ldmatrix .trans.
// The row sum l adds P unrounded, as FlashAttention does.
//
// The backward is by default attention_tiled.cl's two passes on the same fragments, P
// recomputed from the saved log-sum-exp: over a group's query rows, dP = dO V^T and dQ +=
// dS K (dS = P (dP - D) rounded to 16 bits as an A fragment, K by .trans); over a group's
// keys, S^T = K Q^T, dP^T = V dO^T, dV += P^T dO and dK += dS^T Q. No atomics. Built with
// FUSED_BACKWARD 1 (attention.MMA_BACKWARD; with attention_mma_fused.cl), the backward
// is one pass, over keys: each step's dS also gives the step's dQ terms (see
// sdpa_backward_kv_mma), between sdpa_backward_delta_mma (D, ahead) and
// sdpa_backward_dq_mma (the dQ sum, after). Its "partials" form has no atomics either;
// its "atomic" form (DQ_ATOMIC 1) adds dQ with red.global.add.f32.
//
// attention.py supplies, besides attention_mask.cl's, mma.cl's and attention_mma_stage.cl's
// (built ahead of this file): DQK, DV the head dims (any; staged zero-padded to multiples
// of 16), WARPS, BN (a multiple of 16), PIPELINED; and as the last argument `vecs`, the
// operands STAGE16 reads a vector at a time.

#define THREADS (32 * WARPS)
#define BM (16 * WARPS)
#define DQ16 ((DQK + 15) / 16 * 16)
#define DV16 ((DV + 15) / 16 * 16)
// Row pitches in 16-bit elements: 16-byte aligned rows (ldmatrix reads 16 bytes a row)
// whose eight consecutive rows start in distinct 16-byte bank groups.
#define PQ (DQ16 + 8)
#define PV (DV16 + 8)
#define PS (BM + 8)
#define ALIGNED __attribute__((aligned(16)))

// A float as 16-bit bits (BITS16), and two as one register of 16-bit elements (lo
// first), rounded to nearest even.
#if MMA_TYPE == 1
// float16's bits, to nearest even (IEEE 754 binary16), in integer arithmetic: without
// cl_khr_fp16 a private half exists only behind a pointer, and vstore_half through a
// half pointer onto a private ushort gave wrong P on PoCL.
inline uint half_bits(const float x)
{
    const uint bits = as_uint(x), sign = bits >> 16 & 0x8000u, a = bits & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return sign | 0x7E00u;        // NaN stays NaN
    if (a >= 0x47800000u) return sign | 0x7C00u;       // 2^16 and up: infinity
    if (a < 0x38800000u)                               // under 2^-14: subnormal,
        return sign | (uint)rint(as_float(a) * 0x1p24f);  // in units of 2^-24 (exact scale)
    // Rebias the exponent (127 -> 15) and round off 13 mantissa bits, ties to even; a
    // carry raises the exponent, up to infinity from 65520.
    const uint r = a - 0x38000000u;
    return sign | (r + 0xFFFu + (r >> 13 & 1u)) >> 13;
}

#define BITS16(x) half_bits(x)
#else
#define BITS16(x) ((uint)bf16_bits(x))
#endif

inline uint pack16(const float lo, const float hi)
{
    return BITS16(lo) | BITS16(hi) << 16;
}

// The maximum and the sum over a row's quad (the 4 lanes holding its columns).
inline float quad_max(float x MMA_SCRATCH_PARAM)
{
    x = fmax(x, SHFL_XOR(x, 1));
    return fmax(x, SHFL_XOR(x, 2));
}

inline float quad_sum(float x MMA_SCRATCH_PARAM)
{
    x += SHFL_XOR(x, 1);
    return x + SHFL_XOR(x, 2);
}

// The A fragments of `tile`'s 16 rows from row0 (pitch P), NK slices of 16 columns.
#define LOAD_A(af, tile, P, row0, NK)                                           \
    _Pragma("unroll") for (int kk = 0; kk < (NK); ++kk)                         \
        LDSM_X4(af[kk], (tile) + ((row0) + lane % 16) * (P) + kk * 16 + lane / 16 * 8);

// acc[j] (j < NB / 8) += A (fragments af, NK slices deep) times the transpose of the NB
// rows of `tile` (pitch P): the tile's rows are B's columns, read by ldmatrix as two n8
// fragments, each its two K halves.
#define MMA_ABT(acc, af, tile, P, NB, NK)                                       \
    _Pragma("unroll") for (int j = 0; j < (NB) / 8; j += 2)                     \
        _Pragma("unroll") for (int kk = 0; kk < (NK); ++kk) {                   \
            uint bf[4];                                                         \
            LDSM_X4(bf, (tile) + (j * 8 + lane % 8 + lane / 16 * 8) * (P)       \
                            + kk * 16 + lane / 8 % 2 * 8);                      \
            MMA(acc[j], af[kk], bf);                                            \
            MMA(acc[j + 1], af[kk], (bf + 2));                                  \
        }

// acc[j] (j < NN / 8) += the A fragment af (K slice kj) times rows 16 kj .. 16 kj + 15 of
// `tile` (pitch P): B stored along N, read by ldmatrix .trans.
#define MMA_AB(acc, af, tile, P, kj, NN)                                        \
    _Pragma("unroll") for (int j = 0; j < (NN) / 8; j += 2) {                   \
        uint bf[4];                                                             \
        LDSM_X4_T(bf, (tile) + ((kj) * 16 + lane % 8 + lane / 8 % 2 * 8) * (P)  \
                          + j * 8 + lane / 16 * 8);                             \
        MMA(acc[j], af, bf);                                                    \
        MMA(acc[j + 1], af, (bf + 2));                                          \
    }

// Columns 16 kj .. 16 kj + 15 of the accumulators x as an A fragment of 16-bit elements:
// accumulator fragments 2 kj and 2 kj + 1, their pairs (r 0, 1 and 2, 3) A's registers.
#define PACK_A(af, x, kj)                                                       \
    const uint af[4] = {pack16(x[2 * (kj)][0], x[2 * (kj)][1]),                 \
                        pack16(x[2 * (kj)][2], x[2 * (kj)][3]),                 \
                        pack16(x[2 * (kj) + 1][0], x[2 * (kj) + 1][1]),         \
                        pack16(x[2 * (kj) + 1][2], x[2 * (kj) + 1][3])};

#define ZERO_ACC(acc, N)                                                        \
    _Pragma("unroll") for (int j = 0; j < (N); ++j)                             \
        _Pragma("unroll") for (int r = 0; r < 4; ++r) acc[j][r] = 0.0f;

// Accumulator r of a fragment is row g + 8 (r / 2), column 2 t + r % 2 of its 16 x 8
// block (PTX ISA, the m16n8 accumulator layout); per-row values are kept for r / 2.
#define SETUP                                                                   \
    const int tid = get_local_id(0), lane = tid % 32, warp = tid / 32;          \
    const int g = lane / 4, t = lane % 4;                                       \
    const int bh = bh0 + get_group_id(1), b = bh / H, h = bh % H;

// Columns c of accumulator rows `row`'s result (16 x N accumulators acc, times f) into
// the contiguous (.., rows, NC) tensor x, but rows past `rows` and columns past NC.
#define STORE_ROWS(x, acc, N, NC, row0, rows, f)                                \
    _Pragma("unroll") for (int hh = 0; hh < 2; ++hh) {                          \
        const int row = (row0) + warp * 16 + g + 8 * hh;                        \
        if (row >= (rows)) continue;                                            \
        _Pragma("unroll") for (int j = 0; j < (N); ++j)                         \
            _Pragma("unroll") for (int c = 0; c < 2; ++c) {                     \
                const int col = j * 8 + 2 * t + c;                              \
                if (col < (NC))                                                 \
                    STORE(x, (bh * (rows) + row) * (NC) + col, acc[j][2 * hh + c] * (f)); \
            }                                                                   \
    }

// D = rowsum(dO * O) of a query row, for the dQ pass and for the one-pass backward's
// sdpa_backward_delta_mma: one sum in one order, on which the one-pass dK and dV
// matching the two passes' bit for bit rests.
inline float row_delta_of(ARG(dout), __global const T *out, const int b, const int h,
                          const int bh, const int Lq, const int row)
{
    float d = 0.0f;
    for (int c = 0; c < DV; ++c)
        d += AT(dout, b, h, row, c) * LOAD(out, (bh * Lq + row) * DV + c);
    return d;
}

// attention_mma_fused.cl's build (FUSED_BACKWARD 1) compiles its kernels alone: PoCL's
// compile time grows with every kernel of a program.
#if !FUSED_BACKWARD
__kernel __attribute__((reqd_work_group_size(THREADS, 1, 1)))
void sdpa_forward_mma(ARG(q), ARG(k), ARG(v) MASK_ARG,
                      __global T *out, __global float *lse,
                      const int H, const int Lq, const int Lk, const float scale, const int bh0,
                      const int vecs)
{
    SETUP
    const int i0 = LATE_FIRST;
    __local ushort qs[BM * PQ] ALIGNED, ks[STAGES * BN * PQ] ALIGNED,
                   vs[STAGES * BN * PV] ALIGNED;
    MMA_SCRATCH(THREADS)
#if PIPELINED
    CP_ASYNC_QUEUE(2 * (COPIES(BN, DQ16) + COPIES(BN, DV16)))
#endif
#define STAGE_STEP(PUT, buf, j0)                                                \
    STAGE16_BY(PUT, ks + (buf) * BN * PQ, PQ, k, DQK, DQ16, BN, j0, Lk)         \
    STAGE16_BY(PUT, vs + (buf) * BN * PV, PV, v, DV, DV16, BN, j0, Lk)

    STAGE16(qs, PQ, q, DQK, DQ16, BM, i0, Lq)
    barrier(CLK_LOCAL_MEM_FENCE);
    uint qf[DQ16 / 16][4];  // the warp's query rows, for the whole walk
    LOAD_A(qf, qs, PQ, warp * 16, DQ16 / 16)
    float o[DV16 / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    ZERO_ACC(o, DV16 / 8)
    int rows[2];
#pragma unroll
    for (int hh = 0; hh < 2; ++hh)
        rows[hh] = min(i0 + warp * 16 + g + 8 * hh, Lq - 1);  // masks read in bounds

    const int end = keys_seen(Lk, Lq, i0 + BM);
    WALK_START(0, end)
    for (int j0 = 0, n = 0; j0 < end; j0 += BN, ++n) {
        STEP_TOP(n, j0, BN, end)
        __local const ushort *kt = ks + n % STAGES * BN * PQ, *vt = vs + n % STAGES * BN * PV;
        float s[BN / 8][4];
        ZERO_ACC(s, BN / 8)
        MMA_ABT(s, qf, kt, PQ, BN, DQ16 / 16)
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int j = 0; j < BN / 8; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int col = j0 + j * 8 + 2 * t + r % 2;
                s[j][r] = col < Lk ? MASKED(s[j][r] * scale, rows[r / 2], col) : -INFINITY;
                mx[r / 2] = fmax(mx[r / 2], s[j][r]);
            }
        float correction[2];
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
            const float top = fmax(m[hh], quad_max(mx[hh] MMA_SCRATCH_ARG));
            // Nothing unmasked yet: m stays -inf, P is 0 and nothing needs rescaling.
            correction[hh] = top == -INFINITY ? 1.0f : exp(m[hh] - top);
            l[hh] *= correction[hh];
            m[hh] = top;
        }
#pragma unroll
        for (int j = 0; j < DV16 / 8; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) o[j][r] *= correction[r / 2];
#pragma unroll
        for (int j = 0; j < BN / 8; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const float top = m[r / 2];
                s[j][r] = top == -INFINITY ? 0.0f : exp(s[j][r] - top);
                l[r / 2] += s[j][r];
            }
#pragma unroll
        for (int kj = 0; kj < BN / 16; ++kj) {
            PACK_A(pf, s, kj)
            MMA_AB(o, pf, vt, PV, kj, DV16)
        }
        STEP_END()
    }
#undef STAGE_STEP
    float inv[2];
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
        const float sum = quad_sum(l[hh] MMA_SCRATCH_ARG);
        // A row every key is masked out of gives 0, as PyTorch's math path does.
        inv[hh] = sum > 0.0f ? 1.0f / sum : 0.0f;
        const int row = i0 + warp * 16 + g + 8 * hh;
        if (t == 0 && row < Lq) lse[bh * Lq + row] = sum > 0.0f ? m[hh] + log(sum) : -INFINITY;
    }
#pragma unroll
    for (int j = 0; j < DV16 / 8; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) o[j][r] *= inv[r / 2];
    STORE_ROWS(out, o, DV16 / 8, DV, i0, Lq, 1.0f)
}

// dQ = scale * sum_j dS_ij k_j with dS = P * (dO v^T - D); also D = rowsum(dO * O).
__kernel __attribute__((reqd_work_group_size(THREADS, 1, 1)))
void sdpa_backward_q_mma(ARG(q), ARG(k), ARG(v) MASK_ARG, ARG(dout),
                         __global const T *out, __global const float *lse,
                         __global T *dq, __global float *delta,
                         const int H, const int Lq, const int Lk, const float scale, const int bh0,
                         const int vecs)
{
    SETUP
    const int i0 = LATE_FIRST;
    __local ushort qs[BM * PQ] ALIGNED, dos[BM * PV] ALIGNED;
    __local ushort ks[BN * PQ] ALIGNED, vs[BN * PV] ALIGNED;
    __local float row_delta[BM];
    MMA_SCRATCH(THREADS)

    STAGE16(qs, PQ, q, DQK, DQ16, BM, i0, Lq)
    STAGE16(dos, PV, dout, DV, DV16, BM, i0, Lq)
    for (int r = tid; r < BM; r += THREADS) {
        const int row = i0 + r;
        const float d = row < Lq ? row_delta_of(dout, dout_off, dout_st, out, b, h, bh, Lq, row)
                                 : 0.0f;
        if (row < Lq) delta[bh * Lq + row] = d;
        row_delta[r] = d;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    uint qf[DQ16 / 16][4], dof[DV16 / 16][4];
    LOAD_A(qf, qs, PQ, warp * 16, DQ16 / 16)
    LOAD_A(dof, dos, PV, warp * 16, DV16 / 16)
    int rows[2];
    float row_lse[2], row_d[2];
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
        const int r = warp * 16 + g + 8 * hh, row = i0 + r;
        rows[hh] = min(row, Lq - 1);
        // +inf past the last row: its P is 0 (exp(s - inf)).
        row_lse[hh] = row < Lq ? lse[bh * Lq + row] : INFINITY;
        row_d[hh] = row_delta[r];
    }
    float acc[DQ16 / 8][4];
    ZERO_ACC(acc, DQ16 / 8)
    const int end = keys_seen(Lk, Lq, i0 + BM);
    for (int j0 = 0; j0 < end; j0 += BN) {
        barrier(CLK_LOCAL_MEM_FENCE);
        STAGE16(ks, PQ, k, DQK, DQ16, BN, j0, Lk)
        STAGE16(vs, PV, v, DV, DV16, BN, j0, Lk)
        barrier(CLK_LOCAL_MEM_FENCE);
        float s[BN / 8][4], dp[BN / 8][4];
        ZERO_ACC(s, BN / 8)
        ZERO_ACC(dp, BN / 8)
        MMA_ABT(s, qf, ks, PQ, BN, DQ16 / 16)
        MMA_ABT(dp, dof, vs, PV, BN, DV16 / 16)
#pragma unroll
        for (int j = 0; j < BN / 8; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int col = j0 + j * 8 + 2 * t + r % 2;
                const float sc = col < Lk ? MASKED(s[j][r] * scale, rows[r / 2], col)
                                          : -INFINITY;
                const float p = sc == -INFINITY ? 0.0f : exp(sc - row_lse[r / 2]);
                s[j][r] = p * (dp[j][r] - row_d[r / 2]);  // dS
            }
#pragma unroll
        for (int kj = 0; kj < BN / 16; ++kj) {
            PACK_A(dsf, s, kj)
            MMA_AB(acc, dsf, ks, PQ, kj, DQ16)
        }
    }
    STORE_ROWS(dq, acc, DQ16 / 8, DQK, i0, Lq, scale)
}
#endif  // !FUSED_BACKWARD

// dV = sum_i P_ij dO_i and dK = scale * sum_i dS_ij q_i, the group owning BM keys.
// FUSED_BACKWARD 1 (FlashAttention-2's backward, Dao 2023, algorithm 2, without its
// atomics): each step's dS, computed here once, also gives the step's queries their dQ
// from these keys, dS K, where the two-pass backward's dQ pass computes S and dP again
// (5 products a block pair, not 7). Each key block writes its dQ terms to a plane of its
// own in dq_part, (batch x heads, key blocks, Lq, DQK) float32, which
// sdpa_backward_dq_mma sums in key-block order: the same bits every run. DQ_ATOMIC 1
// adds them into one plane (Lq, DQK) a (batch, head) instead (red.global.add.f32, as
// FlashAttention-2): less memory and traffic, an order of additions that varies.
__kernel __attribute__((reqd_work_group_size(THREADS, 1, 1)))
void sdpa_backward_kv_mma(ARG(q), ARG(k), ARG(v) MASK_ARG, ARG(dout),
                          __global const float *lse, __global const float *delta,
#if FUSED_BACKWARD
                          __global float *dq_part,
#endif
                          __global T *dk, __global T *dv,
                          const int H, const int Lq, const int Lk, const float scale, const int bh0,
                         const int vecs)
{
    SETUP
    const int j0 = EARLY_FIRST;
    __local ushort qs[STAGES * BN * PQ] ALIGNED, dos[STAGES * BN * PV] ALIGNED;
    __local float row_lse[STAGES * BN], row_delta[STAGES * BN];
    // Pipelined, the group's V rows, and its K rows but in the fused build (whose dQ step
    // reads K again), are staged in the walk's buffers where they fit (two steps hold BM
    // rows) and read into fragments before the walk's first copies: 18 KiB less at 64
    // keys and head dim 64.
#if PIPELINED && STAGES * BN >= BM
    __local ushort *vs = dos;
#if FUSED_BACKWARD
    __local ushort ks[BM * PQ] ALIGNED;
#else
    __local ushort *ks = qs;
#endif
#else
    __local ushort ks[BM * PQ] ALIGNED, vs[BM * PV] ALIGNED;
#endif
    MMA_SCRATCH(THREADS)
#if PIPELINED
    CP_ASYNC_QUEUE(2 * (COPIES(BN, DQ16) + COPIES(BN, DV16)))
#endif
#define STAGE_STEP(PUT, buf, i0)                                                \
    STAGE16_BY(PUT, qs + (buf) * BN * PQ, PQ, q, DQK, DQ16, BN, i0, Lq)         \
    STAGE16_BY(PUT, dos + (buf) * BN * PV, PV, dout, DV, DV16, BN, i0, Lq)      \
    for (int r = tid; r < BN; r += THREADS) {                                   \
        row_lse[(buf) * BN + r] = (i0) + r < Lq ? lse[bh * Lq + (i0) + r] : INFINITY; \
        row_delta[(buf) * BN + r] = (i0) + r < Lq ? delta[bh * Lq + (i0) + r] : 0.0f; \
    }
#if FUSED_BACKWARD
    // dS of a step, rows its queries, columns the group's keys, as 16-bit A operands.
    __local ushort dss[BN * PS] ALIGNED;
#if DQ_ATOMIC
    __global float *dq_plane = dq_part + bh * Lq * DQK;
#else
    __global float *dq_plane = dq_part + (bh * (int)get_num_groups(0) + (int)get_group_id(0))
                                         * Lq * DQK;
#endif
#endif

    STAGE16(ks, PQ, k, DQK, DQ16, BM, j0, Lk)
    STAGE16(vs, PV, v, DV, DV16, BM, j0, Lk)
    barrier(CLK_LOCAL_MEM_FENCE);
    uint kf[DQ16 / 16][4], vf[DV16 / 16][4];  // the warp's keys, for the whole walk
    LOAD_A(kf, ks, PQ, warp * 16, DQ16 / 16)
    LOAD_A(vf, vs, PV, warp * 16, DV16 / 16)
#if PIPELINED && STAGES * BN >= BM
    barrier(CLK_LOCAL_MEM_FENCE);  // every warp's fragments read before the walk's copies
#endif
    int keys[2];
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) keys[hh] = j0 + warp * 16 + g + 8 * hh;
    float dka[DQ16 / 8][4], dva[DV16 / 8][4];
    ZERO_ACC(dka, DQ16 / 8)
    ZERO_ACC(dva, DV16 / 8)
    WALK_START(first_query_seen(j0, BN), Lq)
    for (int i0 = first_query_seen(j0, BN), n = 0; i0 < Lq; i0 += BN, ++n) {
        STEP_TOP(n, i0, BN, Lq)
        __local const ushort *qt = qs + n % STAGES * BN * PQ, *dot = dos + n % STAGES * BN * PV;
        __local const float *step_lse = row_lse + n % STAGES * BN;
        __local const float *step_delta = row_delta + n % STAGES * BN;
        // S^T and dP^T: rows the warp's keys, columns the step's queries.
        float s[BN / 8][4], dp[BN / 8][4];
        ZERO_ACC(s, BN / 8)
        ZERO_ACC(dp, BN / 8)
        MMA_ABT(s, kf, qt, PQ, BN, DQ16 / 16)
        MMA_ABT(dp, vf, dot, PV, BN, DV16 / 16)
#pragma unroll
        for (int j = 0; j < BN / 8; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int c = j * 8 + 2 * t + r % 2, row = i0 + c, key = keys[r / 2];
                const float sc = row < Lq && key < Lk
                    ? MASKED(s[j][r] * scale, row, key) : -INFINITY;
                const float p = sc == -INFINITY ? 0.0f : exp(sc - step_lse[c]);
                s[j][r] = p;
                dp[j][r] = p * (dp[j][r] - step_delta[c]);  // dS^T
#if FUSED_BACKWARD
                // Rounded as PACK_A rounds it for dK.
                dss[c * PS + warp * 16 + g + 8 * (r / 2)] = (ushort)BITS16(dp[j][r]);
#endif
            }
#pragma unroll
        for (int kj = 0; kj < BN / 16; ++kj) {
            PACK_A(pf, s, kj)
            MMA_AB(dva, pf, dot, PV, kj, DV16)
            PACK_A(dsf, dp, kj)
            MMA_AB(dka, dsf, qt, PQ, kj, DQ16)
        }
#if FUSED_BACKWARD
        barrier(CLK_LOCAL_MEM_FENCE);  // every warp's dS is in dss
        DQ_FROM_KEYS(i0)
#endif
        STEP_END()
    }
#undef STAGE_STEP
    STORE_ROWS(dk, dka, DQ16 / 8, DQK, j0, Lk, scale)
    STORE_ROWS(dv, dva, DV16 / 8, DV, j0, Lk, 1.0f)
}

#if FUSED_BACKWARD
// D = rowsum(dO * O) of each query row ahead of the one-pass walk, a work-item a row.
__kernel void sdpa_backward_delta_mma(ARG(dout), __global const T *out,
                                      __global float *delta,
                                      const int H, const int Lq, const int Lk, const float scale,
                                      const int bh0, const int vecs)
{
    const int row = get_global_id(0), bh = bh0 + get_group_id(1), b = bh / H, h = bh % H;
    if (row < Lq)
        delta[bh * Lq + row] = row_delta_of(dout, dout_off, dout_st, out, b, h, bh, Lq, row);
}
#endif
