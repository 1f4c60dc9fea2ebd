// Causal self-attention of one query position t over the keys and values of positions 0..t, for one sequence
// (Layers.AttentionForward/AttentionBackward). keys, values: [T][ld] rows of this sequence (the same array when
// K and V are tied, shareA_tieKV). The softmax row is not stored: the backward recomputes it with the same
// operations, so it gets the same probabilities.
#pragma once
#include "common.cuh"

// Fills e[0..t] with exp(s_j − max s) and returns their sum. s_j = (q·k_j)·scale; for head_dim 4 the CPU's
// HeadDim4Forward scales q first, (q·scale)·k_j, and so does this.
ADDER_DEVICE float attention_exp_row(int t, int c0, int headDim, const float* q, const float* keys, int ld, float* e)
{
    float scale = 1.0f / sqrtf((float)headDim);
    bool prescale = headDim == 4;
    float qs[ADDER_MAX_D];
    for (int c = 0; c < headDim; c++) qs[c] = prescale ? q[c0 + c] * scale : q[c0 + c];
    float mx = -INFINITY;
    for (int j = 0; j <= t; j++) {
        float s = 0.0f;
        for (int c = 0; c < headDim; c++) s = fmaf(qs[c], keys[j * ld + c0 + c], s);
        if (!prescale) s *= scale;
        e[j] = s;
        mx = fmaxf(mx, s);
    }
    float sum = 0.0f;
    for (int j = 0; j <= t; j++) {
        e[j] = adder_exp(e[j] - mx);
        sum += e[j];
    }
    return sum;
}

// y [d] = softmax(q·Kᵀ)·V per head.
ADDER_DEVICE void attention_forward(int t, int heads, int headDim, const float* q, const float* keys,
                                    const float* values, int ld, float* y)
{
    float e[ADDER_T];
    for (int h = 0; h < heads; h++) {
        int c0 = h * headDim;
        float sum = attention_exp_row(t, c0, headDim, q, keys, ld, e);
        float acc[ADDER_MAX_D];
        for (int c = 0; c < headDim; c++) acc[c] = 0.0f;
        for (int j = 0; j <= t; j++)
            for (int c = 0; c < headDim; c++) acc[c] = fmaf(e[j], values[j * ld + c0 + c], acc[c]);
        float inv = 1.0f / sum;
        for (int c = 0; c < headDim; c++) y[c0 + c] = acc[c] * inv;
    }
}

// Adds into dq [d] and into dKeys, dValues [T][ld] at positions 0..t (the same array when K and V are tied:
// for each element the value gradient is added before the key gradient, as on the CPU).
ADDER_DEVICE void attention_backward(int t, int heads, int headDim, const float* q, const float* keys,
                                     const float* values, int ld, const float* dy, float* dq, float* dKeys,
                                     float* dValues)
{
    float scale = 1.0f / sqrtf((float)headDim);
    float row[ADDER_T], dp[ADDER_T];
    for (int h = 0; h < heads; h++) {
        int c0 = h * headDim;
        float inv = 1.0f / attention_exp_row(t, c0, headDim, q, keys, ld, row);
        for (int j = 0; j <= t; j++) row[j] *= inv;
        // dp[j] = dy·v_j; the softmax backward needs their probability-weighted mean first
        float dot = 0.0f;
        for (int j = 0; j <= t; j++) {
            float acc = 0.0f;
            for (int c = 0; c < headDim; c++) acc = fmaf(dy[c0 + c], values[j * ld + c0 + c], acc);
            dp[j] = acc;
            dot = fmaf(row[j], acc, dot);
        }
        for (int j = 0; j <= t; j++) {
            float ds = row[j] * (dp[j] - dot) * scale;
            for (int c = 0; c < headDim; c++) {
                int x = j * ld + c0 + c;
                dValues[x] = fmaf(row[j], dy[c0 + c], dValues[x]);
                dq[c0 + c] = fmaf(ds, keys[x], dq[c0 + c]);
                dKeys[x] = fmaf(ds, q[c0 + c], dKeys[x]);
            }
        }
    }
}
