// Adagrad (Duchi et al., 2011; vector_io.cl is prepended, with its defines). The host
// gives neg_clr = -lr / (1 + (t - 1) * lr_decay), in double as PyTorch computes it (in
// here under GRAD_SCALING). Operation order follows PyTorch's single-tensor
// Adagrad: sum + g * g, then p + (-clr * g) / (sqrt(sum) + eps).

#define ADAGRAD_HYPERPARAMETERS                                                 \
    const float grad_sign,      /* -1 to maximize */                            \
    const float weight_decay,   /* coupled L2 coefficient */                    \
    const float eps, const float host_neg_clr

#define ADAGRAD_AT(i, TYPE, LOAD_P, STORE_P, LOAD_F, STORE_F)                   \
    do {                                                                        \
        TYPE p_i = LOAD_PARAM(i, LOAD_P, LOAD_F), g_i = grad_sign * LOAD_P(g, i); \
        UNSCALE(g_i);                                                           \
        TYPE s_i = LOAD_F(s, i);                                                \
        if (weight_decay != 0.0f) g_i = g_i + weight_decay * p_i;               \
        s_i = s_i + g_i * g_i;                                                  \
        p_i = p_i + (neg_clr * g_i) / (sqrt(s_i) + eps);                        \
        STORE_PARAM(p_i, i, STORE_P, STORE_F);                                  \
        STORE_F(s_i, s, i);                                                     \
    } while (0)

#if GRAD_SCALING
#define STEP_DOUBLES , const double host_step, const double lr_d, const double lr_decay_d
#define STEP_SCALARS \
    const float neg_clr = (float)(-(lr_d / (1.0 + (TAKEN_STEP(host_step) - 1.0) * lr_decay_d)))
#else
#define STEP_SCALARS const float neg_clr = host_neg_clr
#endif

// One parameter: n elements of p, g and sum (s).
STEP_KERNEL_1(adagrad_step, ADAGRAD_HYPERPARAMETERS, ADAGRAD_AT, s)
