// What the attention kernel files share (attention.cl, one query row a work-item;
// attention_tiled.cl, register tiles; attention_cpu.cl; attention_mma.cl, tensor cores):
// strided 4-D reads and the mask.
//
// attention.py supplies, as #defines:
//   T, LOAD, STORE the storage type of q, k, v, out and grads, and its access
//   MASK           0 none, 1 boolean (uchar, nonzero takes part), 2 additive (T)
//   CAUSAL         1: key j takes part in query i only where j <= i
// Tensors are read through 4-D element strides (batch, head, row, column);
// the mask's are 0 along broadcast axes. out, lse and the grads are contiguous.
// Every kernel's bh0: the launch's first (batch, head) pair on grid dimension 1
// (attention.py launches more than NVIDIA's 65,535 there in slices).

#pragma OPENCL FP_CONTRACT OFF

// The first row of a group of a tiled form (attention_tiled.cl, attention_mma.cl: BM rows
// a group): groups with more work under causality (late query blocks, early key blocks)
// are numbered first so they start first.
#define LATE_FIRST (((int)get_num_groups(0) - 1 - (int)get_group_id(0)) * BM)
#define EARLY_FIRST ((int)get_group_id(0) * BM)

// Under CAUSAL a block of queries ending before query `queries_end` sees no key past
// its last query, and a block of keys starting at `keys_start` is seen by no query
// before it: the key bound a query block walks to, and the first query (a multiple of
// `step`) a key block walks from.
inline int keys_seen(const int Lk, const int Lq, const int queries_end) {
#if CAUSAL
    return min(Lk, min(Lq, queries_end));
#else
    return Lk;
#endif
}

inline int first_query_seen(const int keys_start, const int step) {
#if CAUSAL
    return keys_start / step * step;
#else
    return 0;
#endif
}

#define ARG(x) __global const T *x, const int x##_off, const int4 x##_st
#define AT(x, b, h, r, c) LOAD(x, x##_off + (b) * x##_st.s0 + (h) * x##_st.s1 \
                                   + (r) * x##_st.s2 + (c) * x##_st.s3)

#if MASK == 1
#define MASK_ARG , __global const uchar *mask, const int mask_off, const int4 mask_st
#elif MASK == 2
#define MASK_ARG , ARG(mask)
#else
#define MASK_ARG
#endif

// The score of query i and key j, -INFINITY where the mask or causality drops it.
inline float masked(float s, int i, int j, int b, int h
#if MASK == 1
                    , __global const uchar *mask, const int mask_off, const int4 mask_st
#elif MASK == 2
                    , __global const T *mask, const int mask_off, const int4 mask_st
#endif
                    ) {
#if CAUSAL
    if (j > i) return -INFINITY;
#endif
#if MASK == 1
    if (!mask[mask_off + b * mask_st.s0 + h * mask_st.s1 + i * mask_st.s2 + j * mask_st.s3])
        return -INFINITY;
#elif MASK == 2
    s += AT(mask, b, h, i, j);
#endif
    return s;
}

#if MASK
#define MASKED(s, i, j) masked((s), (i), (j), b, h, mask, mask_off, mask_st)
#else
#define MASKED(s, i, j) masked((s), (i), (j), b, h)
#endif

