// Matrix products and linear maps for one sequence (Layers.MatMul*/Linear* on one lane).
// p: one model's parameters; grad: the thread's gradient record (indexed like p).
#pragma once
#include "common.cuh"

// y = x·M, M stored in×out row-major at offset m (low-rank factors, shared qkv_A).
ADDER_DEVICE void matmul_forward(const float* p, int m, int in, int out, const float* x, float* y)
{
    for (int o = 0; o < out; o++) {
        float acc = 0.0f;
        for (int i = 0; i < in; i++) acc = fmaf(x[i], p[m + i * out + o], acc);
        y[o] = acc;
    }
}

// Adds dL/dx into dx and dL/dM into grad.
ADDER_DEVICE void matmul_backward(const float* p, int m, int in, int out, const float* x, const float* dy,
                                  float* dx, float* grad)
{
    for (int i = 0; i < in; i++) {
        float acc = dx[i];
        int row = m + i * out;
        for (int o = 0; o < out; o++) {
            grad[row + o] = fmaf(x[i], dy[o], grad[row + o]);
            acc = fmaf(dy[o], p[row + o], acc);
        }
        dx[i] = acc;
    }
}

// y = x·A·B (hidden = x·A) or y = x·Wᵀ.
ADDER_DEVICE void linear_forward(const float* p, const AdderLinear& lin, const float* x, float* hidden, float* y)
{
    if (lin.rank > 0) {
        matmul_forward(p, lin.a, lin.in, lin.rank, x, hidden);
        matmul_forward(p, lin.b, lin.rank, lin.out, hidden, y);
        return;
    }
    for (int o = 0; o < lin.out; o++) {
        float acc = 0.0f;
        int row = lin.w + o * lin.in;
        for (int i = 0; i < lin.in; i++) acc = fmaf(x[i], p[row + i], acc);
        y[o] = acc;
    }
}

// Adds dL/dx into dx and the parameter gradients into grad.
ADDER_DEVICE void linear_backward(const float* p, const AdderLinear& lin, const float* x, const float* hidden,
                                  const float* dy, float* dx, float* grad)
{
    if (lin.rank > 0) {
        float dHidden[ADDER_MAX_R];
        for (int j = 0; j < lin.rank; j++) dHidden[j] = 0.0f;
        matmul_backward(p, lin.b, lin.rank, lin.out, hidden, dy, dHidden, grad);
        matmul_backward(p, lin.a, lin.in, lin.rank, x, dHidden, dx, grad);
        return;
    }
    for (int o = 0; o < lin.out; o++) {
        int row = lin.w + o * lin.in;
        float g = dy[o];
        for (int i = 0; i < lin.in; i++) {
            grad[row + i] = fmaf(g, x[i], grad[row + i]);
            dx[i] = fmaf(g, p[row + i], dx[i]);
        }
    }
}
