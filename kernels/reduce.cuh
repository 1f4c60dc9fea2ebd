// Sums the per-block gradient records of one model in block order (fixed: a run is deterministic), then the
// position table's backward (CpuBackend.ReduceGradients). Shared by the gradient-check path and the optimizer.
#pragma once
#include "common.cuh"
#include "embedding.cuh"

// part: this model's [nblk][G] records. Writes grad [P] and dPos [T][d] (shared or global memory of this
// block) and *loss. Call from every thread of the block (it contains barriers).
ADDER_DEVICE void reduce_partials(const AdderDims& dims, const float* p, const float* part, int nblk, float* grad,
                                  float* dPos, float* loss)
{
    int P = dims.params, TD = dims.seq_len * dims.d_model, G = adder_grad_stride(dims);
    for (int k = threadIdx.x; k < G; k += blockDim.x) {
        // in block order; sixteen loads issued before their adds, so their latency overlaps (the same sum)
        float s = 0.0f;
        int b = 0;
        for (; b + 16 <= nblk; b += 16) {
            float a[16];
            for (int u = 0; u < 16; u++) a[u] = part[(size_t)(b + u) * G + k];
            for (int u = 0; u < 16; u++) s += a[u];
        }
        for (; b < nblk; b++) s += part[(size_t)b * G + k];
        if (k < P) grad[k] = s;
        else if (k < P + TD) dPos[k - P] = s;
        else *loss = s;
    }
    __syncthreads();
    position_backward(p, dims, dPos, grad);
}
