// Sums the per-block gradient records of one model in block order (fixed: a run is deterministic), then the
// position table's backward (CpuBackend.ReduceGradients). Shared by the gradient-check path and the optimizer.
#pragma once
#include "common.cuh"
#include "embedding.cuh"

// The sum of partials [b0, b1) of entry k, in block order; sixteen loads issued before their adds, so their
// latency overlaps (the same sum as one at a time).
ADDER_DEVICE float reduce_range(const float* part, int G, int k, int b0, int b1)
{
    float s = 0.0f;
    int b = b0;
    for (; b + 16 <= b1; b += 16) {
        float a[16];
        for (int u = 0; u < 16; u++) a[u] = part[(size_t)(b + u) * G + k];
        for (int u = 0; u < 16; u++) s += a[u];
    }
    for (; b < b1; b++) s += part[(size_t)b * G + k];
    return s;
}

// part: this model's [nblk][G] records. Writes grad [P] and dPos [T][d] (shared or global memory of this
// block) and *loss. Call from every thread of the block (it contains barriers). Each entry is summed in two
// halves by two threads (twice the loads in flight), then first half + second half: a fixed order.
ADDER_DEVICE void reduce_partials(const AdderDims& dims, const float* p, const float* part, int nblk, float* grad,
                                  float* dPos, float* loss)
{
    __shared__ float halves[2 * ADDER_MAX_G];
    int P = dims.params, TD = dims.seq_len * dims.d_model, G = adder_grad_stride(dims), mid = (nblk + 1) / 2;
    for (int w = threadIdx.x; w < 2 * G; w += blockDim.x) {
        int k = w >> 1, half = w & 1;
        halves[w] = half == 0 ? reduce_range(part, G, k, 0, mid) : reduce_range(part, G, k, mid, nblk);
    }
    __syncthreads();
    for (int k = threadIdx.x; k < G; k += blockDim.x) {
        float s = halves[2 * k] + halves[2 * k + 1];
        if (k < P) grad[k] = s;
        else if (k < P + TD) dPos[k - P] = s;
        else *loss = s;
    }
    __syncthreads();
    position_backward(p, dims, dPos, grad);
}
