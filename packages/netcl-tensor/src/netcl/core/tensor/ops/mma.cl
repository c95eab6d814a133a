// Tensor-core building blocks in inline PTX for OpenCL C on NVIDIA (compute
// capability 8.0 and up; PTX ISA: "Warp-level matrix multiply-accumulate
// instructions", "ldmatrix", "cp.async"). Built ahead of the kernels that use
// them (matmul_mma.cl; attention may too), which define MMA_TYPE first:
// 0 TF32 (m16n8k8), 1 float16, 2 bfloat16 (m16n8k16).

// Copies 16 bytes, of which the first `bytes` come from `src` and the rest
// are zero (cp.async's src-size): an edge vector reads only what exists.
inline void copy_async(__local void *dst, __global const void *src, const int bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
                 :: "r"((uint)(ulong)dst), "l"((ulong)src), "r"(bytes) : "memory");
}
#if MMA_TYPE == 0
// Round to TF32 (nearest, ties away: what the tensor core then reads exactly).
inline uint to_tf32(const uint x)
{
    uint r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(as_float(x)));
    return r;
}
#endif

// A local pointer as the 32-bit shared-window address PTX takes.
#define SHARED(p) ((uint)(ulong)(p))

#define LDSM_X4(r, p)                                                           \
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];" \
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(SHARED(p)))
#define LDSM_X4_T(r, p)                                                         \
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];" \
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(SHARED(p)))

#if MMA_TYPE == 0
#define MMA_SHAPE "m16n8k8.row.col.f32.tf32.tf32.f32"
#elif MMA_TYPE == 1
#define MMA_SHAPE "m16n8k16.row.col.f32.f16.f16.f32"
#else
#define MMA_SHAPE "m16n8k16.row.col.f32.bf16.bf16.f32"
#endif
// c += a b for one 16 x 8 block: a four registers, b two, c four floats.
#define MMA(c, a, b)                                                            \
    asm("mma.sync.aligned." MMA_SHAPE                                           \
        " {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"  \
        : "=f"(c[0]), "=f"(c[1]), "=f"(c[2]), "=f"(c[3])                        \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),     \
          "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]))

