// Adam and AdamW with 8-bit state (vector_io.cl and adam.cl are prepended: the update
// itself is adam.cl's ADAM_UPDATE, its step scalars adam.cl's STEP_SCALARS, under a
// GradScaler vector_io.cl's protocol).
//
// Each moment is stored as one byte per element, an index into a 256-entry code (the
// dynamic data type: signed for m, unsigned for v; adam8bit.py builds them), times the
// float32 absolute maximum of its block. A block is BLOCK consecutive elements of one
// parameter (the last block of a parameter may be shorter; no block spans two
// parameters). A work-group steps a block, each work-item PER_ITEM of its elements:
// dequantise m and v, Adam's update in float32 (the parameter moves by the unquantised
// new moments), then the block's new absmax (a reduction in local memory) and each
// moment's nearest code. The blocks of one launch (several parameters laid end to end)
// are listed by block_starts: block b covers elements [block_starts[b], block_starts[b + 1])
// of the launch's operands. A launch of one parameter needs no table (block_starts is
// NULL): block b starts at b * BLOCK, and the last ends at n_elements.
//
// Defines from Python, besides those of vector_io.cl and adam.cl: BLOCK (elements a block),
// PER_ITEM (elements a work-item steps of each block: the work-group is BLOCK / PER_ITEM),
// BLOCK_TABLE (1: the blocks are block_starts'; 0: one parameter's).
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

// The index of the code nearest to x (|x| <= 1) in the ascending dynamic code ``code``
// (adam8bit.py's dynamic_code; SIGNED 1 for m's, 0 for v's), ties going to the higher
// index. No search: decade k of |x| (its values are 10^(k-6) times the midpoints of n
// equal steps of [0.1, 1], n = 2^k signed, 2^(k+1) unsigned) by six comparisons, the
// step within it by one multiply-add, then the nearer of that index's neighbours in the
// table, which settles a value at a decade's edge and 0 and 1 exactly. (A bisection of
// the table took 8 dependent local-memory loads a lookup.) A macro, as ``code`` is local
// memory on a GPU and global on a CPU.
#define NEAREST_CODE(code, x, SIGNED, out)                                        \
    do {                                                                          \
        const float x_ = (x), a_ = fabs(x_);                                      \
        const int k_ = (a_ >= 1e-6f) + (a_ >= 1e-5f) + (a_ >= 1e-4f) + (a_ >= 1e-3f) \
                       + (a_ >= 1e-2f) + (a_ >= 1e-1f);                          \
        const int n_ = 1 << (k_ + 1 - (SIGNED));                                  \
        const float u_ = (a_ * DECADE_SCALE[k_] - 0.1f) * ((float)n_ / 0.9f);     \
        const int j_ = clamp((int)(u_), 0, n_ - 1);                               \
        /* Decade k starts at index 127 + n (signed: 0 is at 127) or n - 1 (unsigned). */ \
        int c_ = ((SIGNED) ? 127 : -1) + n_ + j_;                                 \
        if ((SIGNED) && x_ < 0.0f) c_ = max(254 - c_, 0);  /* -v mirrors v about 127 */ \
        int best_ = c_;                                                           \
        float d_ = fabs((code)[c_] - x_);                                         \
        if (c_ > 0 && fabs((code)[c_ - 1] - x_) < d_) {                           \
            best_ = c_ - 1;                                                       \
            d_ = fabs((code)[c_ - 1] - x_);                                       \
        }                                                                         \
        if (c_ < CODES - 1 && fabs((code)[c_ + 1] - x_) <= d_) best_ = c_ + 1;   \
        (out) = (uchar)best_;                                                     \
    } while (0)

// 10^(6 - k): decade k's values over 10^(k - 6).
__constant float DECADE_SCALE[7] = {1e6f, 1e5f, 1e4f, 1e3f, 1e2f, 1e1f, 1.0f};

// What each moment is multiplied by before its code is looked up: the reciprocal of its
// block's absmax, one IEEE division a block instead of one an element. An all-zero block
// keeps absmax 0, which decodes every code to 0 (and 0 * anything finite is 0).
#define QUANTIZE_SCALES(m_top, v_top)                                            \
    const float m_inverse = (m_top) > 0.0f ? 1.0f / (m_top) : 0.0f;             \
    const float v_inverse = (v_top) > 0.0f ? 1.0f / (v_top) : 0.0f

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

// Work-group g steps blocks g, g + groups, ...: the host launches fewer groups than blocks
// so that each loads the two code tables into local memory once for several blocks.
__kernel __attribute__((reqd_work_group_size(ITEMS, 1, 1)))
void adam8bit_step(ADAM8BIT_ARGS)
{
    const int lid = get_local_id(0);
    SKIP_IF_FOUND_INF;  // under a GradScaler an overflow returns here: the whole group at once
    STEP_SCALARS;
    __local float m_code[CODES], v_code[CODES], m_max[ITEMS], v_max[ITEMS];
    for (int k = lid; k < CODES; k += ITEMS) {
        m_code[k] = signed_code[k];
        v_code[k] = unsigned_code[k];
    }
    PARAM_POINTERS;
    __global const param_t *g = g_data + g_offset;
    __global uchar *m_codes = m_codes_data + m_codes_offset;
    __global uchar *v_codes = v_codes_data + v_codes_offset;
    __global float *m_absmax = m_absmax_data + m_absmax_offset;
    __global float *v_absmax = v_absmax_data + v_absmax_offset;
#if BLOCK_TABLE
    __global const int *block_starts = block_starts_data + block_starts_offset;
#endif
    for (long block = get_group_id(0); block < n_blocks; block += get_num_groups(0)) {
#if BLOCK_TABLE
        const long first = (long)block_starts[block] + lid, end = block_starts[block + 1];
#else
        const long first = block * BLOCK + lid, end = min((block + 1) * BLOCK, n_elements);
#endif
        const float m_scale = m_absmax[block], v_scale = v_absmax[block];
        // The codes are in local memory (first block), and the last block's maxima read.
        barrier(CLK_LOCAL_MEM_FENCE);
        float m_new[PER_ITEM], v_new[PER_ITEM];
        float m_top = 0.0f, v_top = 0.0f;
        for (int k = 0; k < PER_ITEM; ++k) {
            const long i = first + k * ITEMS;
            m_new[k] = 0.0f;
            v_new[k] = 0.0f;
            if (i < end) {
                float p_i = LOAD_PARAM(i, LOAD1_P, LOAD1_F), g_i = LOAD1_P(g, i);
                float m_i = m_code[m_codes[i]] * m_scale, v_i = v_code[v_codes[i]] * v_scale;
                float vmax_i = 0.0f;
                UNSCALE(g_i);
                ADAM_UPDATE(p_i, g_i, m_i, v_i, vmax_i);
                STORE_PARAM(p_i, i, STORE1_P, STORE1_F);
                m_new[k] = m_i;
                v_new[k] = v_i;
                m_top = fmax(m_top, fabs(m_i));
                v_top = fmax(v_top, v_i);  // v >= 0
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
                NEAREST_CODE(m_code, m_new[k] * m_inverse, 1, m_codes[i]);
                NEAREST_CODE(v_code, v_new[k] * v_inverse, 0, v_codes[i]);
            }
        }
        if (lid == 0) {
            m_absmax[block] = m_top;
            v_absmax[block] = v_top;
        }
    }
}
