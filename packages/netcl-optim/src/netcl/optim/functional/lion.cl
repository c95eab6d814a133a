// Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms",
// Algorithm 2; vector_io.cl is prepended, with its defines). The update direction is
// the sign of an interpolation of the momentum and the gradient; the momentum itself
// moves with its own beta2 afterwards.
// Weight decay is the paper's, decoupled: p * (1 - lr * weight_decay) from the host.

#define LION_HYPERPARAMETERS                                                    \
    const float grad_sign,      /* -1 to maximize */                            \
    const float decay,          /* 1 - lr * weight_decay */                     \
    const float one_minus_beta1, const float one_minus_beta2, const float neg_lr

#define LION_AT(i, TYPE, LOAD_P, STORE_P, LOAD_F, STORE_F)                      \
    do {                                                                        \
        TYPE p_i = LOAD_PARAM(i, LOAD_P, LOAD_F), g_i = grad_sign * LOAD_P(g, i), m_i = LOAD_F(m, i); \
        UNSCALE(g_i);                                                           \
        const TYPE c_i = LERP(m_i, g_i, one_minus_beta1);                       \
        p_i = p_i * decay + neg_lr * sign(c_i);                                 \
        m_i = LERP(m_i, g_i, one_minus_beta2);                                  \
        STORE_PARAM(p_i, i, STORE_P, STORE_F);                                  \
        STORE_F(m_i, m, i);                                                     \
    } while (0)

// Nothing here depends on the step count.
#define STEP_DOUBLES
#define STEP_SCALARS (void)0

// One parameter: n elements of p, g and exp_avg (m).
STEP_KERNEL_1(lion_step, LION_HYPERPARAMETERS, LION_AT, m)
