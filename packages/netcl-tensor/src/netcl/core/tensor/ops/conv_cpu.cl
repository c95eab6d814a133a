// Convolution and pooling kernels for a CPU device (PoCL). conv.py supplies,
// as #defines, the storage type and geometry:
//   T, LOAD(p, i), STORE(p, i, v)   as in conv.cl
//   KH KW SH SW PH PW DH DW         kernel, stride, padding, dilation
//   H W OH OW                       input and output spatial sizes
// Geometry is compiled in (one build per layer shape): every division, modulo
// and tap loop then folds to constants, where conv.cl's runtime geometry cost
// one integer division per index per element. The index arithmetic is
// conv_geometry.cl's (tap_pixel, source_window), compiled first.
//
// Every kernel runs over a 3-D grid whose first axis is the innermost image
// axis (a row of pixels) and whose sizes are exact, so no work-item returns
// early: PoCL vectorizes a work-group's loop along that first axis, and does
// not vectorize a kernel that can return early.
//
// The column matrix is (C*KH*KW, N*OH*OW): row (c*KH + kh)*KW + kw, column
// n*OH*OW + oh*OW + ow. The whole batch is one matrix, so a convolution is one
// large product (O, C*KH*KW) @ (C*KH*KW, N*OH*OW) for the panel matmul rather
// than N small ones (64 products of 64x288x121 ran at a tenth of its speed).

#define L (OH * OW)

// Eight elements from i as a float8. A float row is only 4-byte aligned, and a
// dereferenced vector pointer (not vload8, which PoCL does not inline) is what
// becomes one vector load (as matmul.cl's panel kernel found).
typedef float float8_unaligned __attribute__((ext_vector_type(8), aligned(4)));
#if HALF
#define LOAD8(p, i) vload_half8(0, (p) + (i))
#elif BF16
#define LOAD8(p, i) bf16_load8((i), (p))
#else
#define LOAD8(p, i) (*(__global const float8_unaligned *)((p) + (i)))
#endif
#define KK (KH * KW)

// Column matrix entry (row, j) = x[n, c, h, w] (0 in the padding and past the
// matrix), row = (c*KH + kh)*KW + kw, j = n*L + oh*OW + ow; x contiguous NCHW.
// The load is unconditional, from element 0 outside: a load under a branch
// kept PoCL from vectorizing and ran 1.7x slower.
inline float column_entry(__global const T *x, const int x_offset, const int N, const int C,
                          const int row, const int j)
{
    const int n = j / L, oh = (j % L) / OW, ow = j % OW;
    const int c = row / KK, kh = (row % KK) / KW, kw = row % KW;
    const int h = tap_pixel(oh, kh, SH, PH, DH), w = tap_pixel(ow, kw, SW, PW, DW);
    const bool inside = row < C * KK && j < N * L && h >= 0 && h < H && w >= 0 && w < W;
    const float v = LOAD(x, x_offset + (inside ? ((n * C + c) * H + h) * W + w : 0));
    return inside ? v : 0.0f;
}

// The column matrix written as matmul.cl's pack_b lays out B for the panel
// kernel (float panels 16 columns wide, a panel's K rows one after another,
// zero past N), so the product reads it without pack_b's copy. Grid (16, K,
// panels): the first axis is the column within a panel, so a work-group's
// stores are one contiguous run that PoCL vectorizes (a grid over pixels
// scattered them a panel apart and ran at ~3 GB/s).
//   PANELS_OF_COLS: B = cols   (K = C*KH*KW, N = N*L): the forward product;
//   else:           B = cols^T (N = C*KH*KW) cut into chunks of K = N*L / chunks
//                   rows, one batch entry each (panel z*Q + q: chunk z, columns
//                   16q..), whose products the weight gradient sums.
__kernel void unfold_panels(__global float *panels, __global const T *x, const int x_offset,
                            const int N, const int C)
{
    const int lane = get_global_id(0), k = get_global_id(1), panel = get_global_id(2);
    const int K = get_global_size(1);
#if PANELS_OF_COLS
    const float v = column_entry(x, x_offset, N, C, k, panel * 16 + lane);
#else
    const int q_count = (C * KK + 15) / 16, z = panel / q_count, q = panel % q_count;
    const float v = column_entry(x, x_offset, N, C, q * 16 + lane, z * K + k);
#endif
    panels[((long)panel * K + k) * 16 + lane] = v;
}

// x[n, c, h, w] = the sum of the column matrix entries that hold it (unfold_panels);
// grid (W, H, N*C), cols plain row-major. The adjoint, gathered per pixel (no atomics).
// Taps that hold no entry load element 0 and add nothing, unconditionally (as
// column_entry: skipping them under a branch ran 1.5x slower). The tap loops are
// unrolled: PoCL vectorizes a work-item loop around them better once they are
// straight-line code (64x16x28x28 3x3: 7.9 -> 5.1 ms, one thread, same run).
// AFFINE_FOLD (stride 1; planes z_first.. whose every tap address lies inside cols,
// conv_cpu.py's _affine_planes): a tap loads its address unselected, held or not,
// which runs along the row of pixels, so the loads are vector loads, not gathers
// (5.1 -> 2.4 ms).
__kernel void fold_cols(__global T *x, __global const T *cols, const int N, const int C,
                        const int z_first)
{
    const int w = get_global_id(0), h = get_global_id(1), z = get_global_id(2) + z_first;
    const int c = z % C, n = z / C;
    float acc = 0.0f;
    #pragma unroll
    for (int kh = 0; kh < KH; ++kh) {
#if AFFINE_FOLD
        const int oh = h + PH - kh * DH;
#else
        const int oh = source_window(h, kh, SH, PH, DH, OH);
#endif
        #pragma unroll
        for (int kw = 0; kw < KW; ++kw) {
            const long row = (c * KH + kh) * KW + kw;
#if AFFINE_FOLD
            const int ow = w + PW - kw * DW;
            const bool held = oh >= 0 && oh < OH && ow >= 0 && ow < OW;
            const float v = LOAD(cols, row * N * L + n * L + oh * OW + ow);
#else
            const int ow = source_window(w, kw, SW, PW, DW, OW);
            const bool held = oh >= 0 && ow >= 0;
            const float v = LOAD(cols, held ? row * N * L + n * L + oh * OW + ow : 0);
#endif
            acc += held ? v : 0.0f;
        }
    }
    STORE(x, ((n * C + c) * H + h) * W + w, acc);
}

// out[b, a, l] = in[a, b, l] (+ bias[a] with BIAS); grid (LEN, A, B). The
// product's (O, N, L) to NCHW (with the bias added), and a gradient's NCHW to
// (O, N, L) for the backward products.
__kernel void swap_planes(__global T *out, __global const T *in, const int in_offset,
                          __global const T *bias, const int bias_offset)
{
    const int l = get_global_id(0), a = get_global_id(1), b = get_global_id(2);
    const int len = get_global_size(0), A = get_global_size(1), B = get_global_size(2);
    float v = LOAD(in, in_offset + ((long)a * B + b) * len + l);
#if BIAS
    v += LOAD(bias, bias_offset + a);
#endif
    STORE(out, ((long)b * A + a) * len + l, v);
}

// out[n, c, oh, ow] = max over the window, index = h * W + w of the first max
// (NaN wins); grid (OW, OH, N*C), x contiguous from x_offset. Branch-free, as
// column_entry: a tap outside loads element 0 and is not taken. A later tap is
// taken when !(v <= best) && best == best: greater, or NaN over a number (the
// isnan() form of the same test ran 5x slower). With INSIDE (every tap in the
// image: conv_cpu.py) the first tap starts the max and the bound tests fold
// away. The tap loops are unrolled: left as loops, PoCL's vectorized work-item
// loop ran them ~7x slower (2x2 over 64x16x28x28: 4.4 -> 0.56 ms, one thread).
__kernel void max_pool2d_rows(__global T *out, __global long *index, __global const T *x,
                              const int x_offset)
{
    const int ow = get_global_id(0), oh = get_global_id(1), z = get_global_id(2);
    __global const T *plane = x + x_offset + z * H * W;
#if INSIDE
    int best_at = tap_pixel(oh, 0, SH, PH, DH) * W + tap_pixel(ow, 0, SW, PW, DW);
    float best = LOAD(plane, best_at);
#else
    int best_at = -1;
    float best = 0.0f;
#endif
    #pragma unroll
    for (int kh = 0; kh < KH; ++kh) {
        const int h = tap_pixel(oh, kh, SH, PH, DH);
        #pragma unroll
        for (int kw = 0; kw < KW; ++kw) {
            const int w = tap_pixel(ow, kw, SW, PW, DW);
            const bool inside = INSIDE || (h >= 0 && h < H && w >= 0 && w < W);
            const int at = h * W + w;
            const float v = LOAD(plane, inside ? at : 0);
            const bool first = !INSIDE && best_at < 0;
            const bool take = inside && (first || (!(v <= best) && best == best));
            best = take ? v : best;
            best_at = take ? at : best_at;
        }
    }
    const int i = (z * OH + oh) * OW + ow;
    STORE(out, i, best);
    index[i] = best_at;
}

// grad_x for windows that share no pixel (stride >= kernel, no dilation): each
// window writes its pixels, its gradient at its max and 0 elsewhere; grid
// (OW, OH, N*C). Pixels outside every window are zeroed before (conv_cpu.py).
// Unrolled, and with INSIDE untested, as max_pool2d_rows (2x2 over 64x16x28x28:
// 2.1 -> 0.7 ms).
// Per window rather than per pixel: the per-pixel gather below ran 1.6x
// slower than the forward pass here, its tap tests and index reads scalar.
__kernel void max_pool2d_backward_windows(__global T *grad_x, __global const T *g,
                                          const int g_offset, __global const long *index)
{
    const int ow = get_global_id(0), oh = get_global_id(1), z = get_global_id(2);
    const int i = (z * OH + oh) * OW + ow;
    const int at = (int)index[i];
    const float v = LOAD(g, g_offset + i);
    __global T *plane = grad_x + z * H * W;
    #pragma unroll
    for (int kh = 0; kh < KH; ++kh) {
        const int h = tap_pixel(oh, kh, SH, PH, 1);
        #pragma unroll
        for (int kw = 0; kw < KW; ++kw) {
            const int w = tap_pixel(ow, kw, SW, PW, 1);
            if (INSIDE || (h >= 0 && h < H && w >= 0 && w < W))
                STORE(plane, h * W + w, h * W + w == at ? v : 0.0f);
        }
    }
}

// grad_x[n, c, h, w] = sum of grad over the windows whose max was (h, w);
// grid (W, H, N*C), g contiguous from g_offset.
__kernel void max_pool2d_backward_rows(__global T *grad_x, __global const T *g,
                                       const int g_offset, __global const long *index)
{
    const int w = get_global_id(0), h = get_global_id(1), z = get_global_id(2);
    const long self = h * W + w;
    const int plane = z * L;
    float acc = 0.0f;
    for (int kh = 0; kh < KH; ++kh) {
        const int oh = source_window(h, kh, SH, PH, DH, OH);
        if (oh < 0) continue;
        for (int kw = 0; kw < KW; ++kw) {
            const int ow = source_window(w, kw, SW, PW, DW, OW);
            if (ow < 0 || index[plane + oh * OW + ow] != self) continue;
            acc += LOAD(g, g_offset + plane + oh * OW + ow);
        }
    }
    STORE(grad_x, (z * H + h) * W + w, acc);
}

// out[r] = the sum of row r of the contiguous (rows, len) input (a bias
// gradient: a few rows of N*OH*OW each). One work-item per row, launched in
// work-groups of one so the rows spread over the cores. Each block of 256
// elements is summed plainly in four float8 accumulators (32 lanes of 8
// elements: independent chains, so the adds pipeline), and the blocks' sums
// are added with compensation (Kahan), as reduce.cl compensates its sums; the
// rounding then stays that of 8-term sums. reduce_rows spent ~200x torch's
// time on this shape (one long row per work-group of strided work-items and a
// barrier tree); a compensated add per element ran 4x slower than this.
#define ROW_BLOCK 256
__kernel void row_sums(__global T *out, __global const T *in, const int in_offset,
                       const int len)
{
    const int r = get_global_id(0);
    __global const T *row = in + in_offset + (long)r * len;
    float8 acc = 0.0f, comp = 0.0f;
    int j = 0;
    for (; j + ROW_BLOCK <= len; j += ROW_BLOCK) {
        float8 s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        for (int k = j; k < j + ROW_BLOCK; k += 32) {
            s0 += LOAD8(row, k);
            s1 += LOAD8(row, k + 8);
            s2 += LOAD8(row, k + 16);
            s3 += LOAD8(row, k + 24);
        }
        const float8 y = ((s0 + s1) + (s2 + s3)) - comp;
        const float8 t = acc + y;
        comp = select((float8)0.0f, (t - acc) - y, isfinite(t));
        acc = t;
    }
    float sum = 0.0f, c = 0.0f;
    const float lanes[8] = {acc.s0, acc.s1, acc.s2, acc.s3, acc.s4, acc.s5, acc.s6, acc.s7};
    for (int k = 0; k < 8; ++k) {
        const float y = lanes[k] - c;
        const float t = sum + y;
        c = isfinite(t) ? (t - sum) - y : 0.0f;
        sum = t;
    }
    for (; j < len; ++j) {
        const float y = LOAD(row, j) - c;
        const float t = sum + y;
        c = isfinite(t) ? (t - sum) - y : 0.0f;
        sum = t;
    }
    STORE(out, r, sum);
}
