// The fused training step: one thread per sequence runs the forward over 33 positions and the backward,
// then each block sums its threads' gradient records in thread order into one partial record
// (kernels/ABI.md). adder_reduce_gradients turns the partials into the gradient (the gradient-check path).
#include "transformer.cuh"
#include "reduce.cuh"

#define ADDER_TRAIN_BLOCK 64

extern "C" __global__ void __launch_bounds__(ADDER_TRAIN_BLOCK)
adder_train_step(AdderDims dims, const float* params, const unsigned char* tokens, int batch, float* partials)
{
    __shared__ float table[ADDER_T * ADDER_MAX_D];
    // one row per thread, padded to 65 so a column read hits 32 different banks
    __shared__ float tile[ADDER_TRAIN_BLOCK * (ADDER_TRAIN_BLOCK + 1)];
    int m = blockIdx.y;
    const float* p = params + (size_t)m * dims.params;
    position_table(p, dims, table);

    int G = adder_grad_stride(dims);
    float rec[ADDER_MAX_G];   // this thread's gradient record: [P] grads, [T][d] dPos, loss
    for (int k = 0; k < G; k++) rec[k] = 0.0f;
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s < batch) {
        AdderActs a;
        const unsigned char* seq = tokens + ((size_t)m * batch + s) * ADDER_FULL;
        for (int i = 0; i < ADDER_FULL; i++) a.tokens[i] = seq[i];
        for (int t = 0; t < ADDER_T; t++) forward_position(p, dims, table, a, t);
        float weight = 1.0f / (float)(batch * ADDER_SCORED);
        sequence_backward(p, dims, a, weight, rec, rec + dims.params, rec + G - 1);
    }

    // Block sum, blockDim.x entries at a time: every thread writes its slice into its row of the tile, then
    // thread i sums column i over the rows in thread order.
    int n = blockDim.x, tid = threadIdx.x, stride = ADDER_TRAIN_BLOCK + 1;
    float* out = partials + ((size_t)m * gridDim.x + blockIdx.x) * G;
    for (int c0 = 0; c0 < G; c0 += n) {
        for (int j = 0; j < n; j++) tile[tid * stride + j] = c0 + j < G ? rec[c0 + j] : 0.0f;
        __syncthreads();
        if (c0 + tid < G) {
            float sum = 0.0f;
            for (int r = 0; r < n; r++) sum += tile[r * stride + tid];
            out[c0 + tid] = sum;
        }
        __syncthreads();
    }
}

extern "C" __global__ void __launch_bounds__(256)
adder_reduce_gradients(AdderDims dims, const float* params, const float* partials, int nblk, float* grad, float* loss)
{
    __shared__ float dPos[ADDER_T * ADDER_MAX_D];
    __shared__ float lossSum;
    int m = blockIdx.x, G = adder_grad_stride(dims);
    reduce_partials(dims, params + (size_t)m * dims.params, partials + (size_t)m * nblk * G, nblk,
                    grad + (size_t)m * dims.params, dPos, &lossSum);
    if (threadIdx.x == 0) loss[m] = lossSum;
}
