// Scaled dot-product attention for a CPU device (PoCL): the three kernels of
// attention.cl (same arguments, results and saved log-sum-exp), one work-item
// a row, with no local memory, no barrier and no early return. PoCL then runs a
// work-group's rows as one loop it vectorizes across rows: every work-item of a
// row of the grid walks the same keys (the loop bound is the work-group's, and
// causality and the mask drop a key by its score, not by a branch), so a key's
// elements are one load broadcast to every lane. attention.cl's 64-row
// work-groups with barriers around local tiles ran PoCL's work-item loops once
// per tile, unvectorized, and half empty at 32 query rows.
//
// Compiled after attention_mask.cl (ARG, AT, MASK_ARG, MASKED; attention.py),
// each kernel named for its attention.cl counterpart with _cpu added;
// grids are exact: (rows, batch * heads).

// The keys of query row i's work-group: all of them, or under causality those up
// to its last row.
inline int keys_seen(const int Lq, const int Lk) {
#if CAUSAL
    return min(Lk, min(Lq, (int)((get_group_id(0) + 1) * get_local_size(0))));
#else
    return Lk;
#endif
}

// exp(s - shift), 0 for a dropped score (also where shift is -inf: no key left).
inline float weight(const float s, const float shift) {
    return s == -INFINITY ? 0.0f : exp(s - shift);
}

// Two passes over the keys (their max, then the weights) rather than an online
// softmax: one exp a key instead of two, and no rescaling of the accumulators.
__kernel void sdpa_forward_cpu(ARG(q), ARG(k), ARG(v) MASK_ARG,
                           __global T *out, __global float *lse,
                           const int H, const int Lq, const int Lk, const float scale)
{
    const int i = get_global_id(0), bh = get_global_id(1), b = bh / H, h = bh % H;
    const int end = keys_seen(Lq, Lk);
    float qr[DQK], acc[DV];
    for (int d = 0; d < DQK; ++d) qr[d] = AT(q, b, h, i, d);
    float m = -INFINITY;
    for (int j = 0; j < end; ++j) {
        float dot = 0.0f;
        for (int d = 0; d < DQK; ++d) dot += qr[d] * AT(k, b, h, j, d);
        m = fmax(m, MASKED(dot * scale, i, j));
    }
    for (int d = 0; d < DV; ++d) acc[d] = 0.0f;
    float l = 0.0f;
    for (int j = 0; j < end; ++j) {
        float dot = 0.0f;
        for (int d = 0; d < DQK; ++d) dot += qr[d] * AT(k, b, h, j, d);
        const float p = weight(MASKED(dot * scale, i, j), m);
        l += p;
        for (int d = 0; d < DV; ++d) acc[d] += p * AT(v, b, h, j, d);
    }
    // A row every key is masked out of gives 0, as PyTorch's math path does.
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const int o = (bh * Lq + i) * DV;
    for (int d = 0; d < DV; ++d) STORE(out, o + d, acc[d] * inv);
    lse[bh * Lq + i] = l > 0.0f ? m + log(l) : -INFINITY;
}

// dQ = scale * sum_j dS_ij k_j with dS = P * (dO v^T - D); also D = rowsum(dO * O).
__kernel void sdpa_backward_q_cpu(ARG(q), ARG(k), ARG(v) MASK_ARG, ARG(dout),
                              __global const T *out, __global const float *lse,
                              __global T *dq, __global float *delta,
                              const int H, const int Lq, const int Lk, const float scale)
{
    const int i = get_global_id(0), bh = get_global_id(1), b = bh / H, h = bh % H;
    const int end = keys_seen(Lq, Lk);
    float qr[DQK], dor[DV], acc[DQK];
    const int o = (bh * Lq + i) * DV;
    float di = 0.0f;
    for (int d = 0; d < DV; ++d) {
        dor[d] = AT(dout, b, h, i, d);
        di += dor[d] * LOAD(out, o + d);
    }
    for (int d = 0; d < DQK; ++d) {
        qr[d] = AT(q, b, h, i, d);
        acc[d] = 0.0f;
    }
    const float li = lse[bh * Lq + i];
    for (int j = 0; j < end; ++j) {
        float dot = 0.0f, dp = 0.0f;
        for (int d = 0; d < DQK; ++d) dot += qr[d] * AT(k, b, h, j, d);
        for (int d = 0; d < DV; ++d) dp += dor[d] * AT(v, b, h, j, d);
        const float ds = weight(MASKED(dot * scale, i, j), li) * (dp - di);
        for (int d = 0; d < DQK; ++d) acc[d] += ds * AT(k, b, h, j, d);
    }
    for (int d = 0; d < DQK; ++d) STORE(dq, (bh * Lq + i) * DQK + d, acc[d] * scale);
    delta[bh * Lq + i] = di;
}

// dV = sum_i P_ij dO_i and dK = scale * sum_i dS_ij q_i, a work-item per key row j.
__kernel void sdpa_backward_kv_cpu(ARG(q), ARG(k), ARG(v) MASK_ARG, ARG(dout),
                               __global const float *lse, __global const float *delta,
                               __global T *dk, __global T *dv,
                               const int H, const int Lq, const int Lk, const float scale)
{
    const int j = get_global_id(0), bh = get_global_id(1), b = bh / H, h = bh % H;
    float kr[DQK], vr[DV], dk_acc[DQK], dv_acc[DV];
    for (int d = 0; d < DQK; ++d) {
        kr[d] = AT(k, b, h, j, d);
        dk_acc[d] = 0.0f;
    }
    for (int d = 0; d < DV; ++d) {
        vr[d] = AT(v, b, h, j, d);
        dv_acc[d] = 0.0f;
    }
    int start = 0;
#if CAUSAL
    // Queries before the work-group's first key see none of its keys.
    start = min(Lq, (int)(get_group_id(0) * get_local_size(0)));
#endif
    for (int i = start; i < Lq; ++i) {
        float dot = 0.0f, dp = 0.0f;
        for (int d = 0; d < DQK; ++d) dot += AT(q, b, h, i, d) * kr[d];
        for (int d = 0; d < DV; ++d) dp += AT(dout, b, h, i, d) * vr[d];
        const float p = weight(MASKED(dot * scale, i, j), lse[bh * Lq + i]);
        const float ds = p * (dp - delta[bh * Lq + i]);
        for (int d = 0; d < DV; ++d) dv_acc[d] += p * AT(dout, b, h, i, d);
        for (int d = 0; d < DQK; ++d) dk_acc[d] += ds * AT(q, b, h, i, d);
    }
    for (int d = 0; d < DQK; ++d) STORE(dk, (bh * Lk + j) * DQK + d, dk_acc[d] * scale);
    for (int d = 0; d < DV; ++d) STORE(dv, (bh * Lk + j) * DV + d, dv_acc[d]);
}
