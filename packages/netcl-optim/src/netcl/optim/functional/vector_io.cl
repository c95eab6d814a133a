// Loads and stores shared by the optimizer kernels (prepended to adam.cl, sgd.cl,
// rmsprop.cl and clip_grad.cl, all beside it, by kernels.py).
//
// Defines from Python:
//   VEC         elements per vector load: 4 on a GPU (one float4 per work-item,
//               coalesced across the warp), 8 on a CPU (float8 maps onto AVX lanes)
//   CHUNK       contiguous elements each work-item walks (a multiple of VEC); on
//               PoCL fewer, longer-running work-items beat one element each
//   ALIGNED     1 when every operand's element offset is a multiple of VEC (see below)
//   PARAM_HALF  1 when parameters and gradients are stored as half. They are read
//               and written only through vload_half/vstore_half, which OpenCL has
//               without cl_khr_fp16; all arithmetic is float.
//   PARAM_BF16  1 when they are bfloat16 (netcl-tensor's bfloat16.cl, prepended,
//               reads them exactly and rounds stores to nearest even).
//   MASTER_WEIGHTS 1 when a 16-bit parameter has a float32 master copy (the kernel
//               takes it right after the parameter): the step reads and writes the
//               master, and stores the master rounded into the parameter, in the same
//               launch. An update under half a unit of the parameter's dtype then
//               accumulates in the master instead of being rounded away every step.
//
// Every pointer a kernel receives comes with an element offset, so an operand may
// be a view into a bigger buffer; the macros below index from that view's start.

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

#if PARAM_HALF
typedef half param_t;
#elif PARAM_BF16
typedef ushort param_t;
#else
typedef float param_t;
#endif

// Every step kernel names its parameter through these: PARAM_ARGS in its signature,
// PARAM_POINTERS in its body, LOAD_PARAM/STORE_PARAM for element(s) i.
#if MASTER_WEIGHTS
#define PARAM_ARGS __global param_t *p_data, const long p_offset, \
    __global float *master_data, const long master_offset
#define PARAM_POINTERS __global param_t *p = p_data + p_offset; \
    __global float *master = master_data + master_offset
#define LOAD_PARAM(i, LOAD_P, LOAD_F) LOAD_F(master, i)
// ``value`` is a variable: it is read twice.
#define STORE_PARAM(value, i, STORE_P, STORE_F) \
    (STORE_F((value), master, i), STORE_P((value), p, i))
#else
#define PARAM_ARGS __global param_t *p_data, const long p_offset
#define PARAM_POINTERS __global param_t *p = p_data + p_offset
#define LOAD_PARAM(i, LOAD_P, LOAD_F) LOAD_P(p, i)
#define STORE_PARAM(value, i, STORE_P, STORE_F) STORE_P((value), p, i)
#endif

// One element, for the tail of a chunk (and the whole chunk when VEC is 1).
#define LOAD1_F(ptr, i) ((ptr)[i])
#define STORE1_F(value, ptr, i) ((ptr)[i] = (value))
#if PARAM_HALF
#define LOAD1_P(ptr, i) vload_half((i), (ptr))
#define STORE1_P(value, ptr, i) vstore_half((value), (i), (ptr))
#elif PARAM_BF16
#define LOAD1_P(ptr, i) bf16_load((i), (ptr))
#define STORE1_P(value, ptr, i) bf16_store((value), (i), (ptr))
#else
#define LOAD1_P(ptr, i) ((ptr)[i])
#define STORE1_P(value, ptr, i) ((ptr)[i] = (value))
#endif

// VEC elements starting at element i. vloadN/vstoreN need only element alignment,
// which is all a view at an arbitrary offset guarantees. With ALIGNED (the host
// checked that every operand's offset is a multiple of VEC, so each vector starts on
// a VEC * 4-byte boundary of a base-aligned buffer) float operands are read and
// written as whole floatN instead: PoCL 3 compiles each vloadN/vstoreN into a call
// that spills every live vector to the stack (Adam on 20M floats: 17 ms with vload8,
// 12.5 ms with float8 accesses, 2 cores), and NVIDIA turns a float4 access into one
// 128-bit load. The values, and so the results, are the same either way.
#if VEC > 1
typedef CAT(float, VEC) floatv;
#if ALIGNED
#define LOADV_F(ptr, i) (*(__global const floatv *)((ptr) + (i)))
#define STOREV_F(value, ptr, i) (*(__global floatv *)((ptr) + (i)) = (value))
#else
#define LOADV_F(ptr, i) CAT(vload, VEC)(0, (ptr) + (i))
#define STOREV_F(value, ptr, i) CAT(vstore, VEC)((value), 0, (ptr) + (i))
#endif
#if PARAM_HALF
#define LOADV_P(ptr, i) CAT(vload_half, VEC)(0, (ptr) + (i))
#define STOREV_P(value, ptr, i) CAT(vstore_half, VEC)((value), 0, (ptr) + (i))
#elif PARAM_BF16
#define LOADV_P(ptr, i) CAT(bf16_vload, VEC)((i), (ptr))
#define STOREV_P(value, ptr, i) CAT(bf16_vstore, VEC)((value), (i), (ptr))
#else
#define LOADV_P(ptr, i) LOADV_F(ptr, i)
#define STOREV_P(value, ptr, i) STOREV_F(value, ptr, i)
#endif
#endif

// The PyTorch CPU lerp: accurate at both ends (w = 1 gives b exactly), which the
// one-line a + w * (b - a) is not. w is uniform, so the branch costs nothing.
#define LERP(a, b, w) ((w) < 0.5f ? (a) + (w) * ((b) - (a)) : (b) - ((b) - (a)) * (1.0f - (w)))

// The range [begin, end) of elements work-item get_global_id(0) owns.
#define CHUNK_BOUNDS(n)                                   \
    const long begin = (long)get_global_id(0) * CHUNK;   \
    if (begin >= (n)) return;                             \
    const long end = min(begin + (long)CHUNK, (n))

// The body of an element-wise step kernel over [begin, end): AT(i, TYPE, LOAD_P,
// STORE_P, LOAD_F, STORE_F) updates element(s) i, VEC at a time, then the tail one by one.
#if VEC > 1
#define FOR_EACH_ELEMENT(AT)                                                  \
    long i = begin;                                                           \
    for (; i + VEC <= end; i += VEC) AT(i, floatv, LOADV_P, STOREV_P, LOADV_F, STOREV_F); \
    for (; i < end; ++i) AT(i, float, LOAD1_P, STORE1_P, LOAD1_F, STORE1_F)
#else
#define FOR_EACH_ELEMENT(AT)                                                  \
    for (long i = begin; i < end; ++i) AT(i, float, LOAD1_P, STORE1_P, LOAD1_F, STORE1_F)
#endif

// Under a GradScaler (GRAD_SCALING 1; PyTorch's fused grad_scale / found_inf protocol)
// a step kernel takes the scale, the found-inf flag and the optimizer's count of skipped
// steps as buffers (GRAD_SCALING_BUFFERS, before its hyperparameters), and after them
// the doubles its step-dependent scalars are computed from (STEP_DOUBLES, which each
// kernel file defines, possibly empty). It returns at once if found_inf is set (every
// work-item sees the same flag), divides each gradient by the scale (UNSCALE), and
// computes its bias corrections itself at TAKEN_STEP, the host's count less the skipped
// steps: a step skipped on the device is not counted, and nothing waits for the host.
// Each kernel file also defines STEP_SCALARS: the per-step floats, from the host's
// arguments without GRAD_SCALING, from TAKEN_STEP with it.
#if GRAD_SCALING
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#define GRAD_SCALING_BUFFERS                                                     \
    __global const float *grad_scale, __global const float *found_inf,          \
    __global const float *skipped_steps,
#define GRAD_SCALING_SCALARS STEP_DOUBLES
#define SKIP_IF_FOUND_INF                                                        \
    if (found_inf[0] != 0.0f) return;                                           \
    const float grads_scale = grad_scale[0]
#define UNSCALE(g) ((g) = (g) / grads_scale)
#define TAKEN_STEP(host_step) fmax((host_step) - (double)skipped_steps[0], 1.0)
#else
#define GRAD_SCALING_BUFFERS
#define GRAD_SCALING_SCALARS
#define SKIP_IF_FOUND_INF (void)0
#define UNSCALE(g) (void)0
#endif

// The whole kernel of an element-wise algorithm with one or two float32 state buffers
// (A and B, each with an element offset): NAME(n, the parameter, its gradient g, A[, B],
// the scaler's buffers, HYPERPARAMETERS, the scaler's doubles) runs AT over its chunk.
#define STATE_ARG(s) __global float *s##_data, const long s##_offset
#define STATE_POINTER(s) __global float *s = s##_data + s##_offset
#define STEP_KERNEL_ENTRY                                                        \
    SKIP_IF_FOUND_INF;                                                          \
    STEP_SCALARS;                                                               \
    CHUNK_BOUNDS(n);                                                            \
    PARAM_POINTERS;                                                             \
    __global const param_t *g = g_data + g_offset
#define STEP_KERNEL_1(NAME, HYPERPARAMETERS, AT, A)                              \
    __kernel void NAME(const long n, PARAM_ARGS,                                \
                       __global const param_t *g_data, const long g_offset,     \
                       STATE_ARG(A), GRAD_SCALING_BUFFERS HYPERPARAMETERS GRAD_SCALING_SCALARS) \
    {                                                                           \
        STEP_KERNEL_ENTRY;                                                      \
        STATE_POINTER(A);                                                       \
        FOR_EACH_ELEMENT(AT);                                                   \
    }
#define STEP_KERNEL_2(NAME, HYPERPARAMETERS, AT, A, B)                           \
    __kernel void NAME(const long n, PARAM_ARGS,                                \
                       __global const param_t *g_data, const long g_offset,     \
                       STATE_ARG(A), STATE_ARG(B),                              \
                       GRAD_SCALING_BUFFERS HYPERPARAMETERS GRAD_SCALING_SCALARS) \
    {                                                                           \
        STEP_KERNEL_ENTRY;                                                      \
        STATE_POINTER(A);                                                       \
        STATE_POINTER(B);                                                       \
        FOR_EACH_ELEMENT(AT);                                                   \
    }
