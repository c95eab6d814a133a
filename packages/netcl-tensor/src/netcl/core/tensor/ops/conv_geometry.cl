// The window geometry both convolution kernel files share: conv.cl takes it as
// arguments (one build serves every shape), conv_cpu.cl compiles it in (where
// these fold to constants).
//
// unfold and fold are adjoint (im2col and col2im): the column of an input
// pixel for kernel tap (kh, kw) is at output position (oh, ow) with
//   h = tap_pixel(oh, kh, SH, PH, DH),   w = tap_pixel(ow, kw, SW, PW, DW).
// The "gather" direction (fold, the pooling backward) inverts that per pixel
// (source_window) instead of scattering with atomics, so its sums are deterministic.

// The input pixel along one axis that output position o reads for tap k.
inline int tap_pixel(int o, int k, int stride, int pad, int dil) {
    return o * stride - pad + k * dil;
}

// The output position along one axis that tap k of a window reads pixel x
// from, or -1 when no window reads it there.
inline int source_window(int x, int k, int stride, int pad, int dil, int out_size) {
    const int t = x + pad - k * dil;
    if (t < 0 || t % stride != 0) return -1;
    const int o = t / stride;
    return o < out_size ? o : -1;
}
