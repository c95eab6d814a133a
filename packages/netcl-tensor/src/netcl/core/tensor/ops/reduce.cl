// One reduction kernel for sum, mean, max, min, argmax, argmin and logsumexp
// (reduce_rows), and one for sums over leading axes (reduce_cols).
// reduce_rows: the input is contiguous [rows, row_len] (reduce.py moves the
// reduced axes innermost first); each work-group reduces one row at a time,
// every work-item striding over the row, then a tree in local memory combines
// the work-items' partial results. reduce.py supplies, as #defines:
//   MODE            MODE_SUM, MODE_EXTREMUM, MODE_ARG or MODE_LSE
//   IN_T, LOAD(i)   the input's storage type; element i read as ACC_T
//   ACC_T           the accumulator type (float for fp16 and fp32 inputs)
//   KAHAN           1 to compensate the sequential part of a float sum
//   BEATS(v, b)     MODE_EXTREMUM/ARG: v replaces b (v > b for max)
//   IDENTITY        MODE_EXTREMUM/ARG: the value every element beats or ties
//   IS_NAN(x)       isnan for floats, 0 for integers
//   FINISH(x)       MODE_SUM: the row's result from its sum (x * scale for mean)
//   OUT_T, STORE(idx, v)  the output's storage type and how to store v
//   GROUP           the local buffers' length, at least the local size (a power of 2)
//   COLS_WIDTH, COLS_DEPTH  reduce_cols's work-group shape (COLS_DEPTH a power of 2)

// A capture (netcl.jit) may compute the input where it is loaded: it redefines
// LOAD(i) and adds the parameters that needs here.
#ifndef EXTRA_PARAMS
#define EXTRA_PARAMS
#endif

#define MODE_SUM 0
#define MODE_EXTREMUM 1
#define MODE_ARG 2
#define MODE_LSE 3

// acc += v; with KAHAN compensated by comp, which is dropped once the sum is
// infinite (it would be NaN).
#if KAHAN
#define ACCUMULATE(acc, comp, v)                                                \
    {                                                                           \
        const ACC_T y_ = (v) - comp;                                            \
        const ACC_T t_ = acc + y_;                                              \
        comp = isfinite(t_) ? (t_ - acc) - y_ : 0.0f;                           \
        acc = t_;                                                               \
    }
#else
#define ACCUMULATE(acc, comp, v) acc += (v)
#endif

#if MODE == MODE_EXTREMUM || MODE == MODE_ARG || MODE == MODE_LSE
// Whether (v, vi) replaces (b, bi) as the running extremum. NaN wins and then
// stays, so max/min propagate NaN as numpy does; ties go to the lower index,
// so argmax/argmin return the first occurrence.
inline int takes(ACC_T v, long vi, ACC_T b, long bi) {
    if (IS_NAN(b)) return IS_NAN(v) && vi < bi;
    if (IS_NAN(v)) return 1;
    return BEATS(v, b) || (v == b && vi < bi);
}
#endif

__kernel void reduce_rows(const int rows, const int row_len,
                          __global const IN_T *in, const int in_offset,
                          __global OUT_T *out, const int out_offset, const float scale
                          EXTRA_PARAMS)
{
    __local ACC_T vals[GROUP];
#if MODE != MODE_SUM
    __local long idxs[GROUP];
#endif
    const int lid = get_local_id(0);
    const int size = get_local_size(0);

    // Every work-item of a group runs the same number of row iterations, so
    // the barriers inside are reached uniformly.
    for (int row = get_group_id(0); row < rows; row += get_num_groups(0)) {
        const int base = in_offset + row * row_len;

#if MODE == MODE_EXTREMUM || MODE == MODE_ARG || MODE == MODE_LSE
        // The padding index LONG_MAX makes an untouched identity lose every
        // tie against a real element.
        ACC_T best = IDENTITY;
        long best_i = LONG_MAX;
        for (int j = lid; j < row_len; j += size) {
            const ACC_T v = LOAD(base + j);
            if (takes(v, j, best, best_i)) { best = v; best_i = j; }
        }
        vals[lid] = best;
        idxs[lid] = best_i;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int s = size / 2; s > 0; s >>= 1) {
            if (lid < s && takes(vals[lid + s], idxs[lid + s], vals[lid], idxs[lid])) {
                vals[lid] = vals[lid + s];
                idxs[lid] = idxs[lid + s];
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
#endif

#if MODE == MODE_EXTREMUM
        if (lid == 0) STORE(out_offset + row, vals[0]);
#elif MODE == MODE_ARG
        if (lid == 0) STORE(out_offset + row, idxs[0]);
#else
#if MODE == MODE_LSE
        // Shift by the row's max so exp never overflows; an infinite or NaN
        // max is not subtracted (inf - inf would turn a valid -inf/inf into NaN).
        const ACC_T top = vals[0];
        const ACC_T shift = isfinite(top) ? top : 0.0f;
        barrier(CLK_LOCAL_MEM_FENCE);
#define TERM(v) exp((v) - shift)
#else
#define TERM(v) (v)
#endif
        ACC_T acc = 0, comp = 0;
        for (int j = lid; j < row_len; j += size) ACCUMULATE(acc, comp, TERM(LOAD(base + j)));
        vals[lid] = acc;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int s = size / 2; s > 0; s >>= 1) {
            if (lid < s) vals[lid] += vals[lid + s];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
#if MODE == MODE_LSE
        if (lid == 0) STORE(out_offset + row, shift + log(vals[0]));
#else
        if (lid == 0) STORE(out_offset + row, FINISH(vals[0]));
#endif
#undef TERM
#endif
        // The next row overwrites vals; wait until work-item 0 has read it.
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

#if MODE == MODE_SUM
// The sums over the leading axis of a contiguous [row_len, cols] input: a
// bias gradient, a (batch, features) gradient summed over the batch. Work-item
// (x, y) of a work-group takes column get_global_id(0) and rows y, y + depth,
// ...: a warp reads consecutive columns of one row, so the input is read once,
// coalesced, where reduce_rows would need it transposed first (a copy that
// cost 5x the sum itself: 242 + 43 us for 4096 x 8192 on the H200). Then a
// tree in local memory over y. reduce.py launches work-groups of COLS_WIDTH x
// COLS_DEPTH. Arguments as reduce_rows's, cols in place of rows.
__kernel __attribute__((reqd_work_group_size(COLS_WIDTH, COLS_DEPTH, 1)))
void reduce_cols(const int cols, const int row_len,
                 __global const IN_T *in, const int in_offset,
                 __global OUT_T *out, const int out_offset, const float scale
                 EXTRA_PARAMS)
{
    __local ACC_T vals[COLS_DEPTH][COLS_WIDTH];
    const int col = get_global_id(0);
    const int x = get_local_id(0), y = get_local_id(1);
    ACC_T acc = 0, comp = 0;
    if (col < cols) {
        for (int r = y; r < row_len; r += COLS_DEPTH)
            ACCUMULATE(acc, comp, LOAD(in_offset + r * cols + col));
    }
    vals[y][x] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = COLS_DEPTH / 2; s > 0; s >>= 1) {
        if (y < s) vals[y][x] += vals[y + s][x];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (y == 0 && col < cols) STORE(out_offset + col, FINISH(vals[0][x]));
}
#endif
