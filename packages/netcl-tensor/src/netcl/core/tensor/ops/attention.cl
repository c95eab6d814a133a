// Scaled dot-product attention, forward and backward, without the attention matrix.
//
// FlashAttention's scheme (Dao et al. 2022, "FlashAttention"; Dao 2023,
// "FlashAttention-2"): the forward walks the keys in tiles of BK kept in local
// memory, keeping per query row a running max m, a running sum l and an
// unnormalised output (the online softmax of Milakov and Gimelshein 2018), and
// saves only the row's log-sum-exp L = m + log(l). The backward recomputes
// P = exp(S - L) tile by tile: one kernel for dQ (a work-item per query row,
// which also writes D = rowsum(dO * O)), one for dK and dV (a work-item per
// key row) that reads D, so nothing is accumulated across work-items.
//
// attention.py supplies, besides attention_mask.cl's (built ahead of this file):
//   DQK, DV        the head dims of q/k and of v
//   BQ             work-items (rows) a work-group, BK rows a local tile

// Rows r0 .. r0+BK-1 of x (columns 0 .. n-1) into tile[BK][n], zero past `rows`.
#define LOAD_TILE(tile, x, n, r0, rows)                                         \
    for (int e = lid; e < BK * (n); e += BQ) {                                  \
        const int r = e / (n), c = e % (n);                                     \
        tile[r][c] = (r0) + r < (rows) ? AT(x, b, h, (r0) + r, c) : 0.0f;       \
    }

__kernel __attribute__((reqd_work_group_size(BQ, 1, 1)))
void sdpa_forward(ARG(q), ARG(k), ARG(v) MASK_ARG,
                  __global T *out, __global float *lse,
                  const int H, const int Lq, const int Lk, const float scale, const int bh0)
{
    const int lid = get_local_id(0), bh = bh0 + get_group_id(1), b = bh / H, h = bh % H;
    const int i = get_group_id(0) * BQ + lid;
    const int row = min(i, Lq - 1);  // rows past Lq compute row Lq-1 and store nothing
    __local float kt[BK][DQK], vt[BK][DV];
    float qr[DQK], acc[DV], s[BK];
    for (int d = 0; d < DQK; ++d) qr[d] = AT(q, b, h, row, d);
    for (int d = 0; d < DV; ++d) acc[d] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    const int end = keys_seen(Lk, Lq, (int)(get_group_id(0) + 1) * BQ);
    for (int j0 = 0; j0 < end; j0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE);
        LOAD_TILE(kt, k, DQK, j0, Lk)
        LOAD_TILE(vt, v, DV, j0, Lk)
        barrier(CLK_LOCAL_MEM_FENCE);
        const int n = min(BK, Lk - j0);
        float tile_max = -INFINITY;
        for (int jj = 0; jj < n; ++jj) {
            float dot = 0.0f;
            for (int d = 0; d < DQK; ++d) dot += qr[d] * kt[jj][d];
            s[jj] = MASKED(dot * scale, row, j0 + jj);
            tile_max = fmax(tile_max, s[jj]);
        }
        if (tile_max == -INFINITY) continue;  // the whole tile is masked for this row
        const float m_new = fmax(m, tile_max);
        const float correction = exp(m - m_new);  // 0 on the first unmasked tile
        l *= correction;
        for (int d = 0; d < DV; ++d) acc[d] *= correction;
        for (int jj = 0; jj < n; ++jj) {
            const float p = exp(s[jj] - m_new);
            l += p;
            for (int d = 0; d < DV; ++d) acc[d] += p * vt[jj][d];
        }
        m = m_new;
    }
    if (i >= Lq) return;
    // A row every key is masked out of gives 0, as PyTorch's math path does.
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const int o = (bh * Lq + i) * DV;
    for (int d = 0; d < DV; ++d) STORE(out, o + d, acc[d] * inv);
    lse[bh * Lq + i] = l > 0.0f ? m + log(l) : -INFINITY;
}

// dQ = scale * sum_j dS_ij k_j with dS = P * (dO v^T - D); also D = rowsum(dO * O).
__kernel __attribute__((reqd_work_group_size(BQ, 1, 1)))
void sdpa_backward_q(ARG(q), ARG(k), ARG(v) MASK_ARG, ARG(dout),
                     __global const T *out, __global const float *lse,
                     __global T *dq, __global float *delta,
                     const int H, const int Lq, const int Lk, const float scale, const int bh0)
{
    const int lid = get_local_id(0), bh = bh0 + get_group_id(1), b = bh / H, h = bh % H;
    const int i = get_group_id(0) * BQ + lid;
    const int row = min(i, Lq - 1);
    __local float kt[BK][DQK], vt[BK][DV];
    float qr[DQK], dor[DV], acc[DQK];
    const int o = (bh * Lq + row) * DV;
    float di = 0.0f;
    for (int d = 0; d < DV; ++d) {
        dor[d] = AT(dout, b, h, row, d);
        di += dor[d] * LOAD(out, o + d);
    }
    for (int d = 0; d < DQK; ++d) {
        qr[d] = AT(q, b, h, row, d);
        acc[d] = 0.0f;
    }
    const float li = lse[bh * Lq + row];
    const int end = keys_seen(Lk, Lq, (int)(get_group_id(0) + 1) * BQ);
    for (int j0 = 0; j0 < end; j0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE);
        LOAD_TILE(kt, k, DQK, j0, Lk)
        LOAD_TILE(vt, v, DV, j0, Lk)
        barrier(CLK_LOCAL_MEM_FENCE);
        const int n = min(BK, Lk - j0);
        for (int jj = 0; jj < n; ++jj) {
            float dot = 0.0f;
            for (int d = 0; d < DQK; ++d) dot += qr[d] * kt[jj][d];
            const float s = MASKED(dot * scale, row, j0 + jj);
            if (s == -INFINITY) continue;
            const float p = exp(s - li);
            float dp = 0.0f;
            for (int d = 0; d < DV; ++d) dp += dor[d] * vt[jj][d];
            const float ds = p * (dp - di);
            for (int d = 0; d < DQK; ++d) acc[d] += ds * kt[jj][d];
        }
    }
    if (i >= Lq) return;
    for (int d = 0; d < DQK; ++d) STORE(dq, (bh * Lq + i) * DQK + d, acc[d] * scale);
    delta[bh * Lq + i] = di;
}

// dV = sum_i P_ij dO_i and dK = scale * sum_i dS_ij q_i, a work-item per key row j.
__kernel __attribute__((reqd_work_group_size(BQ, 1, 1)))
void sdpa_backward_kv(ARG(q), ARG(k), ARG(v) MASK_ARG, ARG(dout),
                      __global const float *lse, __global const float *delta,
                      __global T *dk, __global T *dv,
                      const int H, const int Lq, const int Lk, const float scale, const int bh0)
{
    const int lid = get_local_id(0), bh = bh0 + get_group_id(1), b = bh / H, h = bh % H;
    const int j = get_group_id(0) * BQ + lid;
    const int col = min(j, Lk - 1);
    __local float qt[BK][DQK], dot_t[BK][DV], lse_t[BK], delta_t[BK];
    float kr[DQK], vr[DV], dk_acc[DQK], dv_acc[DV];
    for (int d = 0; d < DQK; ++d) {
        kr[d] = AT(k, b, h, col, d);
        dk_acc[d] = 0.0f;
    }
    for (int d = 0; d < DV; ++d) {
        vr[d] = AT(v, b, h, col, d);
        dv_acc[d] = 0.0f;
    }
    for (int i0 = first_query_seen((int)get_group_id(0) * BQ, BK); i0 < Lq; i0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE);
        LOAD_TILE(qt, q, DQK, i0, Lq)
        LOAD_TILE(dot_t, dout, DV, i0, Lq)
        for (int e = lid; e < BK; e += BQ) {
            lse_t[e] = i0 + e < Lq ? lse[bh * Lq + i0 + e] : -INFINITY;
            delta_t[e] = i0 + e < Lq ? delta[bh * Lq + i0 + e] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        const int n = min(BK, Lq - i0);
        for (int ii = 0; ii < n; ++ii) {
            float dot = 0.0f;
            for (int d = 0; d < DQK; ++d) dot += qt[ii][d] * kr[d];
            const float s = MASKED(dot * scale, i0 + ii, col);
            if (s == -INFINITY) continue;
            const float p = exp(s - lse_t[ii]);
            float dp = 0.0f;
            for (int d = 0; d < DV; ++d) {
                dv_acc[d] += p * dot_t[ii][d];
                dp += dot_t[ii][d] * vr[d];
            }
            const float ds = p * (dp - delta_t[ii]);
            for (int d = 0; d < DQK; ++d) dk_acc[d] += ds * qt[ii][d];
        }
    }
    if (j >= Lk) return;
    for (int d = 0; d < DQK; ++d) STORE(dk, (bh * Lk + j) * DQK + d, dk_acc[d] * scale);
    for (int d = 0; d < DV; ++d) STORE(dv, (bh * Lk + j) * DV + d, dv_acc[d]);
}
