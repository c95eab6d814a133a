// Muon's element-wise halves (vector_io.cl is prepended); the Newton-Schulz
// orthogonalisation between them is netcl's matmul. No defines besides VEC, CHUNK and
// PARAM_HALF. Operation order follows PyTorch's single-tensor Muon:
//   buf.lerp_(g, 1 - momentum); u = g.lerp(buf, momentum) if nesterov else buf
//   p.mul_(1 - lr * weight_decay); p.add_(o, alpha=-adjusted_lr)
// Under a GradScaler (GRAD_SCALING, vector_io.cl) both halves return at once on found_inf
// and the momentum divides the gradient by the scale; nothing depends on the step count.
// (A skipped step's orthogonalisation runs on a u never written, and its result is
// never applied.)
#define STEP_DOUBLES

// muon_momentum: moves the momentum buffer and writes the matrix to orthogonalise (u).
#define MUON_MOMENTUM_AT(i, TYPE, LOAD_P, STORE_P, LOAD_F, STORE_F)             \
    do {                                                                        \
        TYPE g_i = LOAD_P(g, i), buf_i = LOAD_F(buf, i);                        \
        UNSCALE(g_i);                                                           \
        buf_i = LERP(buf_i, g_i, one_minus_momentum);                           \
        STORE_F(buf_i, buf, i);                                                 \
        STORE_F(nesterov ? LERP(g_i, buf_i, momentum) : buf_i, u, i);           \
    } while (0)

__kernel void muon_momentum(const long n,
                            __global const param_t *g_data, const long g_offset,
                            __global float *buf_data, const long buf_offset,
                            __global float *u_data, const long u_offset,
                            GRAD_SCALING_BUFFERS
                            const float momentum, const float one_minus_momentum,
                            const int nesterov GRAD_SCALING_SCALARS)
{
    SKIP_IF_FOUND_INF;
    CHUNK_BOUNDS(n);
    __global const param_t *g = g_data + g_offset;
    __global float *buf = buf_data + buf_offset;
    __global float *u = u_data + u_offset;
    FOR_EACH_ELEMENT(MUON_MOMENTUM_AT);
}

// muon_apply: the decoupled weight decay, then the orthogonalised update o.
#define MUON_APPLY_AT(i, TYPE, LOAD_P, STORE_P, LOAD_F, STORE_F)                \
    do {                                                                        \
        TYPE p_i = LOAD_PARAM(i, LOAD_P, LOAD_F) * decay;                       \
        p_i = p_i + neg_lr * LOAD_F(o, i);                                      \
        STORE_PARAM(p_i, i, STORE_P, STORE_F);                                  \
    } while (0)

__kernel void muon_apply(const long n,
                         PARAM_ARGS,
                         __global const float *o_data, const long o_offset,
                         GRAD_SCALING_BUFFERS
                         const float decay, const float neg_lr GRAD_SCALING_SCALARS)
{
    SKIP_IF_FOUND_INF;
    CHUNK_BOUNDS(n);
    PARAM_POINTERS;
    __global const float *o = o_data + o_offset;
    FOR_EACH_ELEMENT(MUON_APPLY_AT);
}

// ns_combine: out = alpha * x + beta * y, one Newton-Schulz combination (torch's addmm
// beside its product y, float32 and unrounded): B = b G + c (G G) and X = a X + 1 (B X).
// out and x are param_t: bfloat16 when the iterations round to it, the store rounding
// once as torch's bf16 addmm does; else float. The two products stay apart (no fused
// multiply-add), as they were when each was a tensor op of its own.
#define NS_COMBINE_AT(i, TYPE, LOAD_P, STORE_P, LOAD_F, STORE_F)                \
    do {                                                                        \
        const TYPE scaled_x = alpha * LOAD_P(x, i);                             \
        const TYPE scaled_y = beta * LOAD_F(y, i);                              \
        STORE_P(scaled_x + scaled_y, out, i);                                   \
    } while (0)

__kernel void ns_combine(const long n,
                         __global param_t *out_data, const long out_offset,
                         __global const param_t *x_data, const long x_offset,
                         __global const float *y_data, const long y_offset,
                         const float alpha, const float beta)
{
#pragma OPENCL FP_CONTRACT OFF
    CHUNK_BOUNDS(n);
    __global param_t *out = out_data + out_offset;
    __global const param_t *x = x_data + x_offset;
    __global const float *y = y_data + y_offset;
    FOR_EACH_ELEMENT(NS_COMBINE_AT);
}
