// Token embedding plus the (low-rank) position embedding (Transformer.PositionTable, the gather in
// ForwardPosition, the scatter at the end of Backward, and the position table's backward in
// CpuBackend.ReduceGradients).
#pragma once
#include "common.cuh"

// table [T][d] = pos_emb.A · pos_emb.B (or pos_emb.weight), computed by the whole block into shared memory.
// Call from every thread of the block (it ends with a barrier).
ADDER_DEVICE void position_table(const float* p, const AdderDims& dims, float* table)
{
    const AdderLinear& pos = dims.pos;
    int d = pos.out;
    for (int k = threadIdx.x; k < pos.in * d; k += blockDim.x) {
        int t = k / d, i = k % d;
        if (pos.rank == 0) { table[k] = p[pos.w + t * d + i]; continue; }
        float acc = 0.0f;
        for (int j = 0; j < pos.rank; j++) acc += p[pos.a + t * pos.rank + j] * p[pos.b + j * d + i];
        table[k] = acc;
    }
    __syncthreads();
}

// x0 = E[token] + P[t]
ADDER_DEVICE void embedding_forward(const float* p, const AdderDims& dims, const float* table, int token, int t, float* x0)
{
    int d = dims.d_model;
    for (int i = 0; i < d; i++) x0[i] = p[dims.tok_emb + token * d + i] + table[t * d + i];
}

// Adds dL/dx0 into the token embedding's gradient and the position table's gradient dPos [T][d].
ADDER_DEVICE void embedding_backward(const AdderDims& dims, int token, int t, const float* dx0, float* grad, float* dPos)
{
    int d = dims.d_model;
    for (int i = 0; i < d; i++) {
        dPos[t * d + i] += dx0[i];
        grad[dims.tok_emb + token * d + i] += dx0[i];
    }
}

// The position table's backward over the summed dPos [T][d]: P = A·B gives dA = dP·Bᵀ, dB = Aᵀ·dP (or
// dW = dP), added into grad. Each entry is one thread's, summed in the CPU's order. Ends with a barrier.
ADDER_DEVICE void position_backward(const float* p, const AdderDims& dims, const float* dPos, float* grad)
{
    const AdderLinear& pos = dims.pos;
    int d = pos.out, r = pos.rank;
    if (r == 0) {
        for (int k = threadIdx.x; k < pos.in * d; k += blockDim.x) grad[pos.w + k] += dPos[k];
    } else {
        int nA = pos.in * r;
        for (int k = threadIdx.x; k < nA + r * d; k += blockDim.x) {
            if (k < nA) {
                int t = k / r, j = k % r;
                float acc = grad[pos.a + k];
                for (int i = 0; i < d; i++) acc += dPos[t * d + i] * p[pos.b + j * d + i];
                grad[pos.a + k] = acc;
            } else {
                int j = (k - nA) / d, i = (k - nA) % d;
                float acc = grad[pos.b + j * d + i];
                for (int t = 0; t < pos.in; t++) acc += dPos[t * d + i] * p[pos.a + t * r + j];
                grad[pos.b + j * d + i] = acc;
            }
        }
    }
    __syncthreads();
}
