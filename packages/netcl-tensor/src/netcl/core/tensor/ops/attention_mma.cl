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
// attention.py supplies, besides attention_mask.cl's and mma.cl's (built ahead of this
// file): DQK, DV the head dims (any; staged zero-padded to multiples of 16), WARPS, BN (a
// multiple of 16).

#define THREADS (32 * WARPS)
#define BM (16 * WARPS)
#define DQ16 ((DQK + 15) / 16 * 16)
#define DV16 ((DV + 15) / 16 * 16)
// Row pitches in 16-bit elements: 16-byte aligned rows (ldmatrix reads 16 bytes a row)
// whose eight consecutive rows start in distinct 16-byte bank groups.
#define PQ (DQ16 + 8)
#define PV (DV16 + 8)
#define ALIGNED __attribute__((aligned(16)))

// Element (r, c) of a strided 16-bit operand as its bits.
#define RAW(x, b, h, r, c) ((__global const ushort *)(x))[x##_off + (b) * x##_st.s0 \
                           + (h) * x##_st.s1 + (r) * x##_st.s2 + (c) * x##_st.s3]

// Rows r0 .. r0+R-1 of x (NC columns) into xs[r * P + c], zero past `rows` and past NC
// up to NP columns.
#define STAGE16(xs, P, x, NC, NP, R, r0, rows)                                  \
    for (int e = tid; e < (R) * (NP); e += THREADS) {                           \
        const int r = e / (NP), c = e % (NP);                                   \
        xs[r * (P) + c] = (r0) + r < (rows) && c < (NC)                         \
                          ? RAW(x, b, h, (r0) + r, c) : (ushort)0;              \
    }

// Two floats as one register of 16-bit elements, rounded to nearest even (lo first).
#if MMA_TYPE == 1
// float16's bits, to nearest even (IEEE 754 binary16) without the cl_khr_fp16 types:
// vstore_half into a private ushort reads back stale on PoCL (the store and the read
// are of different types).
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

inline uint pack16(const float lo, const float hi)
{
    return half_bits(lo) | half_bits(hi) << 16;
}
#else
inline uint pack16(const float lo, const float hi)
{
    return bf16_bits(lo) | (uint)bf16_bits(hi) << 16;
}
#endif

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

// The group's first row: late query blocks have the most keys under causality, so they
// are numbered first and start first.
#define LATE_FIRST (((int)get_num_groups(0) - 1 - (int)get_group_id(0)) * BM)

__kernel __attribute__((reqd_work_group_size(THREADS, 1, 1)))
void sdpa_forward_mma(ARG(q), ARG(k), ARG(v) MASK_ARG,
                      __global T *out, __global float *lse,
                      const int H, const int Lq, const int Lk, const float scale)
{
    const int tid = get_local_id(0), lane = tid % 32, warp = tid / 32;
    const int g = lane / 4, t = lane % 4;
    const int bh = get_group_id(1), b = bh / H, h = bh % H;
    const int i0 = LATE_FIRST;
    __local ushort qs[BM * PQ] ALIGNED, ks[BN * PQ] ALIGNED, vs[BN * PV] ALIGNED;
    MMA_SCRATCH(THREADS)

    STAGE16(qs, PQ, q, DQK, DQ16, BM, i0, Lq)
    barrier(CLK_LOCAL_MEM_FENCE);
    // The warp's 16 query rows as A fragments, one per 16 columns of the head dim.
    uint qf[DQ16 / 16][4];
#pragma unroll
    for (int kk = 0; kk < DQ16 / 16; ++kk)
        LDSM_X4(qf[kk], qs + (warp * 16 + lane % 16) * PQ + kk * 16 + lane / 16 * 8);

    // Accumulator r of a fragment is row g + 8 (r / 2), column 2 t + r % 2: index 0 of
    // m and l is row g, 1 row g + 8.
    float o[DV16 / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
    for (int j = 0; j < DV16 / 8; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) o[j][r] = 0.0f;
    int rows[2];
#pragma unroll
    for (int hh = 0; hh < 2; ++hh)
        rows[hh] = min(i0 + warp * 16 + g + 8 * hh, Lq - 1);  // masks read in bounds

    int end = Lk;
#if CAUSAL
    end = min(Lk, min(Lq, i0 + BM));
#endif
    for (int j0 = 0; j0 < end; j0 += BN) {
        barrier(CLK_LOCAL_MEM_FENCE);  // the last step's tiles are read
        STAGE16(ks, PQ, k, DQK, DQ16, BN, j0, Lk)
        STAGE16(vs, PV, v, DV, DV16, BN, j0, Lk)
        barrier(CLK_LOCAL_MEM_FENCE);
        float s[BN / 8][4];
#pragma unroll
        for (int j = 0; j < BN / 8; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) s[j][r] = 0.0f;
#pragma unroll
        for (int j = 0; j < BN / 8; j += 2) {
#pragma unroll
            for (int kk = 0; kk < DQ16 / 16; ++kk) {
                // Two n8 fragments of keys, each its two K halves (K's rows along the head
                // dim are B's columns).
                uint kf[4];
                LDSM_X4(kf, ks + (j * 8 + lane % 8 + lane / 16 * 8) * PQ
                                + kk * 16 + lane / 8 % 2 * 8);
                MMA(s[j], qf[kk], kf);
                MMA(s[j + 1], qf[kk], (kf + 2));
            }
        }
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
            // Keys 16 kj .. 16 kj + 15 of P: fragments 2 kj and 2 kj + 1 of S.
            const uint pf[4] = {pack16(s[2 * kj][0], s[2 * kj][1]),
                                pack16(s[2 * kj][2], s[2 * kj][3]),
                                pack16(s[2 * kj + 1][0], s[2 * kj + 1][1]),
                                pack16(s[2 * kj + 1][2], s[2 * kj + 1][3])};
#pragma unroll
            for (int j = 0; j < DV16 / 8; j += 2) {
                uint vf[4];
                LDSM_X4_T(vf, vs + (kj * 16 + lane % 8 + lane / 8 % 2 * 8) * PV
                                 + j * 8 + lane / 16 * 8);
                MMA(o[j], pf, vf);
                MMA(o[j + 1], pf, (vf + 2));
            }
        }
    }
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
        const float sum = quad_sum(l[hh] MMA_SCRATCH_ARG);
        const int row = i0 + warp * 16 + g + 8 * hh;
        if (row >= Lq) continue;
        // A row every key is masked out of gives 0, as PyTorch's math path does.
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
#pragma unroll
        for (int j = 0; j < DV16 / 8; ++j)
#pragma unroll
            for (int c = 0; c < 2; ++c) {
                const int col = j * 8 + 2 * t + c;
                if (col < DV) STORE(out, (bh * Lq + row) * DV + col, o[j][2 * hh + c] * inv);
            }
        if (t == 0) lse[bh * Lq + row] = sum > 0.0f ? m[hh] + log(sum) : -INFINITY;
    }
}
