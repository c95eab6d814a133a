// Kernels for 2-D convolution and pooling over NCHW tensors, one work-item per
// output element. conv.py supplies, as #defines:
//   T               the storage type of the data (float or half)
//   LOAD(p, i)      read element i of buffer p as float
//   STORE(p, i, v)  write float v to element i of buffer p
// Geometry is passed as arguments, so one build serves every shape; its index
// arithmetic (tap_pixel, source_window) is conv_geometry.cl's, compiled first.

// Strides and offsets are in elements; int4 strides are (n, c, h, w) or (n, row, col, -).

// cols[n, (c*KH + kh)*KW + kw, oh*OW + ow] = x[n, c, h, w] (0 in the padding)
__kernel void unfold(const int total, __global T *cols,
                     __global const T *x, const int x_offset, const int4 xs,
                     const int C, const int H, const int W, const int OH, const int OW,
                     const int KH, const int KW, const int SH, const int SW,
                     const int PH, const int PW, const int DH, const int DW)
{
    const int i = get_global_id(0);
    if (i >= total) return;
    const int L = OH * OW, CKK = C * KH * KW;
    const int l = i % L, row = (i / L) % CKK, n = i / (L * CKK);
    const int ow = l % OW, oh = l / OW;
    const int kw = row % KW, kh = (row / KW) % KH, c = row / (KW * KH);
    const int h = tap_pixel(oh, kh, SH, PH, DH), w = tap_pixel(ow, kw, SW, PW, DW);
    float v = 0.0f;
    if (h >= 0 && h < H && w >= 0 && w < W)
        v = LOAD(x, x_offset + n * xs.s0 + c * xs.s1 + h * xs.s2 + w * xs.s3);
    STORE(cols, i, v);
}

// out[n, c, h, w] = sum of every column entry unfold would have copied it to
__kernel void fold(const int total, __global T *out,
                   __global const T *cols, const int cols_offset, const int4 cs,
                   const int C, const int H, const int W, const int OH, const int OW,
                   const int KH, const int KW, const int SH, const int SW,
                   const int PH, const int PW, const int DH, const int DW)
{
    const int i = get_global_id(0);
    if (i >= total) return;
    const int w = i % W, h = (i / W) % H, c = (i / (W * H)) % C, n = i / (W * H * C);
    float acc = 0.0f;
    for (int kh = 0; kh < KH; ++kh) {
        const int oh = source_window(h, kh, SH, PH, DH, OH);
        if (oh < 0) continue;
        for (int kw = 0; kw < KW; ++kw) {
            const int ow = source_window(w, kw, SW, PW, DW, OW);
            if (ow < 0) continue;
            const int row = (c * KH + kh) * KW + kw;
            acc += LOAD(cols, cols_offset + n * cs.s0 + row * cs.s1 + (oh * OW + ow) * cs.s2);
        }
    }
    STORE(out, i, acc);
}

// out[n, c, oh, ow] = max over the window; index[...] = h * W + w of that max
// (the first one on ties; NaN wins, as a max that propagates NaN must).
__kernel void max_pool2d(const int total, __global T *out, __global long *index,
                         __global const T *x, const int x_offset, const int4 xs,
                         const int C, const int H, const int W, const int OH, const int OW,
                         const int KH, const int KW, const int SH, const int SW,
                         const int PH, const int PW, const int DH, const int DW)
{
    const int i = get_global_id(0);
    if (i >= total) return;
    const int ow = i % OW, oh = (i / OW) % OH, c = (i / (OW * OH)) % C, n = i / (OW * OH * C);
    const int base = x_offset + n * xs.s0 + c * xs.s1;
    float best = -INFINITY;
    long best_at = -1;
    for (int kh = 0; kh < KH; ++kh) {
        const int h = tap_pixel(oh, kh, SH, PH, DH);
        if (h < 0 || h >= H) continue;
        for (int kw = 0; kw < KW; ++kw) {
            const int w = tap_pixel(ow, kw, SW, PW, DW);
            if (w < 0 || w >= W) continue;
            const float v = LOAD(x, base + h * xs.s2 + w * xs.s3);
            if (best_at < 0 || v > best || (isnan(v) && !isnan(best))) {
                best = v;
                best_at = (long)h * W + w;
            }
        }
    }
    STORE(out, i, best);
    index[i] = best_at;
}

// grad_x[n, c, h, w] = sum of grad_out over the windows whose max was (h, w)
__kernel void max_pool2d_backward(const int total, __global T *grad_x,
                                  __global const T *g, const int g_offset, const int4 gs,
                                  __global const long *index,
                                  const int C, const int H, const int W, const int OH,
                                  const int OW, const int KH, const int KW, const int SH,
                                  const int SW, const int PH, const int PW, const int DH,
                                  const int DW)
{
    const int i = get_global_id(0);
    if (i >= total) return;
    const int w = i % W, h = (i / W) % H, c = (i / (W * H)) % C, n = i / (W * H * C);
    const long self = (long)h * W + w;
    const int plane = (n * C + c) * OH * OW;
    float acc = 0.0f;
    for (int kh = 0; kh < KH; ++kh) {
        const int oh = source_window(h, kh, SH, PH, DH, OH);
        if (oh < 0) continue;
        for (int kw = 0; kw < KW; ++kw) {
            const int ow = source_window(w, kw, SW, PW, DW, OW);
            if (ow < 0 || index[plane + oh * OW + ow] != self) continue;
            acc += LOAD(g, g_offset + n * gs.s0 + c * gs.s1 + oh * gs.s2 + ow * gs.s3);
        }
    }
    STORE(grad_x, i, acc);
}
