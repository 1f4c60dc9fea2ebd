// Teacher-forced logits of every input position: one thread per sequence.
#include "transformer.cuh"

extern "C" __global__ void __launch_bounds__(256)
adder_logits(AdderDims dims, const float* params, const int* tokens, int count, float* logits)
{
    __shared__ float table[ADDER_T * ADDER_MAX_D];
    int m = blockIdx.y;
    const float* p = params + (size_t)m * dims.params;
    position_table(p, dims, table);
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= count) return;   // no barrier below
    AdderActs a;
    const int* seq = tokens + ((size_t)m * count + s) * ADDER_FULL;
    for (int i = 0; i < ADDER_T; i++) a.tokens[i] = seq[i];
    float* out = logits + ((size_t)m * count + s) * ADDER_T * ADDER_VOCAB;
    for (int t = 0; t < ADDER_T; t++) {
        forward_position(p, dims, table, a, t);
        head_forward(p, dims.tok_emb, dims.vocab, dims.d_model, &a.z[t * ADDER_MAX_D], out + t * ADDER_VOCAB);
    }
}
