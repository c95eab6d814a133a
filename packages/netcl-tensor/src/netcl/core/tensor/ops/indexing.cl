// Gather and scatter-add along one axis, for index_select, take_along_axis,
// index_add and scatter_add. Both kernels walk a shape of up to 8 dimensions
// (ndim, a runtime argument, so one build serves every rank) and find, for
// each element, the index to use along `axis` at idx[idx_offset + coord .
// idx_strides]: index_select passes a stride only along `axis` (one index per
// slice), take_along_axis/scatter_add pass the index tensor's own strides.
// Indices arrive non-negative and range-checked by indexing.py. A replay of
// captured launches (netcl.jit) does not check again: there an index outside
// [0, axis_size) gathers zero and scatters nothing, never touching memory
// outside the buffers.

// The offset of linear index i of `shape` in an operand with `strides`,
// leaving dimension `skip` out (-1: none); the caller adds the looked-up
// index along it.
inline int offset_of(int i, const int ndim, const int skip, const int *shape,
                     const int *strides)
{
    int offset = 0;
    for (int d = ndim - 1; d >= 0; --d) {
        if (d != skip) offset += (i % shape[d]) * strides[d];
        i /= shape[d];
    }
    return offset;
}

#ifdef WORD_T
// out (contiguous, of `shape`) [i] = src[... idx ...]. Elements are copied as
// raw words of their size (WORD_T), so one build serves every dtype of a size,
// fp16 included.
__kernel void gather(const int n, const int ndim, const int axis, const int axis_size,
                     const int8 shape_vec,
                     __global WORD_T *out,
                     __global const WORD_T *src, const int src_offset, const int8 src_strides_vec,
                     __global const long *idx, const int idx_offset, const int8 idx_strides_vec)
{
    const int i = get_global_id(0);
    if (i >= n) return;
    int shape[8], src_strides[8], idx_strides[8];
    vstore8(shape_vec, 0, shape);
    vstore8(src_strides_vec, 0, src_strides);
    vstore8(idx_strides_vec, 0, idx_strides);
    const long k = idx[idx_offset + offset_of(i, ndim, -1, shape, idx_strides)];
    if (k < 0 || k >= axis_size) {
        out[i] = 0;
        return;
    }
    out[i] = src[src_offset + offset_of(i, ndim, axis, shape, src_strides) + (int)k * src_strides[axis]];
}

// index_select where src is (outer, axis_size, inner) with one stride each (any
// contiguous tensor is): out (outer, indices, inner, contiguous) [o, j, i] =
// src[o, idx[j], i], over an exact 3-D grid (inner, indices, outer). No division an
// element (gather's walk costs two a dimension: index_select of 1024 rows of 64 floats
// took ~1.2 ms on a CPU core), no early return (PoCL then vectorizes along inner).
__kernel void gather_slices(__global WORD_T *out, __global const WORD_T *src,
                            const int src_offset, const int outer_stride, const int axis_stride,
                            const int inner_stride, const int axis_size,
                            __global const long *idx, const int idx_offset, const int idx_stride)
{
    const int i = get_global_id(0), j = get_global_id(1), o = get_global_id(2);
    const long k = idx[idx_offset + j * idx_stride];
    const bool inside = k >= 0 && k < axis_size;
    const WORD_T v = src[src_offset + o * outer_stride + (inside ? (int)k : 0) * axis_stride
                         + i * inner_stride];
    out[((long)o * get_global_size(1) + j) * get_global_size(0) + i] = inside ? v : 0;
}
#endif

#ifdef ACC_T
// OpenCL 1.2 has atomic add for 32-bit integers only; a float add is a
// compare-and-exchange loop on the float's bit pattern, retried until no
// other work-item wrote the word between our read and our write.
inline void atomic_add_float(volatile __global float *p, const float v)
{
    union { unsigned int u; float f; } seen, next;
    do {
        seen.f = *p;
        next.f = seen.f + v;
    } while (atomic_cmpxchg((volatile __global unsigned int *)p, seen.u, next.u) != seen.u);
}

// out (contiguous, of out_strides) [... idx ...] += src[i] for every element i
// of src's `shape`. Duplicate indices meet at one address, hence atomics.
__kernel void scatter_add(const int n, const int ndim, const int axis, const int axis_size,
                          const int8 shape_vec,
                          __global ACC_T *out, const int8 out_strides_vec,
                          __global const SRC_T *src, const int src_offset,
                          const int8 src_strides_vec,
                          __global const long *idx, const int idx_offset,
                          const int8 idx_strides_vec)
{
    const int i = get_global_id(0);
    if (i >= n) return;
    int shape[8], out_strides[8], src_strides[8], idx_strides[8];
    vstore8(shape_vec, 0, shape);
    vstore8(out_strides_vec, 0, out_strides);
    vstore8(src_strides_vec, 0, src_strides);
    vstore8(idx_strides_vec, 0, idx_strides);
    const long k = idx[idx_offset + offset_of(i, ndim, -1, shape, idx_strides)];
    if (k < 0 || k >= axis_size) return;
    const int out_pos = offset_of(i, ndim, axis, shape, out_strides) + (int)k * out_strides[axis];
    ATOMIC_ADD(out + out_pos, LOAD(src_offset + offset_of(i, ndim, -1, shape, src_strides)));
}

// index_add, the adjoint of gather_slices: out (outer, axis_size, inner, contiguous)
// [o, idx[j], i] += src[o, j, i], src (outer, indices, inner) with one stride each; grid
// (inner, indices, outer).
__kernel void scatter_slices(__global ACC_T *out, const int axis_size,
                             __global const SRC_T *src, const int src_offset,
                             const int outer_stride, const int axis_stride,
                             const int inner_stride,
                             __global const long *idx, const int idx_offset, const int idx_stride)
{
    const int i = get_global_id(0), j = get_global_id(1), o = get_global_id(2);
    const long k = idx[idx_offset + j * idx_stride];
    if (k < 0 || k >= axis_size) return;
    ATOMIC_ADD(out + ((long)o * axis_size + k) * get_global_size(0) + i,
               LOAD(src_offset + o * outer_stride + j * axis_stride + i * inner_stride));
}
#endif
