// One reduction kernel for sum, mean, max, min, argmax, argmin and logsumexp
// (reduce_rows), and one for sums over leading axes (reduce_cols).
// reduce_rows: the input is contiguous [rows, row_len] (reduce.py moves the
// reduced axes innermost first); each work-group reduces get_local_size(1) rows
// at a time, get_local_size(0) work-items striding over each row, then a tree
// in local memory combines each row's partial results. reduce.py supplies, as #defines:
//   MODE            MODE_SUM, MODE_EXTREMUM, MODE_ARG or MODE_LSE
//   IN_T, LOAD(i)   the input's storage type; element i read as ACC_T
//   ACC_T           the accumulator type (float for fp16 and fp32 inputs)
//   KAHAN           1 to compensate the sequential part of a float sum
//   BEATS(v, b)     MODE_EXTREMUM/ARG: v replaces b (v > b for max)
//   IDENTITY        MODE_EXTREMUM/ARG: the value every element beats or ties
//   IS_NAN(x)       isnan for floats, 0 for integers
//   FINISH(x)       MODE_SUM: the row's result from its sum (x * scale for mean)
//   OUT_T, STORE(idx, v)  the output's storage type and how to store v
//   GROUP           the local buffers' length, at least the work-group's size
//   COLS_WIDTH, COLS_DEPTH  reduce_cols's work-group shape (COLS_DEPTH a power of 2)
//   SEGMENTS, SEGMENT  reduce_rows, MODE_SUM: each row summed in SEGMENTS parts of
//                   SEGMENT elements (the last shorter), to partial sums a second
//                   launch adds (1: whole rows)

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
    const int size = get_local_size(0);  // a power of two
    const int stack = get_local_size(1);  // rows a group reduces side by side
    // This work-item's row's slots in the local buffers.
    __local ACC_T *vals_ = vals + get_local_id(1) * size;
#if MODE != MODE_SUM
    __local long *idxs_ = idxs + get_local_id(1) * size;
#endif

    // Every work-item of a group runs the same number of row iterations (past the
    // last row with nothing to load), so the barriers inside are reached uniformly.
    for (int first = get_group_id(0) * stack; first < rows; first += get_num_groups(0) * stack) {
        const int row = first + get_local_id(1);
#if SEGMENTS > 1
        // A long row's sum in SEGMENTS parts, each a row of this launch (rows counts
        // them all): part p of input row r is elements [p * SEGMENT, (p + 1) * SEGMENT).
        const int start = (row % SEGMENTS) * SEGMENT;
        const int len = row < rows ? min(row_len - start, SEGMENT) : 0;
        const int base = in_offset + (row / SEGMENTS) * row_len + start;
#else
        const int len = row < rows ? row_len : 0;
        const int base = in_offset + row * row_len;
#endif

#if MODE == MODE_EXTREMUM || MODE == MODE_ARG || MODE == MODE_LSE
        // The padding index LONG_MAX makes an untouched identity lose every
        // tie against a real element.
        ACC_T best = IDENTITY;
        long best_i = LONG_MAX;
        for (int j = lid; j < len; j += size) {
            const ACC_T v = LOAD(base + j);
            if (takes(v, j, best, best_i)) { best = v; best_i = j; }
        }
        vals_[lid] = best;
        idxs_[lid] = best_i;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int s = size / 2; s > 0; s >>= 1) {
            if (lid < s && takes(vals_[lid + s], idxs_[lid + s], vals_[lid], idxs_[lid])) {
                vals_[lid] = vals_[lid + s];
                idxs_[lid] = idxs_[lid + s];
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
#endif

#if MODE == MODE_EXTREMUM
        if (lid == 0 && row < rows) STORE(out_offset + row, vals_[0]);
#elif MODE == MODE_ARG
        if (lid == 0 && row < rows) STORE(out_offset + row, idxs_[0]);
#else
#if MODE == MODE_LSE
        // Shift by the row's max so exp never overflows; an infinite or NaN
        // max is not subtracted (inf - inf would turn a valid -inf/inf into NaN).
        const ACC_T top = vals_[0];
        const ACC_T shift = isfinite(top) ? top : 0.0f;
        barrier(CLK_LOCAL_MEM_FENCE);
#define TERM(v) exp((v) - shift)
#else
#define TERM(v) (v)
#endif
        ACC_T acc = 0, comp = 0;
        for (int j = lid; j < len; j += size) ACCUMULATE(acc, comp, TERM(LOAD(base + j)));
        vals_[lid] = acc;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int s = size / 2; s > 0; s >>= 1) {
            if (lid < s) vals_[lid] += vals_[lid + s];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
#if MODE == MODE_LSE
        if (lid == 0 && row < rows) STORE(out_offset + row, shift + log(vals_[0]));
#else
        if (lid == 0 && row < rows) STORE(out_offset + row, FINISH(vals_[0]));
#endif
#undef TERM
#endif
        // The next rows overwrite vals; wait until work-item 0 has read it.
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
// COLS_DEPTH. Work-group row g sums only the input rows of segment g (seg_len
// of them) into out row g: a tall input is then summed by
// ceil(row_len / seg_len) times as many groups, and reduce.py sums those
// [segments, cols] partial sums with a second launch (its parallelism would
// otherwise be the column count alone: 16 groups of 1024 work-items for the
// GPT's 8192 x 512 bias gradients, on an H200's 132 compute units).
// Arguments as reduce_rows's, cols in place of rows, then seg_len.
__kernel __attribute__((reqd_work_group_size(COLS_WIDTH, COLS_DEPTH, 1)))
void reduce_cols(const int cols, const int row_len,
                 __global const IN_T *in, const int in_offset,
                 __global OUT_T *out, const int out_offset, const float scale,
                 const int seg_len EXTRA_PARAMS)
{
    __local ACC_T vals[COLS_DEPTH][COLS_WIDTH];
    const int col = get_global_id(0);
    const int x = get_local_id(0), y = get_local_id(1);
    const int segment = get_group_id(1);
    const int stop = min(row_len, (segment + 1) * seg_len);
    ACC_T acc = 0, comp = 0;
    if (col < cols) {
        for (int r = segment * seg_len + y; r < stop; r += COLS_DEPTH)
            ACCUMULATE(acc, comp, LOAD(in_offset + r * cols + col));
    }
    vals[y][x] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = COLS_DEPTH / 2; s > 0; s >>= 1) {
        if (y < s) vals[y][x] += vals[y + s][x];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (y == 0 && col < cols) STORE(out_offset + segment * cols + col, FINISH(vals[0][x]));
}
#endif

#ifdef STRIPS
// (No local may be named p0, s0, ...: a capture's LOAD passes its arguments by those names.)
// CPUs (reduce.py defines STRIPS there only): the contiguous input read in
// place as [outer, kept, inner], reduced over outer and inner, one work-item
// per kept index and no barriers. reduce_rows's work-group per row and tree
// in local memory cost PoCL a loop over work-items per barrier: 29 ms for a
// 32 x 43264 row sum that torch takes 0.14 ms for, and BatchNorm's sums over
// (N, H, W) needed a transposing copy first. A float sum adds each strip of
// STRIP_BLOCK elements in float8 lanes (plain sums of at most STRIP_BLOCK/16
// terms a lane), each strip's total compensated into the lanes' running sum,
// as conv_cpu.cl's row_sums. Arguments as reduce_rows's (kept in place of
// rows, row_len = outer * inner), then inner.
#define STRIP_BLOCK 64
#define LOAD8(i) ((float8)(LOAD(i), LOAD((i) + 1), LOAD((i) + 2), LOAD((i) + 3),              \
                           LOAD((i) + 4), LOAD((i) + 5), LOAD((i) + 6), LOAD((i) + 7)))
#define ACCUMULATE8(acc, comp, v)                                               \
    {                                                                           \
        const float8 y_ = (v) - comp;                                           \
        const float8 t_ = acc + y_;                                             \
        comp = select((float8)0.0f, (t_ - acc) - y_, isfinite(t_));             \
        acc = t_;                                                               \
    }

// The compensated total of acc's lanes and a scalar (sum, comp) carried on.
inline float lanes_total(float8 acc, float sum, float comp) {
    const float lanes[8] = {acc.s0, acc.s1, acc.s2, acc.s3, acc.s4, acc.s5, acc.s6, acc.s7};
    for (int k = 0; k < 8; ++k) ACCUMULATE(sum, comp, lanes[k]);
    return sum;
}

__kernel void reduce_strips(const int kept, const int row_len,
                            __global const IN_T *in, const int in_offset,
                            __global OUT_T *out, const int out_offset, const float scale,
                            const int inner EXTRA_PARAMS)
{
    const int k = get_global_id(0);
    if (k >= kept) return;  // no barrier below: the launch is rounded up to whole groups
    const int outer = inner ? row_len / inner : 0;
    const long first = in_offset + (long)k * inner, step = (long)kept * inner;

#if KAHAN && MODE != MODE_ARG
    // Floats in float8 lanes. max/min first (logsumexp's shift): a lane takes
    // v where v beats it or is NaN, and a NaN lane keeps NaN; the lanes are
    // then combined by takes(), which ranks NaN first.
#if MODE != MODE_SUM
    float8 best8 = IDENTITY;
    ACC_T best = IDENTITY;
    for (int a = 0; a < outer; ++a) {
        const long base = first + a * step;
        int j = 0;
        for (; j + 8 <= inner; j += 8) {
            const float8 v = LOAD8(base + j);
            best8 = select(best8, v, BEATS(v, best8) | isnan(v));
        }
        for (; j < inner; ++j) {
            const ACC_T v = LOAD(base + j);
            if (takes(v, 0, best, 0)) best = v;
        }
    }
    const float lanes[8] = {best8.s0, best8.s1, best8.s2, best8.s3,
                            best8.s4, best8.s5, best8.s6, best8.s7};
    for (int t = 0; t < 8; ++t) if (takes(lanes[t], 0, best, 0)) best = lanes[t];
#endif
#if MODE == MODE_EXTREMUM
    STORE(out_offset + k, best);
#else
#if MODE == MODE_LSE
    // As reduce_rows: an infinite or NaN max is not subtracted.
    const ACC_T shift = isfinite(best) ? best : 0.0f;
#define TERM(v) exp((v) - shift)
#else
#define TERM(v) (v)
#endif
    float8 acc8 = 0.0f, comp8 = 0.0f;
    ACC_T acc = 0, comp = 0;
    for (int a = 0; a < outer; ++a) {
        const long base = first + a * step;
        int j = 0;
        for (; j + STRIP_BLOCK <= inner; j += STRIP_BLOCK) {
            float8 strip0_ = 0.0f, strip1_ = 0.0f;
            for (int t = j; t < j + STRIP_BLOCK; t += 16) {
                strip0_ += TERM(LOAD8(base + t));
                strip1_ += TERM(LOAD8(base + t + 8));
            }
            ACCUMULATE8(acc8, comp8, strip0_ + strip1_);
        }
        for (; j + 8 <= inner; j += 8) ACCUMULATE8(acc8, comp8, TERM(LOAD8(base + j)));
        for (; j < inner; ++j) ACCUMULATE(acc, comp, TERM(LOAD(base + j)));
    }
#undef TERM
#if MODE == MODE_LSE
    STORE(out_offset + k, shift + log(lanes_total(acc8, acc, comp)));
#else
    STORE(out_offset + k, FINISH(lanes_total(acc8, acc, comp)));
#endif
#endif
#elif MODE == MODE_SUM
    ACC_T acc = 0, comp = 0;
    for (int a = 0; a < outer; ++a)
        for (int j = 0; j < inner; ++j) ACCUMULATE(acc, comp, LOAD(first + a * step + j));
    STORE(out_offset + k, FINISH(acc));
#else
    // Integers' max/min and every argmax/argmin, one element at a time. The
    // reduced elements in order (a, j) are reduce_rows's row: their flat index
    // a * inner + j is argmax's index.
    ACC_T best = IDENTITY;
    long best_i = LONG_MAX;
    for (int a = 0; a < outer; ++a)
        for (int j = 0; j < inner; ++j) {
            const ACC_T v = LOAD(first + a * step + j);
            const long i = (long)a * inner + j;
            if (takes(v, i, best, best_i)) { best = v; best_i = i; }
        }
#if MODE == MODE_ARG
    STORE(out_offset + k, best_i);
#else
    STORE(out_offset + k, best);
#endif
#endif
}

#if MODE == MODE_SUM && KAHAN
// CPUs: sums over the leading axis of a contiguous [row_len, cols] input, one
// work-item per 8 adjacent columns, each row's 8 elements compensated into
// float8 lanes. Arguments as reduce_cols's.
__kernel void reduce_cols8(const int cols, const int row_len,
                           __global const IN_T *in, const int in_offset,
                           __global OUT_T *out, const int out_offset, const float scale
                           EXTRA_PARAMS)
{
    const int c = get_global_id(0) * 8;
    if (c >= cols) return;
    if (c + 8 <= cols) {
        float8 acc = 0.0f, comp = 0.0f;
        for (int r = 0; r < row_len; ++r) ACCUMULATE8(acc, comp, LOAD8(in_offset + (long)r * cols + c));
        const float lanes[8] = {acc.s0, acc.s1, acc.s2, acc.s3, acc.s4, acc.s5, acc.s6, acc.s7};
        for (int t = 0; t < 8; ++t) STORE(out_offset + c + t, FINISH(lanes[t]));
    } else {
        for (int col = c; col < cols; ++col) {
            ACC_T acc = 0, comp = 0;
            for (int r = 0; r < row_len; ++r) ACCUMULATE(acc, comp, LOAD(in_offset + (long)r * cols + col));
            STORE(out_offset + col, FINISH(acc));
        }
    }
}
#endif
#endif
