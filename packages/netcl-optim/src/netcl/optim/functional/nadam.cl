// NAdam (Dozat, 2016; vector_io.cl is prepended). No defines besides VEC, CHUNK and
// PARAM_HALF. From the host, in double as PyTorch computes them from the momentum
// schedule mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay)) and the product of
// the mu so far: grad_coef = -lr * (1 - mu_t) / (1 - mu_product) and
// exp_avg_coef = -lr * mu_{t+1} / (1 - mu_product * mu_{t+1}).
// Weight decay as in radam.cl: coupled through weight_decay, decoupled through decay.
// Operation order follows PyTorch's single-tensor NAdam: denom = sqrt(v / bc2) + eps,
// then two addcdiv, the gradient's term first.

#define NADAM_HYPERPARAMETERS                                                   \
    const float grad_sign,      /* -1 to maximize */                            \
    const float weight_decay,   /* coupled L2 coefficient */                    \
    const float decay,          /* 1 - lr * weight_decay when decoupled, else 1 */ \
    const float one_minus_beta1, const float beta2, const float one_minus_beta2, \
    const float bias_correction2, const float eps,                              \
    const float grad_coef, const float exp_avg_coef

#define NADAM_AT(i, TYPE, LOAD_P, STORE_P, LOAD_F, STORE_F)                     \
    do {                                                                        \
        TYPE p_i = LOAD_PARAM(i, LOAD_P, LOAD_F) * decay, g_i = grad_sign * LOAD_P(g, i); \
        TYPE m_i = LOAD_F(m, i), v_i = LOAD_F(v, i);                            \
        if (weight_decay != 0.0f) g_i = g_i + weight_decay * p_i;               \
        m_i = LERP(m_i, g_i, one_minus_beta1);                                  \
        v_i = v_i * beta2 + one_minus_beta2 * g_i * g_i;                        \
        const TYPE denom = sqrt(v_i / bias_correction2) + eps;                  \
        p_i = p_i + (grad_coef * g_i) / denom;                                  \
        p_i = p_i + (exp_avg_coef * m_i) / denom;                               \
        STORE_PARAM(p_i, i, STORE_P, STORE_F);                                  \
        STORE_F(m_i, m, i);                                                     \
        STORE_F(v_i, v, i);                                                     \
    } while (0)

// NAdam's mu_product is host state, multiplied in once per step taken: a step skipped on
// the device could not take it back, so NAdam has no GRAD_SCALING variant (GradScaler
// reads found_inf on the host for it, as PyTorch's non-fused path does).
#define STEP_SCALARS (void)0

// One parameter: n elements of p, g, exp_avg (m) and exp_avg_sq (v).
STEP_KERNEL_2(nadam_step, NADAM_HYPERPARAMETERS, NADAM_AT, m, v)
