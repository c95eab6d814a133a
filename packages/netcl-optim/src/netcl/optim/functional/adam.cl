// Adam and AdamW (vector_io.cl is prepended). Defines from Python, besides VEC,
// CHUNK and PARAM_HALF:
//   DECOUPLED   1 for AdamW: p *= 1 - lr * wd before the update, instead of the
//               coupled L2 term g += wd * p
//   AMSGRAD     1 to keep and use the running maximum of v
//   GRAD_SCALING 1 under a GradScaler (vector_io.cl): the bias corrections are then
//               computed here, in double as the host does, at the step actually taken.
// Every hyperparameter is a kernel argument (ADAM_HYPERPARAMETERS), so a new lr or
// a new step count never builds a kernel. The bias corrections come from the host,
// computed in double as PyTorch's single-tensor path does:
//   neg_step_size = -lr / (1 - beta1^t),  bias_correction2_sqrt = sqrt(1 - beta2^t)

#define ADAM_HYPERPARAMETERS                                                    \
    const float grad_sign,      /* -1 to maximize */                            \
    const float weight_decay,   /* coupled L2 coefficient (Adam) */             \
    const float decay,          /* 1 - lr * weight_decay (AdamW) */             \
    const float one_minus_beta1, const float beta2, const float one_minus_beta2, \
    const float host_neg_step_size, const float host_bias_correction2_sqrt, const float eps

#if GRAD_SCALING
#define STEP_DOUBLES , const double host_step, const double lr_d, const double beta1_d, \
    const double beta2_d
#define STEP_SCALARS                                                             \
    const double t = TAKEN_STEP(host_step);                                     \
    const float neg_step_size = (float)(-(lr_d / (1.0 - pow(beta1_d, t))));     \
    const float bias_correction2_sqrt = (float)sqrt(1.0 - pow(beta2_d, t))
#else
#define STEP_SCALARS                                                             \
    const float neg_step_size = host_neg_step_size;                             \
    const float bias_correction2_sqrt = host_bias_correction2_sqrt
#endif

#if DECOUPLED
#define ADAM_WEIGHT_DECAY(p, g) (p) = (p) * decay
#else
// PyTorch skips the term when weight_decay is 0; so do we (0 * inf would be nan).
#define ADAM_WEIGHT_DECAY(p, g) if (weight_decay != 0.0f) (g) = (g) + weight_decay * (p)
#endif

#if AMSGRAD
#define ADAM_SECOND_MOMENT(v, vmax) ((vmax) = fmax((vmax), (v)))
#else
#define ADAM_SECOND_MOMENT(v, vmax) (v)
#endif

// The update of one element (or one vector of VEC elements: every operation here
// works on float and floatN alike). m and v are fp32 state; p and g are already
// converted to float. Operation order follows PyTorch's CPU kernels:
// lerp for m, v * beta2 + (1 - beta2) * g * g, then p + (-step_size * m) / denom.
#define ADAM_UPDATE(p, g, m, v, vmax)                                                     \
    do {                                                                                  \
        (g) = grad_sign * (g);                                                            \
        ADAM_WEIGHT_DECAY(p, g);                                                          \
        (m) = LERP((m), (g), one_minus_beta1);                                            \
        (v) = (v) * beta2 + one_minus_beta2 * (g) * (g);                                  \
        (p) = (p) + (neg_step_size * (m)) /                                               \
                    (sqrt(ADAM_SECOND_MOMENT(v, vmax)) / bias_correction2_sqrt + eps);    \
    } while (0)

// Load element(s) i of every operand, update, store back. TYPE is float or floatv;
// vmax is read and written only with AMSGRAD.
#if AMSGRAD
#define ADAM_LOAD_VMAX(TYPE, LOAD_F, i) TYPE vmax_i = LOAD_F(vmax, i)
#define ADAM_STORE_VMAX(STORE_F, i) STORE_F(vmax_i, vmax, i)
#else
#define ADAM_LOAD_VMAX(TYPE, LOAD_F, i) TYPE vmax_i = 0.0f
#define ADAM_STORE_VMAX(STORE_F, i) (void)vmax_i, (void)vmax
#endif
#define ADAM_AT(i, TYPE, LOAD_P, STORE_P, LOAD_F, STORE_F)                                \
    do {                                                                                  \
        TYPE p_i = LOAD_PARAM(i, LOAD_P, LOAD_F), g_i = LOAD_P(g, i), m_i = LOAD_F(m, i), v_i = LOAD_F(v, i); \
        ADAM_LOAD_VMAX(TYPE, LOAD_F, i);                                                  \
        UNSCALE(g_i);                                                                     \
        ADAM_UPDATE(p_i, g_i, m_i, v_i, vmax_i);                                          \
        STORE_PARAM(p_i, i, STORE_P, STORE_F);                                            \
        STORE_F(m_i, m, i);                                                               \
        STORE_F(v_i, v, i);                                                               \
        ADAM_STORE_VMAX(STORE_F, i);                                                      \
    } while (0)

// One parameter: n elements of p, g, m, v (and vmax), each at its own offset.
// Without AMSGRAD, vmax may be any buffer; it is not touched.
__kernel void adam_step(const long n,
                        PARAM_ARGS,
                        __global const param_t *g_data, const long g_offset,
                        __global float *m_data, const long m_offset,
                        __global float *v_data, const long v_offset,
                        __global float *vmax_data, const long vmax_offset,
                        GRAD_SCALING_BUFFERS
                        ADAM_HYPERPARAMETERS GRAD_SCALING_SCALARS)
{
    SKIP_IF_FOUND_INF;
    STEP_SCALARS;
    CHUNK_BOUNDS(n);
    PARAM_POINTERS;
    __global const param_t *g = g_data + g_offset;
    __global float *m = m_data + m_offset;
    __global float *v = v_data + v_offset;
    __global float *vmax = vmax_data + vmax_offset;
    long i = begin;
#if VEC > 1
    for (; i + VEC <= end; i += VEC) {
        ADAM_AT(i, floatv, LOADV_P, STOREV_P, LOADV_F, STOREV_F);
    }
#endif
    for (; i < end; ++i) {
        ADAM_AT(i, float, LOAD1_P, STORE1_P, LOAD1_F, STORE1_F);
    }
}
