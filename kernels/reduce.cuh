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
        // in block order; four loads issued before their adds, so the loads' latency overlaps (same sum)
        float s = 0.0f;
        int b = 0;
        for (; b + 4 <= nblk; b += 4) {
            float a0 = part[(size_t)b * G + k], a1 = part[(size_t)(b + 1) * G + k];
            float a2 = part[(size_t)(b + 2) * G + k], a3 = part[(size_t)(b + 3) * G + k];
            s += a0; s += a1; s += a2; s += a3;
        }
        for (; b < nblk; b++) s += part[(size_t)b * G + k];
        if (k < P) grad[k] = s;
        else if (k < P + TD) dPos[k - P] = s;
        else *loss = s;
    }
    __syncthreads();
    position_backward(p, dims, dPos, grad);
}
