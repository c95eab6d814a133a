// Scaled dot-product attention for a CPU device (PoCL): the three kernels of
// attention.cl (same arguments, results and saved log-sum-exp) with eight rows
// a work-item held as the lanes of float8 vectors, no local memory, no
// barrier. PoCL vectorizes across work-items only a kernel without loops, and
// these loop over keys; so the vectors are explicit: a key's elements are one
// load broadcast to the eight rows, and the dots, exps and sums run on all
// eight at once. attention.cl's 64-row work-groups with barriers around local
// tiles ran PoCL's work-item loops once per tile, one row at a time, and half
// empty at 32 query rows.
//
// Compiled after attention_mask.cl (ARG, AT, MASK_ARG, MASKED; attention.py),
// each kernel named for its attention.cl counterpart with _cpu added; grid
// (ceil(rows / R), batch * heads). Lanes past the last row compute that row
// again and store nothing.

#define R 8
#define LANES (int8)(0, 1, 2, 3, 4, 5, 6, 7)

// Element c of rows r.s0 .. r.s7 of x, one lane each.
#define ROWS8(x, r, c) (float8)(AT(x, b, h, (r).s0, c), AT(x, b, h, (r).s1, c),  \
                                AT(x, b, h, (r).s2, c), AT(x, b, h, (r).s3, c),  \
                                AT(x, b, h, (r).s4, c), AT(x, b, h, (r).s5, c),  \
                                AT(x, b, h, (r).s6, c), AT(x, b, h, (r).s7, c))
// Scores s of queries qi and keys kj, lane by lane, through attention_mask.cl.
#define MASKED8(s, qi, kj) (float8)(MASKED((s).s0, (qi).s0, (kj).s0),            \
    MASKED((s).s1, (qi).s1, (kj).s1), MASKED((s).s2, (qi).s2, (kj).s2),           \
    MASKED((s).s3, (qi).s3, (kj).s3), MASKED((s).s4, (qi).s4, (kj).s4),           \
    MASKED((s).s5, (qi).s5, (kj).s5), MASKED((s).s6, (qi).s6, (kj).s6),           \
    MASKED((s).s7, (qi).s7, (kj).s7))

// The query-side kernels' work-item: R query rows from i0 (lanes past Lq repeat
// the last row), count of them real, head bh, and the keys before end they see.
#define QUERY_ROWS                                                              \
    const int i0 = get_global_id(0) * R, bh = bh0 + get_global_id(1), b = bh / H, h = bh % H; \
    const int8 rows = min(i0 + LANES, Lq - 1);                                  \
    const int count = min(R, Lq - i0);                                          \
    const int end = keys_seen(Lk, Lq, i0 + R);

// s = the masked, scaled scores of the query rows held in qr against key j.
#define QUERY_SCORES8(s, j)                                                     \
    float8 s = 0.0f;                                                            \
    for (int d_ = 0; d_ < DQK; ++d_) s += qr[d_] * AT(k, b, h, j, d_);          \
    s = MASKED8(s * scale, rows, (int8)(j));

// exp(s - shift), 0 for a dropped score (also where shift is -inf: no key left).
inline float8 weight8(const float8 s, const float8 shift) {
    return select(exp(s - shift), (float8)(0.0f), s == (float8)(-INFINITY));
}

// Lanes r < count of v into p[(first + r) * stride + column], in T.
#define STORE_LANES(p, v, first, count, stride, column)                         \
    {                                                                           \
        float lanes_[R];                                                        \
        vstore8((v), 0, lanes_);                                                \
        for (int r_ = 0; r_ < (count); ++r_)                                    \
            STORE(p, ((first) + r_) * (stride) + (column), lanes_[r_]);         \
    }

// Two passes over the keys (their max, then the weights) rather than an online
// softmax: one exp a key instead of two, and no rescaling of the accumulators.
__kernel void sdpa_forward_cpu(ARG(q), ARG(k), ARG(v) MASK_ARG,
                               __global T *out, __global float *lse,
                               const int H, const int Lq, const int Lk, const float scale, const int bh0)
{
    QUERY_ROWS
    float8 qr[DQK], acc[DV];
    for (int d = 0; d < DQK; ++d) qr[d] = ROWS8(q, rows, d);
    float8 m = -INFINITY;
    for (int j = 0; j < end; ++j) {
        QUERY_SCORES8(score, j)
        m = fmax(m, score);
    }
    for (int d = 0; d < DV; ++d) acc[d] = 0.0f;
    float8 l = 0.0f;
    for (int j = 0; j < end; ++j) {
        QUERY_SCORES8(score, j)
        const float8 p = weight8(score, m);
        l += p;
        for (int d = 0; d < DV; ++d) acc[d] += p * AT(v, b, h, j, d);
    }
    // A row every key is masked out of gives 0, as PyTorch's math path does.
    const int8 some = l > 0.0f;
    const float8 inv = select((float8)(0.0f), 1.0f / l, some);
    for (int d = 0; d < DV; ++d) STORE_LANES(out, acc[d] * inv, bh * Lq + i0, count, DV, d)
    const float8 row_lse = select((float8)(-INFINITY), m + log(l), some);
    float lanes[R];
    vstore8(row_lse, 0, lanes);
    for (int r = 0; r < count; ++r) lse[bh * Lq + i0 + r] = lanes[r];
}

// dQ = scale * sum_j dS_ij k_j with dS = P * (dO v^T - D); also D = rowsum(dO * O).
__kernel void sdpa_backward_q_cpu(ARG(q), ARG(k), ARG(v) MASK_ARG, ARG(dout),
                                  __global const T *out, __global const float *lse,
                                  __global T *dq, __global float *delta,
                                  const int H, const int Lq, const int Lk, const float scale, const int bh0)
{
    QUERY_ROWS
    const int8 at = (bh * Lq + rows) * DV;
    float8 qr[DQK], dor[DV], acc[DQK];
    float8 di = 0.0f;
    for (int d = 0; d < DV; ++d) {
        dor[d] = ROWS8(dout, rows, d);
        di += dor[d] * (float8)(LOAD(out, at.s0 + d), LOAD(out, at.s1 + d),
                                LOAD(out, at.s2 + d), LOAD(out, at.s3 + d),
                                LOAD(out, at.s4 + d), LOAD(out, at.s5 + d),
                                LOAD(out, at.s6 + d), LOAD(out, at.s7 + d));
    }
    for (int d = 0; d < DQK; ++d) {
        qr[d] = ROWS8(q, rows, d);
        acc[d] = 0.0f;
    }
    const int8 l_at = bh * Lq + rows;
    const float8 li = (float8)(lse[l_at.s0], lse[l_at.s1], lse[l_at.s2], lse[l_at.s3],
                               lse[l_at.s4], lse[l_at.s5], lse[l_at.s6], lse[l_at.s7]);
    for (int j = 0; j < end; ++j) {
        QUERY_SCORES8(score, j)
        float8 dp = 0.0f;
        for (int d = 0; d < DV; ++d) dp += dor[d] * AT(v, b, h, j, d);
        const float8 ds = weight8(score, li) * (dp - di);
        for (int d = 0; d < DQK; ++d) acc[d] += ds * AT(k, b, h, j, d);
    }
    for (int d = 0; d < DQK; ++d) STORE_LANES(dq, acc[d] * scale, bh * Lq + i0, count, DQK, d)
    float lanes[R];
    vstore8(di, 0, lanes);
    for (int r = 0; r < count; ++r) delta[bh * Lq + i0 + r] = lanes[r];
}

// dV = sum_i P_ij dO_i and dK = scale * sum_i dS_ij q_i, eight key rows j a work-item.
__kernel void sdpa_backward_kv_cpu(ARG(q), ARG(k), ARG(v) MASK_ARG, ARG(dout),
                                   __global const float *lse, __global const float *delta,
                                   __global T *dk, __global T *dv,
                                   const int H, const int Lq, const int Lk, const float scale, const int bh0)
{
    const int j0 = get_global_id(0) * R, bh = bh0 + get_global_id(1), b = bh / H, h = bh % H;
    const int8 keys = min(j0 + LANES, Lk - 1);
    const int count = min(R, Lk - j0);
    float8 kr[DQK], vr[DV], dk_acc[DQK], dv_acc[DV];
    for (int d = 0; d < DQK; ++d) {
        kr[d] = ROWS8(k, keys, d);
        dk_acc[d] = 0.0f;
    }
    for (int d = 0; d < DV; ++d) {
        vr[d] = ROWS8(v, keys, d);
        dv_acc[d] = 0.0f;
    }
    for (int i = first_query_seen(j0, 1); i < Lq; ++i) {
        float8 dot = 0.0f, dp = 0.0f;
        for (int d = 0; d < DQK; ++d) dot += AT(q, b, h, i, d) * kr[d];
        for (int d = 0; d < DV; ++d) dp += AT(dout, b, h, i, d) * vr[d];
        const float8 p = weight8(MASKED8(dot * scale, (int8)(i), keys),
                                 (float8)(lse[bh * Lq + i]));
        const float8 ds = p * (dp - delta[bh * Lq + i]);
        for (int d = 0; d < DV; ++d) dv_acc[d] += p * AT(dout, b, h, i, d);
        for (int d = 0; d < DQK; ++d) dk_acc[d] += ds * AT(q, b, h, i, d);
    }
    for (int d = 0; d < DQK; ++d) STORE_LANES(dk, dk_acc[d] * scale, bh * Lk + j0, count, DQK, d)
    for (int d = 0; d < DV; ++d) STORE_LANES(dv, dv_acc[d], bh * Lk + j0, count, DV, d)
}
