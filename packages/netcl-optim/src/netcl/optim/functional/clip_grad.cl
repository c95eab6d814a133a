// Partial norms of gradients for clip_grad_norm_ (vector_io.cl is prepended; only
// its element loads and CHUNK_BOUNDS are used). Defines from Python:
//   NORM   0: max |g| (norm_type inf)     1: sum |g|      2: sum g^2
//          3: sum |g|^ord (other ord > 0)  4: min |g| (norm_type -inf)
// Each work-item folds CHUNK contiguous elements into one float; the host adds the
// partials in double and takes the root, so the device never needs fp64.

#if NORM == 0
#define NORM_INIT 0.0f
#define NORM_FOLD(acc, x) fmax((acc), fabs(x))
#elif NORM == 1
#define NORM_INIT 0.0f
#define NORM_FOLD(acc, x) ((acc) + fabs(x))
#elif NORM == 2
#define NORM_INIT 0.0f
#define NORM_FOLD(acc, x) ((acc) + (x) * (x))
#elif NORM == 3
#define NORM_INIT 0.0f
#define NORM_FOLD(acc, x) ((acc) + pow(fabs(x), ord))
#else
#define NORM_INIT INFINITY
#define NORM_FOLD(acc, x) fmin((acc), fabs(x))
#endif

__kernel void norm_partials(const long n,
                            __global const param_t *g_data, const long g_offset,
                            __global float *partials, const long partial_offset,
                            const float ord)
{
    CHUNK_BOUNDS(n);
    __global const param_t *g = g_data + g_offset;
    float acc = NORM_INIT;
    for (long i = begin; i < end; ++i) {
        const float x = LOAD1_P(g, i);
        // fmax/fmin drop a nan; a nan gradient must still make the norm nan.
        acc = isnan(x) ? x : NORM_FOLD(acc, x);
        if (isnan(acc)) break;
    }
    partials[partial_offset + get_global_id(0)] = acc;
    (void)ord;
}
