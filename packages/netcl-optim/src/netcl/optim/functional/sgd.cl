// SGD and SGD with momentum (vector_io.cl is prepended). Defines from Python,
// besides VEC, CHUNK and PARAM_HALF:
//   MOMENTUM    1 when the parameter has a momentum buffer
// Every hyperparameter is a kernel argument (SGD_HYPERPARAMETERS), so a new lr or
// momentum never builds a kernel.

#define SGD_HYPERPARAMETERS                                                    \
    const float grad_sign,             /* -1 to maximize */                    \
    const float weight_decay,          /* coupled L2 coefficient */            \
    const float neg_lr,                                                        \
    const float momentum, const float one_minus_dampening,                     \
    const int nesterov,                                                        \
    const int first_step   /* 1: the buffer becomes g, PyTorch's first step */

#if MOMENTUM
// buf = g on the buffer's first step, else buf = momentum * buf + (1 - dampening) * g;
// then the step direction is g + momentum * buf (Nesterov) or buf.
#define SGD_MOMENTUM(g, buf)                                                    \
    (buf) = first_step ? (g) : (buf) * momentum + one_minus_dampening * (g);    \
    (g) = nesterov ? (g) + momentum * (buf) : (buf)
#else
#define SGD_MOMENTUM(g, buf) (void)0
#endif

// The update of one element (or one vector of VEC elements), in float.
#define SGD_UPDATE(p, g, buf)                                                   \
    do {                                                                        \
        (g) = grad_sign * (g);                                                  \
        if (weight_decay != 0.0f) (g) = (g) + weight_decay * (p);               \
        SGD_MOMENTUM(g, buf);                                                   \
        (p) = (p) + neg_lr * (g);                                               \
    } while (0)

#if MOMENTUM
#define SGD_LOAD_BUF(TYPE, LOAD_F, i) TYPE buf_i = LOAD_F(buf, i)
#define SGD_STORE_BUF(STORE_F, i) STORE_F(buf_i, buf, i)
#else
#define SGD_LOAD_BUF(TYPE, LOAD_F, i) TYPE buf_i = 0.0f
#define SGD_STORE_BUF(STORE_F, i) (void)buf_i, (void)buf
#endif
#define SGD_AT(i, TYPE, LOAD_P, STORE_P, LOAD_F, STORE_F)                       \
    do {                                                                        \
        TYPE p_i = LOAD_PARAM(i, LOAD_P, LOAD_F), g_i = LOAD_P(g, i);           \
        SGD_LOAD_BUF(TYPE, LOAD_F, i);                                          \
        SGD_UPDATE(p_i, g_i, buf_i);                                            \
        STORE_PARAM(p_i, i, STORE_P, STORE_F);                                  \
        SGD_STORE_BUF(STORE_F, i);                                              \
    } while (0)

// One parameter: n elements of p, g (and the momentum buffer), each at its own
// offset. Without MOMENTUM, buf may be any buffer; it is not touched.
__kernel void sgd_step(const long n,
                       PARAM_ARGS,
                       __global const param_t *g_data, const long g_offset,
                       __global float *buf_data, const long buf_offset,
                       SGD_HYPERPARAMETERS)
{
    CHUNK_BOUNDS(n);
    PARAM_POINTERS;
    __global const param_t *g = g_data + g_offset;
    __global float *buf = buf_data + buf_offset;
    long i = begin;
#if VEC > 1
    for (; i + VEC <= end; i += VEC) {
        SGD_AT(i, floatv, LOADV_P, STOREV_P, LOADV_F, STOREV_F);
    }
#endif
    for (; i < end; ++i) {
        SGD_AT(i, float, LOAD1_P, STORE1_P, LOAD1_F, STORE1_F);
    }
}
