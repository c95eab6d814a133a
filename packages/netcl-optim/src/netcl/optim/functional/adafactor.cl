// Adafactor's element-wise parts (vector_io.cl is prepended); its row, column and whole
// sums are netcl's reductions, launched between these. Each kernel does what a chain of
// tensor ops did, in their order and roundings (torch's): products stay apart from
// sums (no fused multiply-add), maximum is the tensor op's (a >= b ? a : b), and the
// host passes every scalar as the float32 that op was given. No defines besides VEC,
// CHUNK and the parameter's dtype.

// maximum as the tensor op computes it (a NaN a gives b).
inline float max_of(const float a, const float b) { return a >= b ? a : b; }

// adafactor_lerp: s = torch's lerp(s, x, w) in place; ``low`` says w < 0.5 (the host's
// test, in double), one_minus_w is the host's 1 - w.
__kernel void adafactor_lerp(const long n, STATE_ARG(s), STATE_ARG(x),
                             const float w, const float one_minus_w, const int low)
{
#pragma OPENCL FP_CONTRACT OFF
    CHUNK_BOUNDS(n);
    STATE_POINTER(s);
    STATE_POINTER(x);
    for (long i = begin; i < end; ++i) {
        const float a = s[i], b = x[i], difference = b - a;
        if (low) {
            const float step = difference * w;
            s[i] = a + step;
        } else {
            const float step = difference * one_minus_w;
            s[i] = b - step;
        }
    }
}

// adafactor_update: u = g / sqrt(max(v, eps1^2)) (-g when ``negate``), v the factored
// estimate r c / max(mean(r), eps1) of a stack of rows x cols matrices (``factored``: variance
// holds r, col_var c, mean_r each matrix's mean of r) or, unfactored, variance itself.
__kernel void adafactor_update(const long n, STATE_ARG(u), STATE_ARG(g), STATE_ARG(variance),
                               STATE_ARG(col_var), STATE_ARG(mean_r),
                               const long rows, const long cols, const int factored,
                               const int negate, const float eps1, const float eps1_squared)
{
#pragma OPENCL FP_CONTRACT OFF
    CHUNK_BOUNDS(n);
    STATE_POINTER(u);
    STATE_POINTER(g);
    STATE_POINTER(variance);
    STATE_POINTER(col_var);
    STATE_POINTER(mean_r);
    for (long e = begin; e < end; ++e) {
        float v;
        if (factored) {
            const long matrix = e / (rows * cols), row = (e / cols) % rows, col = e % cols;
            const float outer = variance[matrix * rows + row] * col_var[matrix * cols + col];
            const float m = mean_r[matrix];
            v = outer / max_of(m, eps1);
        } else {
            v = variance[e];
        }
        u[e] = (negate ? -g[e] : g[e]) / sqrt(max_of(v, eps1_squared));
    }
}

// adafactor_apply: p = p * decay - u * alpha / max(rms(u) / d, 1), where
// alpha = max(rms(p), eps2) * lr_t and each rms is sqrt(a sum of squares) * its
// 1 / (sqrt(n) d) (p_scale, u_scale): the sums come from the reductions before.
__kernel void adafactor_apply(const long n, PARAM_ARGS, STATE_ARG(u), STATE_ARG(p_squares),
                              STATE_ARG(u_squares),
                              const float p_scale, const float eps2, const float lr_t,
                              const float u_scale, const float decay, const int decays)
{
#pragma OPENCL FP_CONTRACT OFF
    CHUNK_BOUNDS(n);
    PARAM_POINTERS;
    STATE_POINTER(u);
    STATE_POINTER(p_squares);
    STATE_POINTER(u_squares);
    const float alpha = max_of(sqrt(p_squares[0]) * p_scale, eps2) * lr_t;
    const float scale = alpha / max_of(sqrt(u_squares[0]) * u_scale, 1.0f);
    for (long i = begin; i < end; ++i) {
        float p_i = LOAD_PARAM(i, LOAD1_P, LOAD1_F);
        if (decays) p_i = p_i * decay;
        const float step = u[i] * scale;
        STORE_PARAM(p_i - step, i, STORE1_P, STORE1_F);
    }
}
