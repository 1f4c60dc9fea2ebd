// The one-layer model over one sequence, one position at a time (Transformer.ForwardPosition and Backward on
// one lane). Causal: position t reads keys and values of positions ≤ t only, so the same forward serves
// teacher-forced training, logits and greedy decoding with a KV cache (a.k, a.v).
#pragma once
#include "common.cuh"
#include "embedding.cuh"
#include "rmsnorm.cuh"
#include "linear.cuh"
#include "attention.cuh"
#include "mlp.cuh"
#include "head.cuh"

#define MD ADDER_MAX_D
#define MF ADDER_MAX_F
#define MR ADDER_MAX_R

// Everything the forward keeps for the backward, per position (rows of fixed width MD, MF, MR). Lives in the
// thread's local memory. The attention probabilities are recomputed in the backward instead.
struct AdderActs {
    int tokens[ADDER_FULL];
    float x0[ADDER_T * MD], ln1hat[ADDER_T * MD], n1[ADDER_T * MD], ln1rstd[ADDER_T];
    float qkvh[ADDER_T * 3 * MR];              // shared h (rank) or hq|hk|hv (low-rank separate q, k, v)
    float q[ADDER_T * MD], k[ADDER_T * MD], v[ADDER_T * MD];   // v unused when K and V are tied
    float y[ADDER_T * MD], projh[ADDER_T * MR], xmid[ADDER_T * MD];
    float ln2hat[ADDER_T * MD], n2[ADDER_T * MD], ln2rstd[ADDER_T];
    float fc1h[ADDER_T * MR], u[ADDER_T * MF], g[ADDER_T * MF], fc2h[ADDER_T * MR];
    float x1[ADDER_T * MD], lnfhat[ADDER_T * MD], z[ADDER_T * MD], lnfrstd[ADDER_T];
};

// Runs position t (token a.tokens[t]) through the block and the final norm; leaves z in a.z.
ADDER_DEVICE void forward_position(const float* p, const AdderDims& dims, const float* table, AdderActs& a, int t)
{
    int D = dims.d_model, row = t * MD;
    float tmp[MD];
    embedding_forward(p, dims, table, a.tokens[t], t, &a.x0[row]);
    rmsnorm_forward(p, dims.ln1_w, D, &a.x0[row], &a.ln1hat[row], &a.ln1rstd[t], &a.n1[row]);
    float* hidden = &a.qkvh[t * 3 * MR];
    if (dims.shared_a) {
        int r = dims.qkv_rank;
        matmul_forward(p, dims.qkv_a, D, r, &a.n1[row], hidden);
        matmul_forward(p, dims.bq, r, D, hidden, &a.q[row]);
        matmul_forward(p, dims.bkv, r, D, hidden, &a.k[row]);
    } else {
        int r = dims.q.rank;
        linear_forward(p, dims.q, &a.n1[row], hidden, &a.q[row]);
        linear_forward(p, dims.k, &a.n1[row], hidden + r, &a.k[row]);
        linear_forward(p, dims.v, &a.n1[row], hidden + 2 * r, &a.v[row]);
    }
    const float* values = dims.shared_a ? a.k : a.v;
    attention_forward(t, dims.n_head, D / dims.n_head, &a.q[row], a.k, values, MD, &a.y[row]);
    linear_forward(p, dims.proj, &a.y[row], &a.projh[t * MR], tmp);
    for (int i = 0; i < D; i++) a.xmid[row + i] = a.x0[row + i] + tmp[i];

    rmsnorm_forward(p, dims.ln2_w, D, &a.xmid[row], &a.ln2hat[row], &a.ln2rstd[t], &a.n2[row]);
    mlp_forward(p, dims, &a.n2[row], &a.fc1h[t * MR], &a.u[t * MF], &a.g[t * MF], &a.fc2h[t * MR], tmp);
    for (int i = 0; i < D; i++) a.x1[row + i] = a.xmid[row + i] + tmp[i];
    rmsnorm_forward(p, dims.lnf_w, D, &a.x1[row], &a.lnfhat[row], &a.lnfrstd[t], &a.z[row]);
}

// Backward of a sequence whose forward ran over positions 0..32. Labels are a.tokens[t+1]; positions 21..32
// are scored, the loss weighted by weight. Adds parameter gradients into grad [P], the position table's
// gradient into dPos [T][d] and the weighted loss into *loss.
ADDER_DEVICE void sequence_backward(const float* p, const AdderDims& dims, const AdderActs& a, float weight,
                                    float* grad, float* dPos, float* loss)
{
    int D = dims.d_model, vocab = dims.vocab, heads = dims.n_head;
    float dK[ADDER_T * MD], dV[ADDER_T * MD];
    for (int k = 0; k < ADDER_T * MD; k++) { dK[k] = 0.0f; dV[k] = 0.0f; }
    float* dValues = dims.shared_a ? dK : dV;
    const float* values = dims.shared_a ? a.k : a.v;
    float dRes[MD], dA[MD], dY[MD], dQ[MD], logits[ADDER_VOCAB];

    for (int t = ADDER_T - 1; t >= 0; t--) {
        int row = t * MD;
        for (int i = 0; i < D; i++) dRes[i] = 0.0f;
        if (t >= ADDER_FIRST_SCORED) {
            head_forward(p, dims.tok_emb, vocab, D, &a.z[row], logits);
            *loss = fmaf(cross_entropy_forward_backward(logits, vocab, a.tokens[t + 1], weight), weight, *loss);
            for (int i = 0; i < D; i++) dA[i] = 0.0f;
            head_backward(p, dims.tok_emb, vocab, D, &a.z[row], logits, dA, grad);
            rmsnorm_backward(p, dims.lnf_w, D, &a.lnfhat[row], a.lnfrstd[t], dA, dRes, grad);
        }
        // MLP: x1 = xmid + fc2(gelu(fc1(ln2(xmid)))); dRes becomes dL/dxmid
        mlp_backward(p, dims, &a.n2[row], &a.fc1h[t * MR], &a.u[t * MF], &a.g[t * MF], &a.fc2h[t * MR], dRes, dA, grad);
        rmsnorm_backward(p, dims.ln2_w, D, &a.ln2hat[row], a.ln2rstd[t], dA, dRes, grad);

        // attention: xmid = x0 + proj(attn(q, k, v))
        for (int i = 0; i < D; i++) dY[i] = 0.0f;
        linear_backward(p, dims.proj, &a.y[row], &a.projh[t * MR], dRes, dY, grad);
        for (int i = 0; i < D; i++) dQ[i] = 0.0f;
        attention_backward(t, heads, D / heads, &a.q[row], a.k, values, MD, dY, dQ, dK, dValues);

        // q, k, v at position t: its dK and dV are complete now (later positions ran first)
        const float* hidden = &a.qkvh[t * 3 * MR];
        for (int i = 0; i < D; i++) dA[i] = 0.0f;   // dA is dL/dn1 from here
        if (dims.shared_a) {
            int r = dims.qkv_rank;
            float dH[MR];
            for (int j = 0; j < r; j++) dH[j] = 0.0f;
            matmul_backward(p, dims.bq, r, D, hidden, dQ, dH, grad);
            matmul_backward(p, dims.bkv, r, D, hidden, &dK[row], dH, grad);
            matmul_backward(p, dims.qkv_a, D, r, &a.n1[row], dH, dA, grad);
        } else {
            int r = dims.q.rank;
            linear_backward(p, dims.q, &a.n1[row], hidden, dQ, dA, grad);
            linear_backward(p, dims.k, &a.n1[row], hidden + r, &dK[row], dA, grad);
            linear_backward(p, dims.v, &a.n1[row], hidden + 2 * r, &dV[row], dA, grad);
        }
        // dRes becomes dL/dx0
        rmsnorm_backward(p, dims.ln1_w, D, &a.ln1hat[row], a.ln1rstd[t], dA, dRes, grad);
        embedding_backward(dims, a.tokens[t], t, dRes, grad, dPos);
    }
}

// The start of a one-thread-per-sequence inference kernel (logits, decode): model blockIdx.y's parameters, its
// position table in shared memory (a block-wide barrier, so every thread calls this), then this thread's first
// `length` tokens of sequence s (sequences `stride` tokens apart). False for a thread past the last sequence.
ADDER_DEVICE bool begin_sequence(const AdderDims& dims, const float* params, const int* tokens, int count, int stride,
                                 int length, float* table, const float*& p, AdderActs& a, size_t& sequence)
{
    int m = blockIdx.y;
    p = params + (size_t)m * dims.params;
    position_table(p, dims, table);
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= count) return false;
    sequence = (size_t)m * count + s;
    const int* first = tokens + sequence * stride;
    for (int i = 0; i < length; i++) a.tokens[i] = first[i];
    return true;
}

#undef MD
#undef MF
#undef MR
