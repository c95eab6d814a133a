// Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy
// as 1, 2, 3", SC 2011; the constants are Random123's): a counter-based generator.
// Work-item b draws block b of a stream: the 4 words of philox(counter = offset + b,
// key = seed), each as a float in [0, 1) from its top 24 bits (exact in float).

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

__kernel void uniform(__global float *out, const long n, const ulong seed, const ulong offset)
{
    const long block = get_global_id(0);
    const long first = block * 4;
    if (first >= n) return;
    const ulong counter = offset + (ulong)block;
    uint x0 = (uint)counter, x1 = (uint)(counter >> 32), x2 = 0, x3 = 0;
    uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        const uint hi0 = mul_hi(PHILOX_M0, x0), lo0 = PHILOX_M0 * x0;
        const uint hi1 = mul_hi(PHILOX_M1, x2), lo1 = PHILOX_M1 * x2;
        x0 = hi1 ^ x1 ^ k0;
        x1 = lo1;
        x2 = hi0 ^ x3 ^ k1;
        x3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    const float scale = 0x1p-24f;
    out[first] = (float)(x0 >> 8) * scale;
    if (first + 1 < n) out[first + 1] = (float)(x1 >> 8) * scale;
    if (first + 2 < n) out[first + 2] = (float)(x2 >> 8) * scale;
    if (first + 3 < n) out[first + 3] = (float)(x3 >> 8) * scale;
}
