// Tensor-core building blocks in inline PTX for OpenCL C on NVIDIA (compute
// capability 8.0 and up; PTX ISA: "Warp-level matrix multiply-accumulate
// instructions", "ldmatrix", "cp.async"). Built ahead of the kernels that use
// them (matmul_mma.cl, attention_mma.cl), which define MMA_TYPE first:
// 0 TF32 (m16n8k8), 1 float16, 2 bfloat16 (m16n8k16).
//
// MMA_EMULATED 1 builds the same helpers in plain OpenCL C for a device
// without tensor cores (PoCL in CI), so the kernels' tiling, fragment and
// edge logic runs and is tested there. It is slow and only for that.
// The emulation's contract with its callers:
// - LDSM_X4(r, p) and LDSM_X4_T(r, p) re-evaluate the address `p` with `lane`
//   standing for each lane whose row they read, so `p` names the work-item's
//   lane as `lane` (ldmatrix takes a row address from every lane; a work-item
//   here can only compute them, not ask).
// - MMA(c, a, b) trades the warp's fragments through local memory, so every
//   work-item of the work-group calls it equally often (it holds barriers),
//   the kernel declares MMA_SCRATCH(THREADS) and the functions that call MMA
//   take MMA_SCRATCH_PARAM and pass MMA_SCRATCH_ARG. On hardware all three
//   are empty.
// - SHFL_XOR(x, m), lane l's float x from lane l ^ m (m < 32), trades through
//   the same scratch, so it has MMA's rule: every work-item calls it equally
//   often, through MMA_SCRATCH_PARAM/ARG.
// - cp.async is deferred to the wait that covers it (its destination NaN till
//   then), so a kernel that copies declares CP_ASYNC_QUEUE(entries) (empty on
//   hardware), and PENDING-style wait counts are one-digit string literals.

#if MMA_EMULATED
// Where hardware would fault, the emulation gives NaNs, so a test against a
// reference fails instead of passing: ldmatrix's row addresses, cp.async's
// addresses and the kernels' 16-byte global vector reads must be 16-byte
// aligned. MMA_NAN_WORD is a NaN as one float, two float16s or two bfloat16s.
#define MMA_NAN_WORD 0x7FC07FC0u
#define MMA_MISALIGNED(p) (((ulong)(p)) % 16 != 0)
// A 16-byte global read, as the kernels' vector reads of their operands.
#define VLOAD16(p) (MMA_MISALIGNED(p) ? (uint4)(MMA_NAN_WORD) : *(__global const uint4 *)(p))

// The 16 bytes at d as NaNs: a faulting copy's, or an issued one's till it lands.
inline void mma_fill_nan(__local uchar *d)
{
    for (int i = 0; i < 16; ++i) d[i] = (uchar)(MMA_NAN_WORD >> 8 * (i % 4));
}

inline void mma_copy_now(__local void *dst, __global const void *src, const int bytes)
{
    __local uchar *d = (__local uchar *)dst;
    if (MMA_MISALIGNED(dst) || MMA_MISALIGNED(src)) {
        mma_fill_nan(d);
        return;
    }
    if (bytes == 16) {
        *(__local uint4 *)dst = *(__global const uint4 *)src;
        return;
    }
    __global const uchar *s = (__global const uchar *)src;
    for (int i = 0; i < 16; ++i) d[i] = i < bytes ? s[i] : 0;
}

// cp.async is deferred, as the hardware may defer it: an issued copy fills its
// destination with NaNs and lands only at a wait that covers its group (or,
// queue full, when the oldest has to make room: a copy may land early). A
// stage read before its wait, or a wait count one short, reads NaNs.
#define CP_ASYNC_QUEUE(entries)                                                 \
    __local uchar *mma_cp_dst[entries];                                         \
    __global const uchar *mma_cp_src[entries];                                  \
    int mma_cp_bytes[entries], mma_cp_group[entries];                           \
    int mma_cp_head = 0, mma_cp_tail = 0, mma_cp_committed = 0;                 \
    const int mma_cp_entries = (entries);
#define MMA_CP_LAND_OLDEST()                                                    \
    do {                                                                        \
        const int mma_at_ = mma_cp_head++ % mma_cp_entries;                     \
        mma_copy_now(mma_cp_dst[mma_at_], mma_cp_src[mma_at_], mma_cp_bytes[mma_at_]); \
    } while (0)
#define copy_async(dst, src, bytes)                                             \
    do {                                                                        \
        if (mma_cp_tail - mma_cp_head == mma_cp_entries) MMA_CP_LAND_OLDEST();  \
        const int mma_at_ = mma_cp_tail++ % mma_cp_entries;                     \
        mma_cp_dst[mma_at_] = (__local uchar *)(dst);                           \
        mma_cp_src[mma_at_] = (__global const uchar *)(src);                    \
        mma_cp_bytes[mma_at_] = (bytes);                                        \
        mma_cp_group[mma_at_] = mma_cp_committed;                               \
        mma_fill_nan(mma_cp_dst[mma_at_]);                                      \
    } while (0)
#define CP_ASYNC_COMMIT() (++mma_cp_committed)
// wait_group N: every committed group but the newest N has landed.
#define CP_ASYNC_WAIT(pending)                                                  \
    while (mma_cp_head < mma_cp_tail && mma_cp_group[mma_cp_head % mma_cp_entries] \
           < mma_cp_committed - ((pending)[0] - '0'))                           \
        MMA_CP_LAND_OLDEST()
#define CP_ASYNC_WAIT_ALL()                                                     \
    while (mma_cp_head < mma_cp_tail) MMA_CP_LAND_OLDEST()

#if MMA_TYPE == 0
// cvt.rna: to nearest with ten mantissa bits, ties away from zero (the sign
// bit is untouched, so adding half an ulp of the kept bits rounds the
// magnitude); infinities and NaNs pass as they are.
inline uint to_tf32(const uint x)
{
    if ((x & 0x7F800000u) == 0x7F800000u) return x;
    return (x + 0x1000u) & 0xFFFFE000u;
}
#endif

// Lane l holds word l % 4 of row l / 4 of each 8 x 8 matrix m: the row whose
// address lane 8 m + l / 4 gives.
#define LDSM_X4(r, p)                                                           \
    do {                                                                        \
        const int mma_self_ = lane;                                             \
        for (int mma_m_ = 0; mma_m_ < 4; ++mma_m_) {                            \
            const int lane = mma_m_ * 8 + mma_self_ / 4;                        \
            (r)[mma_m_] = MMA_MISALIGNED(p) ? MMA_NAN_WORD                      \
                          : ((__local const uint *)(p))[mma_self_ % 4];         \
        }                                                                       \
    } while (0)
// .trans: lane l holds elements l / 4 of rows 2 (l % 4) and 2 (l % 4) + 1.
#define LDSM_X4_T(r, p)                                                         \
    do {                                                                        \
        const int mma_self_ = lane;                                             \
        for (int mma_m_ = 0; mma_m_ < 4; ++mma_m_) {                            \
            uint mma_half_[2];                                                  \
            for (int mma_h_ = 0; mma_h_ < 2; ++mma_h_) {                        \
                const int lane = mma_m_ * 8 + 2 * (mma_self_ % 4) + mma_h_;     \
                mma_half_[mma_h_] = MMA_MISALIGNED(p) ? MMA_NAN_WORD & 0xFFFFu  \
                    : ((__local const ushort *)(p))[mma_self_ / 4];             \
            }                                                                   \
            (r)[mma_m_] = mma_half_[0] | mma_half_[1] << 16;                    \
        }                                                                       \
    } while (0)

#if MMA_TYPE == 0
#define MMA_K_EMULATED 8
inline float mma_element(const uint word, const int part) { return as_float(word); }
#elif MMA_TYPE == 1
#define MMA_K_EMULATED 16
inline float mma_element(const uint word, const int part)
{
    const ushort bits = (ushort)(word >> (16 * part));
    return vload_half(0, (const __private half *)&bits);
}
#else
#define MMA_K_EMULATED 16
inline float mma_element(const uint word, const int part)
{
    return as_float(part ? word & 0xFFFF0000u : word << 16);
}
#endif

#define MMA_SCRATCH(threads) __local uint mma_scratch[(threads) * 6];
#define MMA_SCRATCH_PARAM , __local uint *mma_scratch
#define MMA_SCRATCH_ARG , mma_scratch

// c += a b for the warp's 16 x 8 block, each lane's part where the PTX ISA's
// mma.m16n8k16 / m16n8k8 layouts put it (g = lane / 4, t = lane % 4): a
// register r of A holds row g + 8 (r % 2) at K offset (r / 2) * K / 2 (two
// 16-bit elements, 2 t and 2 t + 1, or one TF32, t), b register r the column
// g at the same K offsets, and c[r] row g + 8 (r / 2), column 2 t + r % 2.
// Products are summed in float32 in K order.
inline void mma_emulated(float c[4], const uint a[4], const uint b[2],
                         __local uint *scratch)
{
    const int tid = get_local_id(0) + get_local_size(0) *
                    (get_local_id(1) + get_local_size(1) * get_local_id(2));
    const int lane = tid % 32;
    __local uint *warp = scratch + (tid - lane) * 6;
    for (int r = 0; r < 4; ++r) warp[lane * 6 + r] = a[r];
    warp[lane * 6 + 4] = b[0];
    warp[lane * 6 + 5] = b[1];
    barrier(CLK_LOCAL_MEM_FENCE);
    const int g = lane / 4, t = lane % 4;
    const int per_lane = MMA_K_EMULATED / 8;  // K elements a register holds
    const int half_k = MMA_K_EMULATED / 2;
    // Loops kept rolled: unrolled, this body repeats at every MMA of a kernel
    // and PoCL's compile time grows with it.
#pragma unroll 1
    for (int r = 0; r < 4; ++r) {
        const int row = g + 8 * (r / 2), col = 2 * t + r % 2;
        float sum = c[r];
#pragma unroll 1
        for (int k = 0; k < MMA_K_EMULATED; ++k) {
            const int owner = k % half_k / per_lane, part = k % per_lane, upper = k / half_k;
            const uint aw = warp[((row % 8) * 4 + owner) * 6 + row / 8 + 2 * upper];
            const uint bw = warp[(col * 4 + owner) * 6 + 4 + upper];
            sum = fma(mma_element(aw, part), mma_element(bw, part), sum);
        }
        c[r] = sum;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}
#define MMA(c, a, b) mma_emulated(c, a, b, mma_scratch)

inline float shfl_xor_emulated(const float x, const int m, __local uint *scratch)
{
    const int tid = get_local_id(0) + get_local_size(0) *
                    (get_local_id(1) + get_local_size(1) * get_local_id(2));
    scratch[tid * 6] = as_uint(x);
    barrier(CLK_LOCAL_MEM_FENCE);
    const float y = as_float(scratch[(tid ^ m) * 6]);  // lane ^ m, in the same warp
    barrier(CLK_LOCAL_MEM_FENCE);
    return y;
}
#define SHFL_XOR(x, m) shfl_xor_emulated(x, m, mma_scratch)

#else
// Copies 16 bytes, of which the first `bytes` come from `src` and the rest
// are zero (cp.async's src-size): an edge vector reads only what exists.
inline void copy_async(__local void *dst, __global const void *src, const int bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
                 :: "r"((uint)(ulong)dst), "l"((ulong)src), "r"(bytes) : "memory");
}
#define CP_ASYNC_COMMIT() asm volatile("cp.async.commit_group;" ::: "memory")
#define CP_ASYNC_WAIT(pending) asm volatile("cp.async.wait_group " pending ";" ::: "memory")
#define CP_ASYNC_WAIT_ALL() asm volatile("cp.async.wait_all;" ::: "memory")
#define CP_ASYNC_QUEUE(entries)
#define MMA_SCRATCH(threads)
#define MMA_SCRATCH_PARAM
#define MMA_SCRATCH_ARG

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

inline float shfl_xor(const float x, const int m)
{
    uint y;
    asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;"
                 : "=r"(y) : "r"(as_uint(x)), "r"(m));
    return as_float(y);
}
#define SHFL_XOR(x, m) shfl_xor(x, m)
#define VLOAD16(p) (*(__global const uint4 *)(p))
#endif  // MMA_EMULATED
