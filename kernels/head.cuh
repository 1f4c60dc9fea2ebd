// The tied output head (logits = z·Eᵀ), cross-entropy and greedy argmax for one position
// (Layers.HeadForward, CrossEntropyForwardBackward, HeadBackward, Argmax).
#pragma once
#include "common.cuh"

ADDER_DEVICE void head_forward(const float* p, int embedding, int vocab, int d, const float* z, float* logits)
{
    for (int v = 0; v < vocab; v++) {
        float acc = 0.0f;
        for (int i = 0; i < d; i++) acc = fmaf(z[i], p[embedding + v * d + i], acc);
        logits[v] = acc;
    }
}

// Turns logits into dL/dlogits in place ((softmax − one-hot)·weight); returns the loss −log p[label].
ADDER_DEVICE float cross_entropy_forward_backward(float* logits, int vocab, int label, float weight)
{
    float mx = logits[0];
    for (int v = 1; v < vocab; v++) mx = fmaxf(mx, logits[v]);
    float sum = 0.0f, labelShifted = 0.0f;
    for (int v = 0; v < vocab; v++) {
        float shifted = logits[v] - mx;
        if (v == label) labelShifted = shifted;
        float e = adder_exp(shifted);
        logits[v] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
    for (int v = 0; v < vocab; v++) logits[v] = (logits[v] * inv - (v == label ? 1.0f : 0.0f)) * weight;
    return logf(sum) - labelShifted;
}

// Adds into dz [d] and the embedding's gradient.
ADDER_DEVICE void head_backward(const float* p, int embedding, int vocab, int d, const float* z, const float* dLogits,
                                float* dz, float* grad)
{
    for (int v = 0; v < vocab; v++) {
        int row = embedding + v * d;
        for (int i = 0; i < d; i++) {
            grad[row + i] = fmaf(dLogits[v], z[i], grad[row + i]);
            dz[i] = fmaf(dLogits[v], p[row + i], dz[i]);
        }
    }
}

// Lowest index on ties (SPEC section 3).
ADDER_DEVICE int head_argmax(const float* logits, int vocab)
{
    float best = logits[0];
    int index = 0;
    for (int v = 1; v < vocab; v++)
        if (logits[v] > best) { best = logits[v]; index = v; }
    return index;
}
