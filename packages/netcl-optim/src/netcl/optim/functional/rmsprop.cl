// RMSProp (vector_io.cl is prepended). Defines from Python, besides VEC, CHUNK and
// PARAM_HALF:
//   CENTERED    1 to keep the mean gradient and divide by the centred variance
//   MOMENTUM    1 when the parameter has a momentum buffer (momentum > 0)
// Every hyperparameter is a kernel argument (RMSPROP_HYPERPARAMETERS).

#define RMSPROP_HYPERPARAMETERS                                                 \
    const float grad_sign,     /* -1 to maximize */                             \
    const float weight_decay,  /* coupled L2 coefficient */                     \
    const float neg_lr,                                                         \
    const float alpha, const float one_minus_alpha, const float eps,            \
    const float momentum

#if CENTERED
// PyTorch: grad_avg.lerp_(g, 1 - alpha); avg = sqrt(square_avg - grad_avg^2) + eps
#define RMSPROP_AVG(sq, g, gavg)                                                \
    ((gavg) = LERP((gavg), (g), one_minus_alpha), sqrt((sq) - (gavg) * (gavg)) + eps)
#else
#define RMSPROP_AVG(sq, g, gavg) (sqrt(sq) + eps)
#endif

#if MOMENTUM
#define RMSPROP_STEP(p, g, buf, avg)                                            \
    (buf) = (buf) * momentum + (g) / (avg);                                     \
    (p) = (p) + neg_lr * (buf)
#else
#define RMSPROP_STEP(p, g, buf, avg) (p) = (p) + (neg_lr * (g)) / (avg)
#endif

// The update of one element (or one vector of VEC elements), in float; the
// operation order follows PyTorch's single-tensor RMSprop.
#define RMSPROP_UPDATE(TYPE, p, g, sq, gavg, buf)                               \
    do {                                                                        \
        (g) = grad_sign * (g);                                                  \
        if (weight_decay != 0.0f) (g) = (g) + weight_decay * (p);               \
        (sq) = (sq) * alpha + one_minus_alpha * (g) * (g);                      \
        const TYPE avg = RMSPROP_AVG(sq, g, gavg);                              \
        RMSPROP_STEP(p, g, buf, avg);                                           \
    } while (0)

#if CENTERED
#define RMSPROP_LOAD_GAVG(TYPE, LOAD_F, i) TYPE gavg_i = LOAD_F(gavg, i)
#define RMSPROP_STORE_GAVG(STORE_F, i) STORE_F(gavg_i, gavg, i)
#else
#define RMSPROP_LOAD_GAVG(TYPE, LOAD_F, i) TYPE gavg_i = 0.0f
#define RMSPROP_STORE_GAVG(STORE_F, i) (void)gavg_i, (void)gavg
#endif
#if MOMENTUM
#define RMSPROP_LOAD_BUF(TYPE, LOAD_F, i) TYPE buf_i = LOAD_F(buf, i)
#define RMSPROP_STORE_BUF(STORE_F, i) STORE_F(buf_i, buf, i)
#else
#define RMSPROP_LOAD_BUF(TYPE, LOAD_F, i) TYPE buf_i = 0.0f
#define RMSPROP_STORE_BUF(STORE_F, i) (void)buf_i, (void)buf
#endif
#define RMSPROP_AT(i, TYPE, LOAD_P, STORE_P, LOAD_F, STORE_F)                   \
    do {                                                                        \
        TYPE p_i = LOAD_PARAM(i, LOAD_P, LOAD_F), g_i = LOAD_P(g, i), sq_i = LOAD_F(sq, i); \
        RMSPROP_LOAD_GAVG(TYPE, LOAD_F, i);                                     \
        RMSPROP_LOAD_BUF(TYPE, LOAD_F, i);                                      \
        RMSPROP_UPDATE(TYPE, p_i, g_i, sq_i, gavg_i, buf_i);                    \
        STORE_PARAM(p_i, i, STORE_P, STORE_F);                                  \
        STORE_F(sq_i, sq, i);                                                   \
        RMSPROP_STORE_GAVG(STORE_F, i);                                         \
        RMSPROP_STORE_BUF(STORE_F, i);                                          \
    } while (0)

// One parameter: n elements of p, g, square_avg (and grad_avg, momentum_buffer),
// each at its own offset. Buffers a variant does not use may be any buffer.
__kernel void rmsprop_step(const long n,
                           PARAM_ARGS,
                           __global const param_t *g_data, const long g_offset,
                           __global float *sq_data, const long sq_offset,
                           __global float *gavg_data, const long gavg_offset,
                           __global float *buf_data, const long buf_offset,
                           RMSPROP_HYPERPARAMETERS)
{
    CHUNK_BOUNDS(n);
    PARAM_POINTERS;
    __global const param_t *g = g_data + g_offset;
    __global float *sq = sq_data + sq_offset;
    __global float *gavg = gavg_data + gavg_offset;
    __global float *buf = buf_data + buf_offset;
    long i = begin;
#if VEC > 1
    for (; i + VEC <= end; i += VEC) {
        RMSPROP_AT(i, floatv, LOADV_P, STOREV_P, LOADV_F, STOREV_F);
    }
#endif
    for (; i < end; ++i) {
        RMSPROP_AT(i, float, LOAD1_P, STORE1_P, LOAD1_F, STORE1_F);
    }
}
