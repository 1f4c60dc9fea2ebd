// Teacher-forced logits of every input position: one thread per sequence.
#include "transformer.cuh"

extern "C" __global__ void __launch_bounds__(256)
adder_logits(AdderDims dims, const float* params, const int* tokens, int count, float* logits)
{
    __shared__ float table[ADDER_T * ADDER_MAX_D];
    const float* p;
    AdderActs a;
    size_t sequence;
    if (!begin_sequence(dims, params, tokens, count, ADDER_FULL, ADDER_T, table, p, a, sequence)) return;   // no barrier below
    float* out = logits + sequence * ADDER_T * ADDER_VOCAB;
    for (int t = 0; t < ADDER_T; t++) {
        forward_position(p, dims, table, a, t);
        head_forward(p, dims.tok_emb, dims.vocab, dims.d_model, &a.z[t * ADDER_MAX_D], out + t * ADDER_VOCAB);
    }
}
