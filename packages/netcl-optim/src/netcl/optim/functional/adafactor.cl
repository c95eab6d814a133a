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

// u = g / sqrt(max(v, eps1^2)) at element(s) i, TYPE float or floatv (VEC lanes, read
// with vloadN: a row's run may start anywhere in a vector). The lanes compute as the
// one-element form does, so the result does not depend on which form an element took.
#if VEC > 1
#define VLOAD(ptr, i) CAT(vload, VEC)(0, (ptr) + (i))
#define VSTORE(value, ptr, i) CAT(vstore, VEC)((value), 0, (ptr) + (i))
inline floatv max_of_v(const floatv a, const floatv b) { return select(b, a, a >= b); }
#endif
#define ROOT_DIVIDE(g_i, v, MAX) ((negate ? -(g_i) : (g_i)) / sqrt(MAX((v), eps1_squared)))

// adafactor_update: u = g / sqrt(max(v, eps1^2)) (-g when ``negate``), v the factored
// estimate r c / max(mean(r), eps1) of a stack of rows x cols matrices (``factored``:
// variance holds r, col_var c, mean_r each matrix's mean of r) or, unfactored, variance
// itself. A work-item's chunk is walked a run of one row at a time, so the row's r and
// the mean it is divided by are found once a row (64-bit divisions an element made the
// kernel 3/4 of a PoCL step), and each run VEC elements at a time.
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
    for (long e = begin; e < end;) {
        const long matrix = factored ? e / (rows * cols) : 0;
        const long row_start = factored ? e - e % cols : begin;
        const long stop = factored ? min(end, row_start + cols) : end;
        const float r = factored ? variance[matrix * rows + (e / cols) % rows] : 0.0f;
        const float floor = factored ? max_of(mean_r[matrix], eps1) : 1.0f;
        __global const float *c = col_var + matrix * cols;
#if VEC > 1
        for (; e + VEC <= stop; e += VEC) {
            const floatv v = factored ? (r * VLOAD(c, e - row_start)) / floor : VLOAD(variance, e);
            VSTORE(ROOT_DIVIDE(VLOAD(g, e), v, max_of_v), u, e);
        }
#endif
        for (; e < stop; ++e) {
            const float v = factored ? (r * c[e - row_start]) / floor : variance[e];
            u[e] = ROOT_DIVIDE(g[e], v, max_of);
        }
    }
}

// adafactor_apply: p = p * decay - u * alpha / max(rms(u) / d, 1), where
// alpha = max(rms(p), eps2) * lr_t and each rms is sqrt(a sum of squares) * its
// 1 / (sqrt(n) d) (p_scale, u_scale): the sums come from the reductions before.
#define ADAFACTOR_APPLY_AT(i, TYPE, LOAD_P, STORE_P, LOAD_F, STORE_F)           \
    do {                                                                        \
        TYPE p_i = LOAD_PARAM(i, LOAD_P, LOAD_F);                               \
        if (decays) p_i = p_i * decay;                                          \
        const TYPE step = LOAD_F(u, i) * scale;                                 \
        p_i = p_i - step;                                                       \
        STORE_PARAM(p_i, i, STORE_P, STORE_F);                                  \
    } while (0)

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
    FOR_EACH_ELEMENT(ADAFACTOR_APPLY_AT);
}
