// GradScaler's kernels (bfloat16.cl is prepended). Defines from Python:
//   G_T, LOAD_G(i), STORE_G(i, v)  a gradient's storage type, its load as float and store
//   UNSCALE                        1: multiply each gradient by 1 / scale (unscale_);
//                                  0: only look for inf and NaN (step without unscale_)

#pragma OPENCL FP_CONTRACT OFF

// found_inf[0] = 1 if any of the n gradients is inf or NaN, as PyTorch's
// _amp_foreach_non_finite_check_and_unscale_ does; the scale is read on the
// device, so nothing waits for the host.
__kernel void check_and_unscale(const long n, __global G_T *g, const long g_offset,
                                __global float *found_inf, __global const float *scale)
{
    const long i = get_global_id(0);
    if (i >= n) return;
    const float v = LOAD_G(g_offset + i);
    // Every work-item that finds one writes the same value: no atomic is needed.
    if (!isfinite(v)) found_inf[0] = 1.0f;
#if UNSCALE
    STORE_G(g_offset + i, v * (1.0f / scale[0]));
#endif
}

// PyTorch's _amp_update_scale_: back off on an overflow, else grow after
// growth_interval clean steps in a row (unless growing would overflow); then
// found_inf is cleared for the next step. One work-item.
__kernel void update_scale(__global float *scale, __global int *growth_tracker,
                           __global float *found_inf, const float growth_factor,
                           const float backoff_factor, const int growth_interval)
{
    if (get_global_id(0) != 0) return;
    if (found_inf[0] != 0.0f) {
        scale[0] = scale[0] * backoff_factor;
        growth_tracker[0] = 0;
    } else {
        const int successful = growth_tracker[0] + 1;
        if (successful == growth_interval) {
            const float grown = scale[0] * growth_factor;
            if (isfinite(grown)) scale[0] = grown;
            growth_tracker[0] = 0;
        } else {
            growth_tracker[0] = successful;
        }
    }
    found_inf[0] = 0.0f;
}
