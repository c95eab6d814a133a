// RAdam (Liu et al., 2020; vector_io.cl is prepended). No defines besides VEC, CHUNK
// and PARAM_HALF. From the host, in double as PyTorch computes them: the bias
// corrections, and rect, the variance rectification term when the approximated SMA
// length rho_t exceeds 5 and 0 when it does not (then the step is plain momentum).
// Coupled weight decay is weight_decay (decay 1); decoupled is decay = 1 - lr * wd
// (weight_decay 0): multiplying by 1 changes nothing, so one kernel serves both.
// Operation order follows PyTorch's single-tensor RAdam, whose adaptive term is
// sqrt(1 - beta2^t) divided by a tensor: reciprocal(sqrt(v) + eps) * sqrt(1 - beta2^t).

#define RADAM_HYPERPARAMETERS                                                   \
    const float grad_sign,      /* -1 to maximize */                            \
    const float weight_decay,   /* coupled L2 coefficient */                    \
    const float decay,          /* 1 - lr * weight_decay when decoupled, else 1 */ \
    const float one_minus_beta1, const float beta2, const float one_minus_beta2, \
    const float bias_correction1, const float lr, const float bias_correction2_sqrt, \
    const float eps, const float rect

#define RADAM_AT(i, TYPE, LOAD_P, STORE_P, LOAD_F, STORE_F)                     \
    do {                                                                        \
        TYPE p_i = LOAD_PARAM(i, LOAD_P, LOAD_F) * decay, g_i = grad_sign * LOAD_P(g, i); \
        TYPE m_i = LOAD_F(m, i), v_i = LOAD_F(v, i);                            \
        if (weight_decay != 0.0f) g_i = g_i + weight_decay * p_i;               \
        m_i = LERP(m_i, g_i, one_minus_beta1);                                  \
        v_i = v_i * beta2 + one_minus_beta2 * g_i * g_i;                        \
        const TYPE step_i = (m_i / bias_correction1) * lr;                      \
        if (rect > 0.0f)                                                        \
            p_i = p_i - (step_i * ((1.0f / (sqrt(v_i) + eps)) * bias_correction2_sqrt)) * rect; \
        else                                                                    \
            p_i = p_i - step_i;                                                 \
        STORE_PARAM(p_i, i, STORE_P, STORE_F);                                  \
        STORE_F(m_i, m, i);                                                     \
        STORE_F(v_i, v, i);                                                     \
    } while (0)

// One parameter: n elements of p, g, exp_avg (m) and exp_avg_sq (v), each at its own offset.
__kernel void radam_step(const long n,
                         PARAM_ARGS,
                         __global const param_t *g_data, const long g_offset,
                         __global float *m_data, const long m_offset,
                         __global float *v_data, const long v_offset,
                         RADAM_HYPERPARAMETERS)
{
    CHUNK_BOUNDS(n);
    PARAM_POINTERS;
    __global const param_t *g = g_data + g_offset;
    __global float *m = m_data + m_offset;
    __global float *v = v_data + v_offset;
    FOR_EACH_ELEMENT(RADAM_AT);
}
