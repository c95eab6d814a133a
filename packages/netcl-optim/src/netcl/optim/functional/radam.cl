// RAdam (Liu et al., 2020; vector_io.cl is prepended, with its defines). From the host,
// in double as PyTorch computes them (in here under GRAD_SCALING): the bias
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
    const float host_bias_correction1, const float lr,                          \
    const float host_bias_correction2_sqrt, const float eps, const float host_rect

#define RADAM_AT(i, TYPE, LOAD_P, STORE_P, LOAD_F, STORE_F)                     \
    do {                                                                        \
        TYPE p_i = LOAD_PARAM(i, LOAD_P, LOAD_F) * decay, g_i = grad_sign * LOAD_P(g, i); \
        UNSCALE(g_i);                                                           \
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

#if GRAD_SCALING
// rho_t and r as RAdamHyperparameters.rectification computes them, at the step taken.
#define STEP_DOUBLES , const double host_step, const double beta1_d, const double beta2_d
#define STEP_SCALARS                                                             \
    const double t = TAKEN_STEP(host_step);                                     \
    const float bias_correction1 = (float)(1.0 - pow(beta1_d, t));              \
    const float bias_correction2_sqrt = (float)sqrt(1.0 - pow(beta2_d, t));     \
    const double rho_inf = 2.0 / (1.0 - beta2_d) - 1.0;                         \
    const double rho_t = rho_inf - 2.0 * t * pow(beta2_d, t) / (1.0 - pow(beta2_d, t)); \
    const float rect = rho_t > 5.0 ? (float)sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / \
        ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)) : 0.0f
#else
#define STEP_SCALARS                                                             \
    const float bias_correction1 = host_bias_correction1;                       \
    const float bias_correction2_sqrt = host_bias_correction2_sqrt;             \
    const float rect = host_rect
#endif

// One parameter: n elements of p, g, exp_avg (m) and exp_avg_sq (v).
STEP_KERNEL_2(radam_step, RADAM_HYPERPARAMETERS, RADAM_AT, m, v)
