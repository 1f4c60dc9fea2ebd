// One block per model: the gradient from the train step's partials, the Grokfast-EMA filter when its lambda is
// not 0 (Grokfast.Apply), its global norm, clipping (GradClip.Apply) and AdamW (AdamW.Update). The settings and
// the step count are read from device memory, so a captured graph replays with each step's learning rate.
#include "reduce.cuh"

#define ADDER_OPT_BLOCK 1024   // one model: its reduction's loads spread over more threads

extern "C" __global__ void __launch_bounds__(ADDER_OPT_BLOCK)
adder_optimizer_step(AdderDims dims, const float* partials, int nblk, const double* settings, float* params,
                     float* adam_m, float* adam_v, long long* step, float* loss, double* norm, float* grokfast_ema)
{
    __shared__ float grad[ADDER_MAX_PARAMS];
    __shared__ float dPos[ADDER_T * ADDER_MAX_D];
    __shared__ double partial[ADDER_OPT_BLOCK];
    __shared__ float lossSum;
    int m = blockIdx.x, P = dims.params, G = adder_grad_stride(dims), tid = threadIdx.x;
    float* p = params + (size_t)m * P;
    float* M = adam_m + (size_t)m * P;
    float* V = adam_v + (size_t)m * P;
    long long t = step[m] + 1;   // every thread reads it before thread 0 writes it back (barriers between)
    reduce_partials(dims, p, partials + (size_t)m * nblk * G, nblk, grad, dPos, &lossSum);

    // Grokfast-EMA: h = α·h + (1−α)·g, then g += λ·h, element by element as Grokfast.Apply (λ 0: not run)
    if (settings[7] != 0.0) {
        float a = (float)settings[6], oneMinusA = (float)(1.0 - settings[6]), l = (float)settings[7];
        float* ema = grokfast_ema + (size_t)m * P;
        for (int k = tid; k < P; k += blockDim.x) {
            float h = a * ema[k] + oneMinusA * grad[k];
            ema[k] = h;
            grad[k] += l * h;
        }
        __syncthreads();
    }

    // global L2 norm in double, each thread's strided share then a fixed tree
    double ss = 0.0;
    for (int k = tid; k < P; k += blockDim.x) ss += (double)grad[k] * grad[k];
    partial[tid] = ss;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (tid < half) partial[tid] += partial[tid + half];
        __syncthreads();
    }
    double lr = settings[0], weightDecay = settings[1], clip = settings[2];
    double beta1 = settings[3], beta2 = settings[4], epsilon = settings[5];
    double nrm = sqrt(partial[0]);
    double coefficient = clip / (nrm + 1e-6);
    bool clipped = coefficient < 1.0;
    float c = (float)coefficient;

    float decay = (float)(1.0 - lr * weightDecay);
    double biasCorrection1 = 1.0 - pow(beta1, (double)t);
    float bc2Sqrt = (float)sqrt(1.0 - pow(beta2, (double)t));
    float stepSize = (float)(lr / biasCorrection1);
    float b1 = (float)(1.0 - beta1), b2 = (float)beta2, oneMinusB2 = (float)(1.0 - beta2), eps = (float)epsilon;
    for (int k = tid; k < P; k += blockDim.x) {
        float g = clipped ? grad[k] * c : grad[k];
        float w = p[k] * decay;
        float mk = M[k] + b1 * (g - M[k]);                 // torch: exp_avg.lerp_(grad, 1 - beta1)
        float vk = V[k] * b2 + oneMinusB2 * g * g;
        float denom = sqrtf(vk) / bc2Sqrt + eps;
        p[k] = w - stepSize * (mk / denom);                // torch: addcdiv_(m, denom, -step_size)
        M[k] = mk;
        V[k] = vk;
    }
    if (tid == 0) { loss[m] = lossSum; norm[m] = nrm; step[m] = t; }
}
