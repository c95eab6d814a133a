// How attention_mma.cl's kernels stage operand tiles into local memory: at once, or by
// cp.async into a second buffer while a step computes (PIPELINED). Macros, expanded in
// the kernels (which define THREADS, and tid, b, h and vecs where they stage).

// Element (r, c) of a strided 16-bit operand as its bits.
#define RAW(x, b, h, r, c) ((__global const ushort *)(x))[x##_off + (b) * x##_st.s0 \
                           + (h) * x##_st.s1 + (r) * x##_st.s2 + (c) * x##_st.s3]

// Rows r0 .. r0+R-1 of x (NC columns) into xs[r * P + c], zero past `rows` and past NC
// up to NP columns. Where the kernel's `vecs` has x's bit (attention.py: x's rows are
// contiguous, 16-byte aligned and NC a multiple of 8), 8 elements a read.
#define q_BIT 1
#define k_BIT 2
#define v_BIT 4
#define dout_BIT 8
// STAGE16_BY(PUT, ...) puts each vector by PUT(local destination, global source, whether
// it lies in x; else zeros, its source then x's first element): PUT_NOW loads and stores
// it, PUT_ASYNC copies it by cp.async, landing at the wait that covers its group (a
// PIPELINED tile's next step). An operand read element by element is staged at once.
#define PUT_NOW(dst, src, in) (*(__local uint4 *)(dst) = (in) ? VLOAD16(src) : (uint4)(0))
#define PUT_ASYNC(dst, src, in) copy_async(dst, src, (in) ? 16 : 0)
#define STAGE16_BY(PUT, xs, P, x, NC, NP, R, r0, rows)                          \
    if (vecs & x##_BIT) {                                                       \
        for (int e = tid; e < (R) * ((NP) / 8); e += THREADS) {                 \
            const int r = e / ((NP) / 8), c = e % ((NP) / 8) * 8;               \
            const bool in = (r0) + r < (rows) && c < (NC);                      \
            PUT(&(xs)[r * (P) + c], &RAW(x, b, h, in ? (r0) + r : 0, in ? c : 0), in); \
        }                                                                       \
    } else {                                                                    \
        for (int e = tid; e < (R) * (NP); e += THREADS) {                       \
            const int r = e / (NP), c = e % (NP);                               \
            (xs)[r * (P) + c] = (r0) + r < (rows) && c < (NC)                   \
                                ? RAW(x, b, h, (r0) + r, c) : (ushort)0;        \
        }                                                                       \
    }
#define STAGE16(...) STAGE16_BY(PUT_NOW, __VA_ARGS__)

// PIPELINED 1: a walk's tiles in STAGES = 2 buffers, the next step's copied (STAGE16_BY
// PUT_ASYNC) while this step computes; its copies a work-item issues (COPIES of an R x NP
// tile), twice over, are the emulation's queue.
#if PIPELINED
#define STAGES 2
#else
#define STAGES 1
#endif
#define COPIES(R, NP) (((R) * ((NP) / 8) + THREADS - 1) / THREADS)
// The top of step n of a walk whose tiles STAGE_STEP(PUT, buffer, first row) stages:
// pipelined, step n + 1's copies issued (none past `end`), step n's landed and seen by
// all; else step n's staged now, after the last step's reads.
#if PIPELINED
#define STEP_TOP(n, first, step, end)                                           \
    if ((first) + (step) < (end)) {                                             \
        STAGE_STEP(PUT_ASYNC, ((n) + 1) % 2, (first) + (step))                  \
    }                                                                           \
    CP_ASYNC_COMMIT();                                                          \
    CP_ASYNC_WAIT("1");                                                         \
    barrier(CLK_LOCAL_MEM_FENCE);
// Step 0's copies, ahead of the walk.
#define WALK_START(first, end)                                                  \
    if ((first) < (end)) {                                                      \
        STAGE_STEP(PUT_ASYNC, 0, first)                                         \
    }                                                                           \
    CP_ASYNC_COMMIT();
// This step's buffers read, before the next step's top refills them.
#define STEP_END() barrier(CLK_LOCAL_MEM_FENCE);
#else
#define STEP_TOP(n, first, step, end)                                           \
    barrier(CLK_LOCAL_MEM_FENCE);                                               \
    STAGE_STEP(PUT_NOW, 0, first)                                               \
    barrier(CLK_LOCAL_MEM_FENCE);
#define WALK_START(first, end)
#define STEP_END()
#endif
