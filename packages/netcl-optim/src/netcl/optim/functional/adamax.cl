// Adamax (Kingma and Ba, 2014, section 7.1; vector_io.cl is prepended, with its
// defines). The host gives neg_clr = -lr / (1 - beta1^t), in double as PyTorch
// computes it (in here under GRAD_SCALING). Operation order follows PyTorch's
// single-tensor Adamax: lerp for m, max(u * beta2, |g| + eps), then p + (-clr * m) / u.

#define ADAMAX_HYPERPARAMETERS                                                  \
    const float grad_sign,      /* -1 to maximize */                            \
    const float weight_decay,   /* coupled L2 coefficient */                    \
    const float one_minus_beta1, const float beta2, const float eps,            \
    const float host_neg_clr

// fmax, not a NaN-propagating max: torch.maximum would carry a NaN of u * beta2 on,
// fmax takes |g| + eps; only a state that is already NaN differs.
#define ADAMAX_AT(i, TYPE, LOAD_P, STORE_P, LOAD_F, STORE_F)                    \
    do {                                                                        \
        TYPE p_i = LOAD_PARAM(i, LOAD_P, LOAD_F), g_i = grad_sign * LOAD_P(g, i); \
        UNSCALE(g_i);                                                           \
        TYPE m_i = LOAD_F(m, i), u_i = LOAD_F(u, i);                            \
        if (weight_decay != 0.0f) g_i = g_i + weight_decay * p_i;               \
        m_i = LERP(m_i, g_i, one_minus_beta1);                                  \
        u_i = fmax(u_i * beta2, fabs(g_i) + eps);                               \
        p_i = p_i + (neg_clr * m_i) / u_i;                                      \
        STORE_PARAM(p_i, i, STORE_P, STORE_F);                                  \
        STORE_F(m_i, m, i);                                                     \
        STORE_F(u_i, u, i);                                                     \
    } while (0)

#if GRAD_SCALING
#define STEP_DOUBLES , const double host_step, const double lr_d, const double beta1_d
#define STEP_SCALARS \
    const float neg_clr = (float)(-(lr_d / (1.0 - pow(beta1_d, TAKEN_STEP(host_step)))))
#else
#define STEP_SCALARS const float neg_clr = host_neg_clr
#endif

// One parameter: n elements of p, g, exp_avg (m) and exp_inf (u).
STEP_KERNEL_2(adamax_step, ADAMAX_HYPERPARAMETERS, ADAMAX_AT, m, u)
