// Adagrad (Duchi et al., 2011; vector_io.cl is prepended). No defines besides VEC,
// CHUNK and PARAM_HALF. The host gives neg_clr = -lr / (1 + (t - 1) * lr_decay), in
// double as PyTorch computes it. Operation order follows PyTorch's single-tensor
// Adagrad: sum + g * g, then p + (-clr * g) / (sqrt(sum) + eps).

#define ADAGRAD_HYPERPARAMETERS                                                 \
    const float grad_sign,      /* -1 to maximize */                            \
    const float weight_decay,   /* coupled L2 coefficient */                    \
    const float eps, const float neg_clr

#define ADAGRAD_AT(i, TYPE, LOAD_P, STORE_P, LOAD_F, STORE_F)                   \
    do {                                                                        \
        TYPE p_i = LOAD_PARAM(i, LOAD_P, LOAD_F), g_i = grad_sign * LOAD_P(g, i); \
        TYPE s_i = LOAD_F(s, i);                                                \
        if (weight_decay != 0.0f) g_i = g_i + weight_decay * p_i;               \
        s_i = s_i + g_i * g_i;                                                  \
        p_i = p_i + (neg_clr * g_i) / (sqrt(s_i) + eps);                        \
        STORE_PARAM(p_i, i, STORE_P, STORE_F);                                  \
        STORE_F(s_i, s, i);                                                     \
    } while (0)

// One parameter: n elements of p, g and sum (s), each at its own offset.
__kernel void adagrad_step(const long n,
                           PARAM_ARGS,
                           __global const param_t *g_data, const long g_offset,
                           __global float *s_data, const long s_offset,
                           ADAGRAD_HYPERPARAMETERS)
{
    CHUNK_BOUNDS(n);
    PARAM_POINTERS;
    __global const param_t *g = g_data + g_offset;
    __global float *s = s_data + s_offset;
    FOR_EACH_ELEMENT(ADAGRAD_AT);
}
