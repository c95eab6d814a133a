// Adam and AdamW with 8-bit state (vector_io.cl and adam.cl are prepended: the update
// itself is adam.cl's ADAM_UPDATE, its step scalars adam.cl's STEP_SCALARS, under a
// GradScaler vector_io.cl's protocol).
//
// Each moment is stored as one byte per element, an index into a 256-entry code (the
// dynamic data type: signed for m, unsigned for v; adam8bit.py builds them), times the
// float32 absolute maximum of its block. A block is BLOCK consecutive elements of one
// parameter (the last block of a parameter may be shorter; no block spans two
// parameters). A block's step: dequantise m and v, Adam's update in float32 (the
// parameter moves by the unquantised new moments), then the block's new absmax and each
// moment's nearest code. On a GPU a work-group steps a block, each work-item PER_ITEM of
// its elements, the absmax a reduction in local memory; on a CPU one work-item steps it
// (SERIAL). The blocks of one launch (several parameters laid end to end)
// are listed by block_starts: block b covers elements [block_starts[b], block_starts[b + 1])
// of the launch's operands. A launch of one parameter needs no table (block_starts is
// NULL): block b starts at b * BLOCK, and the last ends at n_elements.
//
// Defines from Python, besides those of vector_io.cl and adam.cl: BLOCK (elements a block),
// DECADES (the dynamic code's decades), SERIAL (1: a work-item a block), PER_ITEM (SERIAL
// 0: elements a work-item steps of each block; the work-group is BLOCK / PER_ITEM;
// PREFETCH: 1 to read each block while the one before it is stepped), BLOCK_TABLE (1:
// the blocks are block_starts'; 0: one parameter's).
// AMSGRAD is 0: 8-bit Adam keeps no v_max.

#define CODES 256

// Both forms of the kernel take the same arguments: the blocks, each operand as a buffer
// and an element offset, the block table, the two codes, then adam.cl's.
#define ADAM8BIT_ARGS                                                                  \
    const long n_blocks, const long n_elements,                                        \
    PARAM_ARGS,                                                                        \
    __global const param_t *g_data, const long g_offset,                              \
    __global uchar *m_codes_data, const long m_codes_offset,                          \
    __global uchar *v_codes_data, const long v_codes_offset,                          \
    __global float *m_absmax_data, const long m_absmax_offset,                        \
    __global float *v_absmax_data, const long v_absmax_offset,                        \
    __global const int *block_starts_data, const long block_starts_offset,            \
    __global const float *signed_code, __global const float *unsigned_code,           \
    GRAD_SCALING_BUFFERS                                                               \
    ADAM_HYPERPARAMETERS GRAD_SCALING_SCALARS

// What follows each code in its buffer: adam8bit.py's code_lookup, LOOKUP floats (EDGES
// run edges, then the decades' starts and step reciprocals).
#define EDGES 8
#define LOOKUP (EDGES + 2 * DECADES)

// The run edges of ``code`` (a code_lookup follows it) in private memory, ``edges``.
#define LOAD_EDGES(edges, code)                                                   \
    float edges[EDGES];                                                           \
    for (int e_ = 0; e_ < EDGES; ++e_) edges[e_] = (code)[CODES + e_]

// The index of the code nearest to x (|x| <= 1) in the ascending dynamic code whose
// code_lookup is ``edges`` (its 8 run edges: a private array, held in registers) and
// ``decades`` (the rest: its starts and step reciprocals), SIGNED 1 for m's code, 0 for
// v's; ties go to the higher index. No search and no read of the code itself: |x|'s run
// (0, decade 0..6 or 1) is the count of edges at or below it, then inside decade k
// (n = 2^k values signed, 2^(k+1) unsigned, the midpoints of n equal steps) the step it
// falls in, clamped to the decade, as the edges are the midpoints between runs.
// Branch-free, and the two reads of ``decades`` (local memory on a GPU) hit at most 7
// addresses, in different banks. (A bisection of the table took 8 dependent local-memory
// loads; comparing the nearest step's neighbours, 3 reads at scattered addresses and a
// constant-memory read that the lanes of a warp made at different addresses.)
#define NEAREST_CODE(edges, decades, x, SIGNED, out)                            \
    do {                                                                          \
        const float x_ = (x), a_ = fabs(x_);                                      \
        const int run_ = (a_ >= (edges)[0]) + (a_ >= (edges)[1]) + (a_ >= (edges)[2]) \
                         + (a_ >= (edges)[3]) + (a_ >= (edges)[4]) + (a_ >= (edges)[5]) \
                         + (a_ >= (edges)[6]) + (a_ >= (edges)[7]);               \
        const int k_ = clamp(run_ - 1, 0, DECADES - 1);                           \
        const int n_ = 1 << (k_ + 1 - (SIGNED));                                  \
        const float u_ = (a_ - (decades)[k_]) * (decades)[DECADES + k_];          \
        const int j_ = clamp((int)u_, 0, n_ - 1);                                 \
        /* Decade k starts at index 127 + n (signed: 0 is at 127) or n - 1 (unsigned). */ \
        int c_ = run_ == 0 ? ((SIGNED) ? 127 : 0)                                 \
               : run_ == 8 ? CODES - 1 : ((SIGNED) ? 127 : -1) + n_ + j_;         \
        if ((SIGNED) && x_ < 0.0f) c_ = max(254 - c_, 0);  /* -v mirrors v about 127 */ \
        (out) = (uchar)c_;                                                        \
    } while (0)

// What each moment is multiplied by before its code is looked up: the reciprocal of its
// block's absmax, one IEEE division a block instead of one an element. An all-zero block
// keeps absmax 0, which decodes every code to 0 (and 0 * anything finite is 0).
#define QUANTIZE_SCALES(m_top, v_top)                                            \
    const float m_inverse = (m_top) > 0.0f ? 1.0f / (m_top) : 0.0f;             \
    const float v_inverse = (v_top) > 0.0f ? 1.0f / (v_top) : 0.0f

// The pointers of the kernel's operands, at their offsets.
#define OPERAND_POINTERS                                                          \
    PARAM_POINTERS;                                                               \
    __global const param_t *g = g_data + g_offset;                                \
    __global uchar *m_codes = m_codes_data + m_codes_offset;                      \
    __global uchar *v_codes = v_codes_data + v_codes_offset;                      \
    __global float *m_absmax = m_absmax_data + m_absmax_offset;                   \
    __global float *v_absmax = v_absmax_data + v_absmax_offset;                   \
    BLOCK_STARTS_POINTER

#if BLOCK_TABLE
#define BLOCK_STARTS_POINTER \
    __global const int *block_starts = block_starts_data + block_starts_offset
// first: the element of ``block`` that work-item ``lid`` steps first; end: the block's end.
#define BLOCK_RANGE(block, lid) \
    const long first = (long)block_starts[block] + (lid), end = block_starts[(block) + 1]
#else
#define BLOCK_STARTS_POINTER (void)0
#define BLOCK_RANGE(block, lid) \
    const long first = (block) * BLOCK + (lid), end = min(((block) + 1) * BLOCK, n_elements)
#endif

// Element i's step from what was loaded for it: the parameter p_in and gradient g_in
// (float), and the codes of its moments (m_in, v_in; in tables m_code, v_code, times the
// block's m_scale, v_scale). Adam's update of the parameter; the new moments left in
// ``m_out``, ``v_out`` and folded into the block's running maxima m_top, v_top.
#define STEP_ELEMENT(i, p_in, g_in, m_in, v_in, m_code, v_code, m_out, v_out)    \
    do {                                                                          \
        float p_i = (p_in), g_i = (g_in);                                         \
        float m_i = (m_code)[m_in] * m_scale, v_i = (v_code)[v_in] * v_scale;     \
        float vmax_i = 0.0f;                                                      \
        UNSCALE(g_i);                                                             \
        ADAM_UPDATE(p_i, g_i, m_i, v_i, vmax_i);                                  \
        STORE_PARAM(p_i, i, STORE1_P, STORE1_F);                                  \
        (m_out) = m_i;                                                            \
        (v_out) = v_i;                                                            \
        m_top = fmax(m_top, fabs(m_i));                                           \
        v_top = fmax(v_top, v_i);  /* v >= 0 */                                   \
    } while (0)

#if SERIAL
// A CPU steps each block in one work-item, with no barrier: PoCL runs a work-group's
// work-items as a loop between barriers, saving each one's live values at every barrier
// (the work-group form took 1.5x this one's time on PoCL, 2 cores: adam8bit_forms.py). The
// codes stay in global memory (a CPU caches them).
__kernel void adam8bit_step(ADAM8BIT_ARGS)
{
    const long block = get_global_id(0);
    if (block >= n_blocks) return;
    SKIP_IF_FOUND_INF;
    STEP_SCALARS;
    OPERAND_POINTERS;
    BLOCK_RANGE(block, 0);
    const float m_scale = m_absmax[block], v_scale = v_absmax[block];
    float m_new[BLOCK], v_new[BLOCK];
    float m_top = 0.0f, v_top = 0.0f;
    for (long i = first; i < end; ++i) {
        STEP_ELEMENT(i, LOAD_PARAM(i, LOAD1_P, LOAD1_F), LOAD1_P(g, i), m_codes[i], v_codes[i],
                     signed_code, unsigned_code, m_new[i - first], v_new[i - first]);
    }
    QUANTIZE_SCALES(m_top, v_top);
    // In private memory: were they read from global memory, the compiler would read them
    // again after each byte stored below, which may alias them.
    float m_decades[2 * DECADES], v_decades[2 * DECADES];
    for (int k = 0; k < 2 * DECADES; ++k) {
        m_decades[k] = signed_code[CODES + EDGES + k];
        v_decades[k] = unsigned_code[CODES + EDGES + k];
    }
    LOAD_EDGES(m_edges, signed_code);
    LOAD_EDGES(v_edges, unsigned_code);
    for (long i = first; i < end; ++i) {
        NEAREST_CODE(m_edges, m_decades, m_new[i - first] * m_inverse, 1, m_codes[i]);
        NEAREST_CODE(v_edges, v_decades, v_new[i - first] * v_inverse, 0, v_codes[i]);
    }
    m_absmax[block] = m_top;
    v_absmax[block] = v_top;
}
#else
// A work-group of ITEMS work-items steps a block, PER_ITEM elements each (element k of
// work-item l is the block's l + k * ITEMS: each load and store of a warp is contiguous).
#define ITEMS (BLOCK / PER_ITEM)

// The largest of each of the work-group's ``a`` and ``b`` (ITEMS values each, all >= 0),
// left in a[0] and b[0]: one tree, both arrays at each level.
inline void block_max2(__local float *a, __local float *b, const int lid)
{
    for (int stride = ITEMS / 2; stride > 0; stride /= 2) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < stride) {
            a[lid] = fmax(a[lid], a[lid + stride]);
            b[lid] = fmax(b[lid], b[lid + stride]);
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}

// What a work-item reads of one block before stepping it: its first element and the
// block's end, its elements' parameters, gradients and codes (PER_ITEM of each; past the
// block's end, unset), and the scales.
typedef struct {
    long first, end;
    float p[PER_ITEM], g[PER_ITEM];
    uchar m[PER_ITEM], v[PER_ITEM];
    float m_scale, v_scale;
} BlockInput;

// Work-item lid's reads of ``block`` into BlockInput ``in``.
#define LOAD_BLOCK(block, lid, in)                                               \
    do {                                                                          \
        BLOCK_RANGE(block, lid);                                                  \
        (in).first = first;                                                       \
        (in).end = end;                                                           \
        (in).m_scale = m_absmax[block];                                           \
        (in).v_scale = v_absmax[block];                                           \
        for (int k = 0; k < PER_ITEM; ++k) {                                      \
            const long i = first + k * ITEMS;                                     \
            if (i < end) {                                                        \
                (in).p[k] = LOAD_PARAM(i, LOAD1_P, LOAD1_F);                      \
                (in).g[k] = LOAD1_P(g, i);                                        \
                (in).m[k] = m_codes[i];                                           \
                (in).v[k] = v_codes[i];                                           \
            }                                                                     \
        }                                                                         \
    } while (0)

// Work-group g steps blocks g, g + groups, ...: the host launches fewer groups than blocks
// so that each loads the two code tables into local memory once for several blocks. With
// PREFETCH, a block's reads are issued before the previous block is stepped, so that they
// are in flight through its reduction and quantisation (without it, a work-item has only
// PER_ITEM elements' reads in flight, and none between its blocks' reads and writes).
__kernel __attribute__((reqd_work_group_size(ITEMS, 1, 1)))
void adam8bit_step(ADAM8BIT_ARGS)
{
    const int lid = get_local_id(0);
    SKIP_IF_FOUND_INF;  // under a GradScaler an overflow returns here: the whole group at once
    STEP_SCALARS;
    __local float m_code[CODES + LOOKUP], v_code[CODES + LOOKUP], m_max[ITEMS], v_max[ITEMS];
    for (int k = lid; k < CODES + LOOKUP; k += ITEMS) {
        m_code[k] = signed_code[k];
        v_code[k] = unsigned_code[k];
    }
    OPERAND_POINTERS;
    LOAD_EDGES(m_edges, signed_code);
    LOAD_EDGES(v_edges, unsigned_code);
    const long start = get_group_id(0), groups = get_num_groups(0);
    BlockInput current;
#if PREFETCH
    BlockInput next;
    if (start < n_blocks) LOAD_BLOCK(start, lid, next);
#endif
    for (long block = start; block < n_blocks; block += groups) {
#if PREFETCH
        current = next;
        if (block + groups < n_blocks) LOAD_BLOCK(block + groups, lid, next);
#else
        LOAD_BLOCK(block, lid, current);
#endif
        const long first = current.first, end = current.end;
        const float m_scale = current.m_scale, v_scale = current.v_scale;
        // The codes are in local memory (first block), and the last block's maxima read.
        barrier(CLK_LOCAL_MEM_FENCE);
        float m_new[PER_ITEM], v_new[PER_ITEM];
        float m_top = 0.0f, v_top = 0.0f;
        for (int k = 0; k < PER_ITEM; ++k) {
            const long i = first + k * ITEMS;
            m_new[k] = 0.0f;
            v_new[k] = 0.0f;
            if (i < end) {
                STEP_ELEMENT(i, current.p[k], current.g[k], current.m[k], current.v[k], m_code, v_code,
                             m_new[k], v_new[k]);
            }
        }
        m_max[lid] = m_top;
        v_max[lid] = v_top;
        block_max2(m_max, v_max, lid);
        m_top = m_max[0];
        v_top = v_max[0];
        QUANTIZE_SCALES(m_top, v_top);
        for (int k = 0; k < PER_ITEM; ++k) {
            const long i = first + k * ITEMS;
            if (i < end) {
                NEAREST_CODE(m_edges, m_code + CODES + EDGES, m_new[k] * m_inverse, 1, m_codes[i]);
                NEAREST_CODE(v_edges, v_code + CODES + EDGES, v_new[k] * v_inverse, 0, v_codes[i]);
            }
        }
        if (lid == 0) {
            m_absmax[block] = m_top;
            v_absmax[block] = v_top;
        }
    }
}
#endif
