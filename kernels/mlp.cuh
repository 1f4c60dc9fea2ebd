// The MLP of one position: fc2(gelu(fc1(n2))), exact-erf GELU (Transformer.ForwardPosition/Backward's MLP part).
#pragma once
#include "linear.cuh"

// u = fc1(n2), g = gelu(u), out = fc2(g); fc1h, fc2h: the low-rank hidden vectors.
ADDER_DEVICE void mlp_forward(const float* p, const AdderDims& dims, const float* n2, float* fc1h, float* u, float* g,
                              float* fc2h, float* out)
{
    linear_forward(p, dims.fc1, n2, fc1h, u);
    for (int k = 0; k < dims.d_ff; k++) g[k] = adder_gelu(u[k]);
    linear_forward(p, dims.fc2, g, fc2h, out);
}

// dN2 = dL/dn2 (overwritten) from dOut; parameter gradients into grad.
ADDER_DEVICE void mlp_backward(const float* p, const AdderDims& dims, const float* n2, const float* fc1h, const float* u,
                               const float* g, const float* fc2h, const float* dOut, float* dN2, float* grad)
{
    float dG[ADDER_MAX_F];
    for (int k = 0; k < dims.d_ff; k++) dG[k] = 0.0f;
    linear_backward(p, dims.fc2, g, fc2h, dOut, dG, grad);
    for (int k = 0; k < dims.d_ff; k++) dG[k] *= adder_gelu_grad(u[k]);
    for (int i = 0; i < dims.d_model; i++) dN2[i] = 0.0f;
    linear_backward(p, dims.fc1, n2, fc1h, dG, dN2, grad);
}
