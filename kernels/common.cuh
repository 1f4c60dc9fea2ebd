// Shared definitions of the Adder kernels: the host ABI's dims struct (kernels/ABI.md), the supported limits,
// and the float functions of src/Adder.Core/Cpu/LaneMath.cs, ported operation for operation so the GPU
// computes what one CPU lane computes. Compiled by nvcc (PTX) and by g++ with cpu-harness/shim.h.
#pragma once

#define ADDER_DEVICE __device__ __forceinline__

// Limits (kernels/ABI.md, "Supported configs"); the host refuses configs outside them.
#define ADDER_T 33              // input positions = max_seq_len
#define ADDER_FULL 34           // tokens of a full sequence
#define ADDER_PROMPT 22
#define ADDER_SUM_DIGITS 11
#define ADDER_FIRST_SCORED 21
#define ADDER_SCORED 12
#define ADDER_VOCAB 14
#define ADDER_MAX_D 8
#define ADDER_MAX_F 32
#define ADDER_MAX_R 8
#define ADDER_MAX_PARAMS 1616
// adder_train_rows and adder_train_rows_many (kernels/ABI.md): sequences a block, the block's threads (a warp holds
// 32/seqs positions of every sequence, so ⌈33·seqs/32⌉ warps; the lanes past position 32 only join the barriers),
// and the dynamic shared memory a launch passes: each sequence's attention terms, a triangle of 33·34/2 floats.
#define ADDER_ROWS_FEW_SEQS 4
#define ADDER_ROWS_MANY_SEQS 8
#define ADDER_ROWS_THREADS(seqs) (32 * ((ADDER_T * (seqs) + 31) / 32))
// Both write one partial record a group of 4 sequences: ceil(batch / 4) records a model, whichever ran.
#define ADDER_ROWS_GROUP 4
#define ADDER_ROW_DYNAMIC_BYTES(seqs) ((seqs) * (ADDER_T * (ADDER_T + 1) / 2) * 4)
// One gradient record: P parameter gradients, the position table's gradient [T][D], the loss.
#define ADDER_MAX_G (ADDER_MAX_PARAMS + ADDER_T * ADDER_MAX_D + 1)

// LinearView(In, Out, Rank, A, B, W): y = x·A·B (A in×r, B r×out) when rank > 0, else y = x·Wᵀ (W out×in).
typedef struct { int in, out, rank, a, b, w; } AdderLinear;

typedef struct {
    int params, d_model, n_head, d_ff, vocab, seq_len, shared_a, tok_emb;
    AdderLinear pos;
    int ln1_w, qkv_a, qkv_rank, bq, bkv;
    AdderLinear q, k, v, proj;
    int ln2_w;
    AdderLinear fc1, fc2;
    int lnf_w;
} AdderDims;

ADDER_DEVICE int adder_grad_stride(const AdderDims& d) { return d.params + d.seq_len * d.d_model + 1; }

// ---- LaneMath ----

// erf: the XLA/Eigen rational approximation (LaneMath.Erf).
ADDER_DEVICE float adder_erf(float x)
{
    x = fminf(fmaxf(x, -4.0f), 4.0f);
    float x2 = x * x;
    float p = fmaf(x2, -2.72614225801306e-10f, 2.77068142495902e-08f);
    p = fmaf(x2, p, -2.10102402082508e-06f);
    p = fmaf(x2, p, -5.69250639462346e-05f);
    p = fmaf(x2, p, -7.34990630326855e-04f);
    p = fmaf(x2, p, -2.95459980854025e-03f);
    p = fmaf(x2, p, -1.60960333262415e-02f);
    p = p * x;
    float q = fmaf(x2, -1.45660718464996e-05f, -2.13374055278905e-04f);
    q = fmaf(x2, q, -1.68282697438203e-03f);
    q = fmaf(x2, q, -7.37332916720468e-03f);
    q = fmaf(x2, q, -1.42647390514189e-02f);
    return p / q;
}

// e^x: Cephes expf (LaneMath.Exp): reduction by ln 2, degree-6 polynomial, scale by 2^n built in the exponent.
ADDER_DEVICE float adder_exp(float x)
{
    x = fminf(fmaxf(x, -87.3f), 88.7f);
    float n = rintf(x * 1.44269504088896341f);   // Vector512.Round: to nearest, ties to even
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = fmaf(1.9875691500e-4f, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r + 1.0f);
    float scale = __int_as_float(((int)n + 127) << 23);
    return p * scale;
}

#define ADDER_INV_SQRT2 0.70710678118654752f
#define ADDER_INV_SQRT2PI 0.39894228040143268f

// Exact GELU 0.5·u·(1 + erf(u/√2)) and its derivative Φ(u) + u·φ(u), as LaneMath.Gelu/GeluGrad. Both use the
// term 1 + erf(u/√2): a kernel that keeps it from the forward (train_rows.cu) passes it to the backward.
ADDER_DEVICE float adder_gelu_term(float u) { return 1.0f + adder_erf(u * ADDER_INV_SQRT2); }

ADDER_DEVICE float adder_gelu(float u) { return 0.5f * u * adder_gelu_term(u); }

ADDER_DEVICE float adder_gelu_grad_of(float u, float term)
{
    float cdf = 0.5f * term;
    float pdf = adder_exp(-0.5f * u * u) * ADDER_INV_SQRT2PI;
    return fmaf(u, pdf, cdf);
}

ADDER_DEVICE float adder_gelu_grad(float u) { return adder_gelu_grad_of(u, adder_gelu_term(u)); }

// 16- and 8-byte shared-memory accesses (one instruction instead of four or two); p must be aligned.
ADDER_DEVICE void adder_store4(float* p, float a, float b, float c, float d) { *reinterpret_cast<float4*>(p) = make_float4(a, b, c, d); }
ADDER_DEVICE float4 adder_load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
ADDER_DEVICE float2 adder_load2(const float* p) { return *reinterpret_cast<const float2*>(p); }
