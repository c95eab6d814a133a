// The fused backward's pieces (attention_mma.cl's sdpa_backward_kv_mma built with
// FUSED_BACKWARD 1 computes dQ too): its dQ step and the sum of its dQ terms after it
// (D = rowsum(dO * O) ahead of it is attention_mma.cl's sdpa_backward_delta_mma, sharing
// the dQ pass's row_delta_of). attention.py builds this file between mma.cl and
// attention_mma.cl, whose macros the dQ step expands to where it is used; DQ_ATOMIC
// picks how the terms are accumulated (attention_mma.cl's kv kernel says how).

// The step's dQ terms from the group's keys, dS (BN x BM, in dss) times K (BM x DQK, in
// ks), a warp 16 query rows at a time, into dq_plane (unscaled). Emulated, every warp
// runs as many slices (its last again, not stored), as mma.cl's MMA asks.
#if MMA_EMULATED
#define DQ_SLICES ((BN / 16 + WARPS - 1) / WARPS * WARPS)
#else
#define DQ_SLICES (BN / 16)
#endif
#define DQ_FROM_KEYS(i0)                                                        \
    for (int sl = warp; sl < DQ_SLICES; sl += WARPS) {                          \
        const int slice = min(sl, BN / 16 - 1);                                 \
        uint dsa[BM / 16][4];                                                   \
        LOAD_A(dsa, dss, PS, slice * 16, BM / 16)                               \
        float dqa[DQ16 / 8][4];                                                 \
        ZERO_ACC(dqa, DQ16 / 8)                                                 \
        _Pragma("unroll") for (int kj = 0; kj < BM / 16; ++kj)                  \
            MMA_AB(dqa, dsa[kj], ks, PQ, kj, DQ16)                              \
        _Pragma("unroll") for (int hh = 0; hh < 2; ++hh) {                      \
            const int row = (i0) + slice * 16 + g + 8 * hh;                     \
            if (sl >= BN / 16 || row >= Lq) continue;                           \
            _Pragma("unroll") for (int j = 0; j < DQ16 / 8; ++j) {              \
                const int col = j * 8 + 2 * t;                                  \
                DQ_PUT_PAIR(&dq_plane[row * DQK + col], col,                    \
                            dqa[j][2 * hh], dqa[j][2 * hh + 1]);                \
            }                                                                   \
        }                                                                       \
    }
#if DQ_ATOMIC
#if MMA_EMULATED
inline void add_float(__global float *p, const float x)
{
    volatile __global uint *word = (volatile __global uint *)p;
    uint seen = *word, old;
    do {
        old = seen;
        seen = atomic_cmpxchg(word, old, as_uint(as_float(old) + x));
    } while (seen != old);
}
#else
inline void add_float(__global float *p, const float x)
{
    asm volatile("red.global.add.f32 [%0], %1;" :: "l"((ulong)p), "f"(x) : "memory");
}
#endif
// Columns col and col + 1 of a row (col even), those before DQK.
#define DQ_PUT_PAIR(p, col, x0, x1)                                             \
    do {                                                                        \
        if ((col) < DQK) add_float(p, x0);                                      \
        if ((col) + 1 < DQK) add_float((p) + 1, x1);                            \
    } while (0)
#elif DQK % 2 == 0
// A pair is whole and 8-byte aligned (planes and rows of even length): one store.
#define DQ_PUT_PAIR(p, col, x0, x1)                                             \
    do {                                                                        \
        if ((col) < DQK) vstore2((float2)(x0, x1), 0, p);                       \
    } while (0)
#else
#define DQ_PUT_PAIR(p, col, x0, x1)                                             \
    do {                                                                        \
        if ((col) < DQK) (p)[0] = (x0);                                         \
        if ((col) + 1 < DQK) (p)[1] = (x1);                                     \
    } while (0)
#endif

// dQ = scale times the sum of dq_part's planes, in key-block order, of the key blocks
// whose walk reached the row (first_query_seen); a work-item an element.
__kernel void sdpa_backward_dq_mma(__global const float *dq_part, __global T *dq,
                                   const int H, const int Lq, const int Lk, const float scale,
                                   const int bh0, const int vecs)
{
    const int e = get_global_id(0), bh = bh0 + get_group_id(1), row = e / DQK;
    if (e >= Lq * DQK) return;
#if DQ_ATOMIC
    const float sum = dq_part[bh * Lq * DQK + e];
#else
    const int keys = 16 * WARPS;  // a key block (attention_mma.cl's BM, defined after this)
    const int blocks = (Lk + keys - 1) / keys;
    float sum = 0.0f;
    for (int kb = 0; kb < blocks && first_query_seen(kb * keys, BN) <= row; ++kb)
        sum += dq_part[(bh * blocks + kb) * Lq * DQK + e];
#endif
    STORE(dq, bh * Lq * DQK + e, sum * scale);
}
