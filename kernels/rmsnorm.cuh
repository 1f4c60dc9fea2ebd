// RMSNorm for one sequence's position (Layers.NormForward/NormBackward, RMSNorm branch).
#pragma once
#include "common.cuh"

#define ADDER_RMS_EPS 1e-8f

ADDER_DEVICE void rmsnorm_forward(const float* p, int weight, int d, const float* x, float* hat, float* rstd, float* y)
{
    float invD = 1.0f / (float)d;
    float ss = 0.0f;
    for (int i = 0; i < d; i++) ss = fmaf(x[i], x[i], ss);
    float r = 1.0f / sqrtf(ss * invD + ADDER_RMS_EPS);
    *rstd = r;
    for (int i = 0; i < d; i++) { hat[i] = x[i] * r; y[i] = hat[i] * p[weight + i]; }
}

// Adds dL/dx into dx and dL/dweight into grad.
ADDER_DEVICE void rmsnorm_backward(const float* p, int weight, int d, const float* hat, float rstd, const float* dy,
                                   float* dx, float* grad)
{
    float dHat[ADDER_MAX_D];
    float meanDHatHat = 0.0f;
    for (int i = 0; i < d; i++) {
        grad[weight + i] = fmaf(dy[i], hat[i], grad[weight + i]);
        dHat[i] = dy[i] * p[weight + i];
        meanDHatHat = fmaf(dHat[i], hat[i], meanDHatHat);
    }
    meanDHatHat *= 1.0f / (float)d;
    // (dHat − meanDHat − hat·meanDHatHat) with RMSNorm's meanDHat = 0, as the CPU computes it
    for (int i = 0; i < d; i++) dx[i] += rstd * ((dHat[i] - 0.0f) - hat[i] * meanDHatHat);
}
