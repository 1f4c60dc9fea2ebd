// Greedy decoding with a KV cache (SPEC section 3): one thread per example feeds its 22 prompt tokens, then
// its own argmax (lowest id on ties) at positions 21..31, reading the keys and values it cached.
#include "transformer.cuh"

extern "C" __global__ void __launch_bounds__(256)
adder_decode(AdderDims dims, const float* params, const int* prompts, int count, int* out)
{
    __shared__ float table[ADDER_T * ADDER_MAX_D];
    const float* p;
    AdderActs a;
    size_t sequence;
    if (!begin_sequence(dims, params, prompts, count, ADDER_PROMPT, ADDER_PROMPT, table, p, a, sequence)) return;   // no barrier below
    int* result = out + sequence * ADDER_SUM_DIGITS;
    float logits[ADDER_VOCAB];
    for (int t = 0; t < ADDER_FIRST_SCORED + ADDER_SUM_DIGITS; t++) {
        forward_position(p, dims, table, a, t);
        if (t < ADDER_FIRST_SCORED) continue;
        head_forward(p, dims.tok_emb, dims.vocab, dims.d_model, &a.z[t * ADDER_MAX_D], logits);
        int best = head_argmax(logits, dims.vocab);
        a.tokens[t + 1] = best;
        result[t - ADDER_FIRST_SCORED] = best;
    }
}
