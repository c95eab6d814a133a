// Scaled dot-product attention on register tiles: attention.cl's scheme (FlashAttention-2's
// online softmax forward, a dQ pass and a dK/dV pass recomputing P from the saved
// log-sum-exp) with the products done as small matrix multiplies, for GPUs.
//
// A work-group owns BM rows (queries in the forward and the dQ pass, keys in the dK/dV
// pass) and walks the other side in steps of BN rows staged in local memory, where every
// work-item of the group reads them. The group is RY x RX work-items; work-item (ty, tx)
// holds rows ROW(i) (i < TM) and columns tx + j*RX of each BM x BN and BM x head-dim
// product in registers, so a value read from local memory feeds TM or TN multiply-adds.
// Local tiles are stored transposed, [column][row], with a pitch of rows + 1 (rows + 4
// for VEC's aligned rows): a warp reading along rows or along columns then hits distinct
// banks.
//
// attention.py supplies, besides attention_mask.cl's (built ahead of this file):
//   DQK, DV   the head dims of q/k and of v, multiples of RX
//   BM, BN    the rows a group owns and the rows a step stages, multiples of RY and RX
//   RY, RX    the work-group's shape
//   VEC       1: each work-item's TM rows are consecutive, read four at a time (TM % 4 == 0)

#define NT (RY * RX)
#define TM (BM / RY)
#define TN (BN / RX)
#define PN (BN + 1)

#if VEC
// A work-item's rows are ty*TM .. ty*TM+TM-1, read from local memory as float4s: a row
// pitch of BM + 4 keeps them 16-byte aligned, and one load serves four rows.
#define ROW(i) (ty * TM + (i))
#define PM (BM + 4)
#define LOAD_ROWS(av, A, c)                                                     \
    _Pragma("unroll") for (int i = 0; i < TM; i += 4) {                         \
        const float4 a4 = *(__local const float4 *)&A(c, ROW(i));               \
        av[i] = a4.x; av[i + 1] = a4.y; av[i + 2] = a4.z; av[i + 3] = a4.w;     \
    }
#else
#define ROW(i) (ty + (i) * RY)
#define PM (BM + 1)
#define LOAD_ROWS(av, A, c) \
    _Pragma("unroll") for (int i = 0; i < TM; ++i) av[i] = A(c, ROW(i));
#endif
#define ALIGNED __attribute__((aligned(16)))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

// Rows r0 .. r0+R-1 of x (columns 0 .. NC-1) into xt[c * P + r], zero past `rows`.
#define STAGE(xt, P, x, NC, R, r0, rows)                                        \
    for (int e = lid; e < (R) * (NC); e += NT) {                                \
        const int r = e / (NC), c = e % (NC);                                   \
        xt[c * (P) + r] = (r0) + r < (rows) ? AT(x, b, h, (r0) + r, c) : 0.0f;  \
    }

// acc[i][j] += sum over c < n of A(c, ROW(i)) * B(c, tx + j*RX) (j < NJ); A and B
// name macros reading local memory, A's rows in arrays of pitch PM.
#define PRODUCT(acc, NJ, n, A, B)                                               \
    for (int c = 0; c < (n); ++c) {                                             \
        float av[TM], bv[NJ];                                                   \
        LOAD_ROWS(av, A, c)                                                     \
        _Pragma("unroll") for (int j = 0; j < NJ; ++j) bv[j] = B(c, tx + j * RX); \
        _Pragma("unroll") for (int i = 0; i < TM; ++i)                          \
            _Pragma("unroll") for (int j = 0; j < NJ; ++j)                      \
                acc[i][j] = fma(av[i], bv[j], acc[i][j]);                       \
    }

#define ZERO(acc, NI, NJ)                                                       \
    _Pragma("unroll") for (int i = 0; i < (NI); ++i)                            \
        _Pragma("unroll") for (int j = 0; j < (NJ); ++j) acc[i][j] = 0.0f;

#define SETUP                                                                   \
    const int lid = get_local_id(0), tx = lid % RX, ty = lid / RX;              \
    const int bh = bh0 + get_group_id(1), b = bh / H, h = bh % H;

__kernel __attribute__((reqd_work_group_size(NT, 1, 1)))
void sdpa_forward_tiled(ARG(q), ARG(k), ARG(v) MASK_ARG,
                        __global T *out, __global float *lse,
                        const int H, const int Lq, const int Lk, const float scale, const int bh0)
{
    SETUP
    const int i0 = LATE_FIRST;
    // kp holds the key tile, then (once the scores are taken) the tile's P.
    __local float qt[DQK * PM] ALIGNED, kp[MAX(DQK * PN, BN * PM)] ALIGNED;
    __local float vt[DV * PN], red[BM * RX];
#define QT(c, r) qt[(c) * PM + (r)]
#define KT(c, r) kp[(c) * PN + (r)]
#define PT(c, r) kp[(c) * PM + (r)]
#define VT(c, r) vt[(r) * PN + (c)]
    STAGE(qt, PM, q, DQK, BM, i0, Lq)
    float o[TM][DV / RX], m[TM], l[TM];
    ZERO(o, TM, DV / RX)
    #pragma unroll
    for (int i = 0; i < TM; ++i) {
        m[i] = -INFINITY;
        l[i] = 0.0f;  // this work-item's columns' share of the row sum
    }
    const int end = keys_seen(Lk, Lq, i0 + BM);
    for (int j0 = 0; j0 < end; j0 += BN) {
        barrier(CLK_LOCAL_MEM_FENCE);
        STAGE(kp, PN, k, DQK, BN, j0, Lk)
        STAGE(vt, PN, v, DV, BN, j0, Lk)
        barrier(CLK_LOCAL_MEM_FENCE);
        float s[TM][TN];
        ZERO(s, TM, TN)
        PRODUCT(s, TN, DQK, QT, KT)
        #pragma unroll
        for (int i = 0; i < TM; ++i) {
            const int row = min(i0 + ROW(i), Lq - 1);
            float mx = -INFINITY;
            #pragma unroll
            for (int j = 0; j < TN; ++j) {
                const int col = j0 + tx + j * RX;
                s[i][j] = col < Lk ? MASKED(s[i][j] * scale, row, col) : -INFINITY;
                mx = fmax(mx, s[i][j]);
            }
            red[(ROW(i)) * RX + tx] = mx;
        }
        barrier(CLK_LOCAL_MEM_FENCE);  // the maxima are in and the key tile is read
        #pragma unroll
        for (int i = 0; i < TM; ++i) {
            float mx = m[i];
            #pragma unroll
            for (int x = 0; x < RX; ++x) mx = fmax(mx, red[(ROW(i)) * RX + x]);
            // Nothing unmasked yet: m stays -inf, P is 0 and nothing needs rescaling.
            const float correction = mx == -INFINITY ? 1.0f : exp(m[i] - mx);
            l[i] *= correction;
            #pragma unroll
            for (int j = 0; j < DV / RX; ++j) o[i][j] *= correction;
            m[i] = mx;
            #pragma unroll
            for (int j = 0; j < TN; ++j) {
                const float p = mx == -INFINITY ? 0.0f : exp(s[i][j] - mx);
                l[i] += p;
                PT(tx + j * RX, ROW(i)) = p;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        PRODUCT(o, DV / RX, BN, PT, VT)
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    #pragma unroll
    for (int i = 0; i < TM; ++i) red[(ROW(i)) * RX + tx] = l[i];
    barrier(CLK_LOCAL_MEM_FENCE);
    #pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int r = ROW(i), row = i0 + r;
        if (row >= Lq) break;
        float sum = 0.0f;
        #pragma unroll
        for (int x = 0; x < RX; ++x) sum += red[r * RX + x];
        // A row every key is masked out of gives 0, as PyTorch's math path does.
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        #pragma unroll
        for (int j = 0; j < DV / RX; ++j)
            STORE(out, (bh * Lq + row) * DV + tx + j * RX, o[i][j] * inv);
        if (tx == 0) lse[bh * Lq + row] = sum > 0.0f ? m[i] + log(sum) : -INFINITY;
    }
#undef QT
#undef KT
#undef PT
#undef VT
}

// dQ = scale * sum_j dS_ij k_j with dS = P * (dO v^T - D); also D = rowsum(dO * O).
__kernel __attribute__((reqd_work_group_size(NT, 1, 1)))
void sdpa_backward_q_tiled(ARG(q), ARG(k), ARG(v) MASK_ARG, ARG(dout),
                           __global const T *out, __global const float *lse,
                           __global T *dq, __global float *delta,
                           const int H, const int Lq, const int Lk, const float scale, const int bh0)
{
    SETUP
    const int i0 = LATE_FIRST;
    __local float qt[DQK * PM] ALIGNED, dot[DV * PM] ALIGNED, dst[BN * PM] ALIGNED;
    __local float kt[DQK * PN], vt[DV * PN];
    __local float row_lse[BM], row_delta[BM];
#define QT(c, r) qt[(c) * PM + (r)]
#define DOT(c, r) dot[(c) * PM + (r)]
#define KT(c, r) kt[(c) * PN + (r)]
#define KN(c, r) kt[(r) * PN + (c)]
#define VT(c, r) vt[(c) * PN + (r)]
#define DST(c, r) dst[(c) * PM + (r)]
    STAGE(qt, PM, q, DQK, BM, i0, Lq)
    STAGE(dot, PM, dout, DV, BM, i0, Lq)
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int r = lid; r < BM; r += NT) {
        const int row = i0 + r;
        float d = 0.0f;
        if (row < Lq) {
            for (int c = 0; c < DV; ++c) d += DOT(c, r) * LOAD(out, (bh * Lq + row) * DV + c);
            delta[bh * Lq + row] = d;
        }
        row_delta[r] = d;
        row_lse[r] = row < Lq ? lse[bh * Lq + row] : -INFINITY;
    }
    float acc[TM][DQK / RX];
    ZERO(acc, TM, DQK / RX)
    const int end = keys_seen(Lk, Lq, i0 + BM);
    for (int j0 = 0; j0 < end; j0 += BN) {
        barrier(CLK_LOCAL_MEM_FENCE);
        STAGE(kt, PN, k, DQK, BN, j0, Lk)
        STAGE(vt, PN, v, DV, BN, j0, Lk)
        barrier(CLK_LOCAL_MEM_FENCE);
        float s[TM][TN], dp[TM][TN];
        ZERO(s, TM, TN)
        ZERO(dp, TM, TN)
        PRODUCT(s, TN, DQK, QT, KT)
        PRODUCT(dp, TN, DV, DOT, VT)
        #pragma unroll
        for (int i = 0; i < TM; ++i) {
            const int r = ROW(i), row = min(i0 + r, Lq - 1);
            #pragma unroll
            for (int j = 0; j < TN; ++j) {
                const int col = j0 + tx + j * RX;
                const float sc = col < Lk ? MASKED(s[i][j] * scale, row, col) : -INFINITY;
                const float p = sc == -INFINITY ? 0.0f : exp(sc - row_lse[r]);
                DST(tx + j * RX, r) = p * (dp[i][j] - row_delta[r]);
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        PRODUCT(acc, DQK / RX, BN, DST, KN)
    }
    #pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int row = i0 + ROW(i);
        if (row >= Lq) break;
        #pragma unroll
        for (int j = 0; j < DQK / RX; ++j)
            STORE(dq, (bh * Lq + row) * DQK + tx + j * RX, acc[i][j] * scale);
    }
#undef QT
#undef DOT
#undef KT
#undef KN
#undef VT
#undef DST
}

// dV = sum_i P_ij dO_i and dK = scale * sum_i dS_ij q_i, the group owning BM keys.
__kernel __attribute__((reqd_work_group_size(NT, 1, 1)))
void sdpa_backward_kv_tiled(ARG(q), ARG(k), ARG(v) MASK_ARG, ARG(dout),
                            __global const float *lse, __global const float *delta,
                            __global T *dk, __global T *dv,
                            const int H, const int Lq, const int Lk, const float scale, const int bh0)
{
    SETUP
    const int j0 = EARLY_FIRST;
    __local float kt[DQK * PM] ALIGNED, vt[DV * PM] ALIGNED;
    __local float pt[BN * PM] ALIGNED, dst[BN * PM] ALIGNED;
    __local float qt[DQK * PN], dot[DV * PN], row_lse[BN], row_delta[BN];
#define KT(c, r) kt[(c) * PM + (r)]
#define VT(c, r) vt[(c) * PM + (r)]
#define QT(c, r) qt[(c) * PN + (r)]
#define QN(c, r) qt[(r) * PN + (c)]
#define DOT(c, r) dot[(c) * PN + (r)]
#define DON(c, r) dot[(r) * PN + (c)]
#define PT(c, r) pt[(c) * PM + (r)]
#define DST(c, r) dst[(c) * PM + (r)]
    STAGE(kt, PM, k, DQK, BM, j0, Lk)
    STAGE(vt, PM, v, DV, BM, j0, Lk)
    float dka[TM][DQK / RX], dva[TM][DV / RX];
    ZERO(dka, TM, DQK / RX)
    ZERO(dva, TM, DV / RX)
    for (int i0 = first_query_seen(j0, BN); i0 < Lq; i0 += BN) {
        barrier(CLK_LOCAL_MEM_FENCE);
        STAGE(qt, PN, q, DQK, BN, i0, Lq)
        STAGE(dot, PN, dout, DV, BN, i0, Lq)
        for (int r = lid; r < BN; r += NT) {
            row_lse[r] = i0 + r < Lq ? lse[bh * Lq + i0 + r] : -INFINITY;
            row_delta[r] = i0 + r < Lq ? delta[bh * Lq + i0 + r] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        float s[TM][TN], dp[TM][TN];
        ZERO(s, TM, TN)
        ZERO(dp, TM, TN)
        PRODUCT(s, TN, DQK, KT, QT)
        PRODUCT(dp, TN, DV, VT, DOT)
        #pragma unroll
        for (int i = 0; i < TM; ++i) {
            const int r = ROW(i), key = j0 + r;
            #pragma unroll
            for (int j = 0; j < TN; ++j) {
                const int c = tx + j * RX, row = i0 + c;
                const float sc = row < Lq && key < Lk
                    ? MASKED(s[i][j] * scale, row, key) : -INFINITY;
                const float p = sc == -INFINITY ? 0.0f : exp(sc - row_lse[c]);
                PT(c, r) = p;
                DST(c, r) = p * (dp[i][j] - row_delta[c]);
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        PRODUCT(dva, DV / RX, BN, PT, DON)
        PRODUCT(dka, DQK / RX, BN, DST, QN)
    }
    #pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int key = j0 + ROW(i);
        if (key >= Lk) break;
        #pragma unroll
        for (int j = 0; j < DQK / RX; ++j)
            STORE(dk, (bh * Lk + key) * DQK + tx + j * RX, dka[i][j] * scale);
        #pragma unroll
        for (int j = 0; j < DV / RX; ++j)
            STORE(dv, (bh * Lk + key) * DV + tx + j * RX, dva[i][j]);
    }
#undef KT
#undef VT
#undef QT
#undef QN
#undef DOT
#undef DON
#undef PT
#undef DST
}
