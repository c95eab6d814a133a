// The bool (rows, cols) mask of a triangle: element (i, j) is 1 where
// LOWER ? j - i <= diagonal : j - i >= diagonal (PyTorch's tril/triu).

__kernel void triangle(__global uchar *out, const int rows, const int cols, const int diagonal)
{
    const int e = get_global_id(0);
    if (e >= rows * cols) return;
    const int offset = e % cols - e / cols;
#if LOWER
    out[e] = offset <= diagonal;
#else
    out[e] = offset >= diagonal;
#endif
}
