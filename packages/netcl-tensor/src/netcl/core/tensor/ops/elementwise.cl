// One strided, broadcasting elementwise kernel for every unary, binary and
// ternary op. elementwise.py supplies, as #defines:
//   GUARD           whether to test i < n (dispatch.needs_bound_test says when)
//   NDIM            0 when every operand is contiguous with the output's shape
//                   (flat index), else the number of collapsed dimensions (<= 8)
//   CT              the C type the expression is computed in
//   EXPR            the expression, in terms of a, b, c (each of type CT)
//   OUT_T, STORE    the output's storage type and how to store v at element i
//   PARAMS_X, LOAD_X for each operand X in A, B, C that exists: its kernel
//                   parameters (pointer, offset, strides; or one scalar) and
//                   how to read it at element i
//   ROWS            1 (a CPU, NDIM >= 2): a 2-D launch, the innermost dimension
//                   along the first axis and the rest along the second
//   VEC             1: four elements a work-item, read and written as vectors
//                   (flat operands and output of 4-byte types); then also
//                   VLOAD_X, a statement loading the vector vX at element i,
//                   and LANE_X(s), lane s of it as CT (or the scalar)

// No contraction of a * b + c into one fused multiply-add: each op rounds as
// written, so netcl.jit's fused kernels (which hold contraction off too) give
// the same bits as these launches one by one.
#pragma OPENCL FP_CONTRACT OFF

#if NDIM > 0
// The element offset of one operand at the output's multi-index `index`. The
// index is computed once per work-item and shared by every operand: each
// division by a runtime size costs tens of cycles on a CPU, and decomposing i
// per operand made a broadcast (256, 1024) + (1024,) six times slower than a
// contiguous add on PoCL.
inline int strided_offset(const int *index, const int8 strides_vec) {
    int strides[8];
    vstore8(strides_vec, 0, strides);
    int offset = 0;
    for (int d = 0; d < NDIM; ++d) offset += index[d] * strides[d];
    return offset;
}
#define OFFSET(i, strides) strided_offset(index, strides)
#else
#define OFFSET(i, strides) (i)
#endif

// Element i of the result, read through LOAD_X and stored at out_index.
#define ELEMENT(out_index)                                                      \
    {                                                                           \
        const CT a = LOAD_A;                                                    \
        const CT b = LOAD_B;                                                    \
        const CT c = LOAD_C;                                                    \
        STORE(out_index, (EXPR));                                               \
    }

#if VEC
// One lane of the result: the expression on lane s of each operand.
#define LANE(s)                                                                 \
    {                                                                           \
        const CT a = LANE_A(s);                                                 \
        const CT b = LANE_B(s);                                                 \
        const CT c = LANE_C(s);                                                 \
        result.s = (OUT_T)(EXPR);                                               \
    }

// Four elements a work-item as vectors: on the H200 a 4096 x 8192 add streams
// at 4.2 TB/s so against 3.4 one element a work-item (vload4 at an offset the
// compiler cannot see ran as fast as an aligned float4 read). The last
// work-item takes the n % 4 elements past the last whole vector one by one.
__kernel void elementwise(const int n, const int8 shape_vec,
                          __global OUT_T *out, const int out_offset, const int8 out_strides
                          PARAMS_A PARAMS_B PARAMS_C)
{
    const int first = 4 * get_global_id(0);
    if (first + 4 <= n) {
        const int i = first;
        VLOAD_A VLOAD_B VLOAD_C
        VECTOR_T result;
        LANE(s0) LANE(s1) LANE(s2) LANE(s3)
        vstore4(result, 0, out + out_offset + i);
        return;
    }
    for (int i = first; i < n; ++i) ELEMENT(out_offset + i)
}
#elif ROWS
// Work-item (column, row) of a 2-D launch over (innermost size, the rest): an
// operand's offset is its row's offset (from the outer multi-index, which
// depends on the row alone) plus the column times its innermost stride. PoCL
// runs a work-group's row as one vectorized loop, and with the row's part
// hoisted out of it the divisions happen once a row instead of once an
// element: a broadcast (64, 16, 784) + (1, 16, 1) as a 1-D launch took ~50 ns
// an element on the 2-core EPYC (a ResNet step's BatchNorm arithmetic was 80%
// of its kernel time). Vectors, not private arrays, hold the index, so it stays
// in registers. The grid is exact: no guard.
inline int row_offset(const int8 outer, const int8 strides) {
    const int8 p = outer * strides;
    const int4 q = p.lo + p.hi;
    const int2 r = q.lo + q.hi;
    return r.x + r.y;
}
#undef OFFSET
#define OFFSET(i, strides) (row_offset(outer, strides) + col * (strides)[NDIM - 1])

__kernel void elementwise(const int n, const int8 shape_vec,
                          __global OUT_T *out, const int out_offset, const int8 out_strides
                          PARAMS_A PARAMS_B PARAMS_C)
{
    const int col = get_global_id(0), row = get_global_id(1);
    const int i = row * (int)get_global_size(0) + col;
    // The outer multi-index of the row; lanes NDIM - 1 and up stay 0.
    int8 outer = (int8)(0);
    int rest = row;
    for (int d = NDIM - 2; d > 0; --d) {
        outer[d] = rest % shape_vec[d];
        rest /= shape_vec[d];
    }
    outer[0] = rest;
    ELEMENT(out_offset + OFFSET(i, out_strides))
}
#else
__kernel void elementwise(const int n, const int8 shape_vec,
                          __global OUT_T *out, const int out_offset, const int8 out_strides
                          PARAMS_A PARAMS_B PARAMS_C)
{
    const int i = get_global_id(0);
#if GUARD
    if (i >= n) return;
#endif
#if NDIM > 0
    int shape[8];
    vstore8(shape_vec, 0, shape);
    // The output's multi-index of i, walking its shape from the innermost
    // dimension out; the outermost needs no remainder (i < n).
    int index[NDIM];
    int rest = i;
    for (int d = NDIM - 1; d > 0; --d) {
        index[d] = rest % shape[d];
        rest /= shape[d];
    }
    index[0] = rest;
#endif
    ELEMENT(out_offset + OFFSET(i, out_strides))
}
#endif
