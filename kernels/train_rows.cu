// The training step of the 311p family, one thread per (sequence, position) row: 4 or 8 sequences a block (160
// or 288 threads; the two kernels at the end), each thread running its position's forward and backward with its
// vectors in registers. A warp holds neighbouring positions of all the block's sequences (lane = s + SEQS·(t mod
// 32/SEQS)), so the attention loops (over the keys j ≤ t, and over the queries t' ≥ j) run about as many trips as
// its rows need rather than the 33 of a warp that spans every position; the lanes past position 32 compute nothing.
// Written for d_model 4, one head, d_ff 8, shareA_tieKV and every rank 1..3 (the host checks `rows_fit` in
// ABI.md); every other supported config runs adder_train_step (train_step.cu), the one-thread-per-sequence kernel.
//
// Rows of one sequence meet twice, through shared memory: the forward's causal attention reads the keys of
// earlier rows and keeps its terms e_tj = exp(s_tj − max_t) (a triangle a sequence, in dynamic shared memory:
// one exp per query-key pair, reused by the backward), and the backward's key/value gradient of row j sums
// over the queries t ≥ j (each key's thread loops over them, in the CPU's order: t = 32 down to j, value term
// then key term). The probabilities are e_tj·(1/sum_t), the values the CPU's recomputation gives. Parameter
// gradients are not kept per thread: in four phases the rows write the vectors whose outer products make a
// parameter's gradient (x and dL/dy of each small matmul) into a staging table, and each gradient entry is then
// summed by one thread over the rows of a group of 4 sequences, in a fixed order (deterministic). Each group
// writes one partial record [G] like adder_train_step's (kernels/ABI.md), so the same reduction and optimizer
// kernels follow; both kernels write the same records in the same order (record r: sequences 4r .. 4r + 3), so
// the step, and a run's weights, do not depend on which one the host chose for the grid.
#include "common.cuh"
#include "embedding.cuh"
#include "head.cuh"

#define RD 4                                 // d_model
#define RF 8                                 // d_ff
#define RR 3                                 // the largest rank
#define ROW_MAX_P 311                        // the family's largest parameter count (every rank 3)
#define ROW_MAX_G (ROW_MAX_P + ADDER_T * RD + 1)
// Staging columns a row: 36, so every row and its 4-vectors (at columns ≡ 0 mod 4) are 16-byte aligned and move
// as one 128-bit access; the 8 rows of each quarter-warp's 128-bit access start 36·4 B apart, in distinct banks.
#define STAGE 36
#define ROW_TRIANGLE (ADDER_T * (ADDER_T + 1) / 2)   // a sequence's attention terms: e_tj, j ≤ t
// Rows are position-major: row t·SEQS + s is position t of the block's sequence s (the staging table, the keys),
// so a warp's rows are 32 consecutive ones. The terms are the launch's dynamic shared memory
// (ADDER_ROW_DYNAMIC_BYTES, common.cuh), e_tj of sequence s at (t(t+1)/2 + j)·SEQS + s: the warp's 32/SEQS
// positions t give distinct t(t+1)/2 mod 32/SEQS (triangular numbers mod a power of two), so the lanes of one
// step of the loops fall in 32 different banks.

#ifdef __CUDACC__
extern __shared__ float row_terms[];
#else
static float row_terms[ADDER_ROWS_MANY_SEQS * ROW_TRIANGLE];   // the CPU harness: blocks run one after another
#endif

// ---- fixed-size pieces (registers, not local memory: every loop bound is a compile-time constant) ----

// y[o] = Σ_{i<in} x[i]·M[i·out + o] for o < out; the rest of y is 0 (Layers.MatMulForward's order).
template <int NI, int NO>
ADDER_DEVICE void rows_matmul(const float* p, int m, int in, int out, const float (&x)[NI], float (&y)[NO])
{
    for (int o = 0; o < NO; o++) {
        float acc = 0.0f;
        for (int i = 0; i < NI; i++)
            if (i < in && o < out) acc = fmaf(x[i], p[m + i * out + o], acc);
        y[o] = acc;
    }
}

// dx[i] += Σ_{o<out} dy[o]·M[i·out + o] for i < in (Layers.MatMulBackward's input gradient, same order).
template <int NI, int NO>
ADDER_DEVICE void rows_matmul_backward(const float* p, int m, int in, int out, const float (&dy)[NO], float (&dx)[NI])
{
    for (int i = 0; i < NI; i++) {
        if (i >= in) continue;
        float acc = dx[i];
        for (int o = 0; o < NO; o++)
            if (o < out) acc = fmaf(dy[o], p[m + i * out + o], acc);
        dx[i] = acc;
    }
}

ADDER_DEVICE void rows_rmsnorm(const float* p, int weight, const float (&x)[RD], float (&hat)[RD], float& rstd, float (&y)[RD])
{
    float ss = 0.0f;
    for (int i = 0; i < RD; i++) ss = fmaf(x[i], x[i], ss);
    rstd = 1.0f / sqrtf(ss * (1.0f / (float)RD) + 1e-8f);
    for (int i = 0; i < RD; i++) { hat[i] = x[i] * rstd; y[i] = hat[i] * p[weight + i]; }
}

// dx += dL/dx of y = hat ⊙ w from dy = dL/dy (rmsnorm_backward without the weight's gradient).
ADDER_DEVICE void rows_rmsnorm_backward(const float* p, int weight, const float (&hat)[RD], float rstd,
                                        const float (&dy)[RD], float (&dx)[RD])
{
    float dHat[RD], meanDHatHat = 0.0f;
    for (int i = 0; i < RD; i++) {
        dHat[i] = dy[i] * p[weight + i];
        meanDHatHat = fmaf(dHat[i], hat[i], meanDHatHat);
    }
    meanDHatHat *= 1.0f / (float)RD;
    for (int i = 0; i < RD; i++) dx[i] += rstd * ((dHat[i] - 0.0f) - hat[i] * meanDHatHat);
}

// The attention score of a query q (unscaled) and a key: (q·scale)·k, as attention_exp_row for head_dim 4.
ADDER_DEVICE float rows_score(const float (&q)[RD], const float (&key)[RD])
{
    float scale = 1.0f / sqrtf((float)RD), s = 0.0f;
    for (int c = 0; c < RD; c++) s = fmaf(q[c] * scale, key[c], s);
    return s;
}

ADDER_DEVICE void rows_unpack(const float4& v, float (&out)[RD]) { out[0] = v.x; out[1] = v.y; out[2] = v.z; out[3] = v.w; }

template <int N> ADDER_DEVICE void rows_put(float* row, int col, const float (&v)[N])
{
    for (int i = 0; i < N; i++) row[col + i] = v[i];
}

// A 4- or 8-vector at a column ≡ 0 mod 4: 128-bit stores.
ADDER_DEVICE void rows_put4(float* row, int col, const float (&v)[4]) { adder_store4(&row[col], v[0], v[1], v[2], v[3]); }

ADDER_DEVICE void rows_put8(float* row, int col, const float (&v)[8])
{
    adder_store4(&row[col], v[0], v[1], v[2], v[3]);
    adder_store4(&row[col + 4], v[4], v[5], v[6], v[7]);
}

// ---- the gradient sums over the block's rows ----
//
// A phase's gradient entries are its tensors' laid end to end: thread e sums entries e, e + threads, ...
// An entry's RowEntry says which staging columns it multiplies: PRODUCT g = Σ_rows x·dy (a matmul's weight: x_i·dy_o;
// a norm's weight: hat_i·dy_i; the loss: loss·1); TOKEN g = Σ_{rows with token v} dy (the token embedding);
// POSITION g = Σ_{rows at position t} dy (the position table). Kept in registers: no local memory.

enum { ROW_NONE, ROW_PRODUCT, ROW_TOKEN, ROW_POSITION };

struct RowEntry { int kind, xc, dc, grad, v; };

// The entry cursor e counts down through a phase's tensors; the tensor it lands in fills the thread's entry.
ADDER_DEVICE void entry_outer(RowEntry& en, int& e, int grad, int in, int out, int xc, int dc)
{
    if (e >= 0 && e < in * out) en = {ROW_PRODUCT, xc + e / out, dc + e % out, grad + e, 0};
    e -= in * out;
}

ADDER_DEVICE void entry_diag(RowEntry& en, int& e, int grad, int n, int xc, int dc)
{
    if (e >= 0 && e < n) en = {ROW_PRODUCT, xc + e, dc + e, grad + e, 0};
    e -= n;
}

ADDER_DEVICE void entry_token(RowEntry& en, int& e, int grad, int tokenColumn, int dc)
{
    int n = ADDER_VOCAB * RD;
    if (e >= 0 && e < n) en = {ROW_TOKEN, tokenColumn, dc + e % RD, grad + e, e / RD};
    e -= n;
}

ADDER_DEVICE void entry_position(RowEntry& en, int& e, int grad, int dc)
{
    int n = ADDER_T * RD;
    if (e >= 0 && e < n) en = {ROW_POSITION, 0, dc + e % RD, grad + e, e / RD};
    e -= n;
}

// Sums the thread's entry over the rows of the block's record group `group` (its ADDER_ROWS_GROUP sequences,
// position by position: four interleaved partial sums, one a sequence, then (s0 + s1) + (s2 + s3): independent
// chains hide the shared-memory latency) into that group's record.
template <int SEQS>
ADDER_DEVICE void row_sum(const RowEntry& en, const float* stage, int group, float* grad)
{
    static_assert(ADDER_ROWS_GROUP == 4, "four interleaved sums, one a sequence of the group");
    const float* rows = &stage[group * ADDER_ROWS_GROUP * STAGE];   // position t of the group's sequence q: (t·SEQS + q)
    if (en.kind == ROW_NONE) return;
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    if (en.kind == ROW_PRODUCT) {
        for (int t = 0; t < ADDER_T; t++) {
            const float* s = &rows[t * SEQS * STAGE];
            a0 = fmaf(s[en.xc], s[en.dc], a0);
            a1 = fmaf(s[STAGE + en.xc], s[STAGE + en.dc], a1);
            a2 = fmaf(s[2 * STAGE + en.xc], s[2 * STAGE + en.dc], a2);
            a3 = fmaf(s[3 * STAGE + en.xc], s[3 * STAGE + en.dc], a3);
        }
    } else if (en.kind == ROW_TOKEN) {
        for (int t = 0; t < ADDER_T; t++) {
            const float* s = &rows[t * SEQS * STAGE];
            a0 += (int)s[en.xc] == en.v ? s[en.dc] : 0.0f;
            a1 += (int)s[STAGE + en.xc] == en.v ? s[STAGE + en.dc] : 0.0f;
            a2 += (int)s[2 * STAGE + en.xc] == en.v ? s[2 * STAGE + en.dc] : 0.0f;
            a3 += (int)s[3 * STAGE + en.xc] == en.v ? s[3 * STAGE + en.dc] : 0.0f;
        }
    } else {
        for (int q = 0; q < ADDER_ROWS_GROUP; q++) a0 += rows[(en.v * SEQS + q) * STAGE + en.dc];
    }
    grad[en.grad] += (a0 + a1) + (a2 + a3);
}

// One phase: select(en, e) runs the entry cursor over the phase's tensors (E entries); the block's threads take
// the (group, entry) sums in turn, w = group·E + entry.
template <int SEQS, typename Select>
ADDER_DEVICE void row_phase(const float* stage, float* grad, Select select)
{
    RowEntry none = {ROW_NONE, 0, 0, 0, 0};
    int E = 0;
    select(none, E);   // the cursor ends at −E
    E = -E;
    for (int w = threadIdx.x; w < E * (SEQS / ADDER_ROWS_GROUP); w += blockDim.x) {
        RowEntry en = {ROW_NONE, 0, 0, 0, 0};
        int group = w / E, e = w % E;
        select(en, e);
        row_sum<SEQS>(en, stage, group, &grad[group * ROW_MAX_G]);
    }
}

// ---- the kernel ----

// The step of one block of SEQS sequences (ADDER_ROWS_THREADS(SEQS) threads).
template <int SEQS>
ADDER_DEVICE void row_step(const AdderDims& dims, const float* params, const unsigned char* tokens, int batch, float* partials)
{
    const int ROW_COUNT = SEQS * ADDER_T;
    __shared__ float sp[ROW_MAX_P];                 // this model's parameters
    __shared__ float table[ADDER_T * RD];           // the position table
    __shared__ float grad[SEQS / ADDER_ROWS_GROUP * ROW_MAX_G];   // a record a group: [P], dPos [T][d], loss
    __shared__ float4 keys[ROW_COUNT];              // k of every row (K and V are tied)
    __shared__ __align__(16) float stage[ROW_COUNT * STAGE];   // the phases' vectors, one row each

    int P = dims.params, G = adder_grad_stride(dims), tid = threadIdx.x;
    // lane = sl + SEQS·(position within the warp); the lanes past position 32 (live false) stand in for position 32
    // where they must compute, and write nothing
    int m = blockIdx.y, sl = tid % SEQS, tp = tid / SEQS, live = tp < ADDER_T, t = live ? tp : ADDER_T - 1;
    int seq = blockIdx.x * SEQS + sl, r = t * SEQS + sl;   // r: this row
    bool valid = seq < batch;
    const float* pg = params + (size_t)m * P;
    for (int k = tid; k < P; k += blockDim.x) sp[k] = pg[k];
    for (int k = tid; k < SEQS / ADDER_ROWS_GROUP * ROW_MAX_G; k += blockDim.x) grad[k] = 0.0f;
    position_table(pg, dims, table);   // ends with a barrier

    const unsigned char* sq = tokens + ((size_t)m * batch + (valid ? seq : 0)) * ADDER_FULL;
    int token = valid ? sq[t] : 0, label = valid && t >= ADDER_FIRST_SCORED ? sq[t + 1] : 0;
    int rq = dims.qkv_rank, ra = dims.proj.rank, r1 = dims.fc1.rank, r2 = dims.fc2.rank;
    float* row = &stage[r * STAGE];

    // ---- forward ----
    float x0[RD], hat1[RD], rstd1, n1[RD], h[RR], q[RD], k[RD];
    for (int i = 0; i < RD; i++) x0[i] = sp[dims.tok_emb + token * RD + i] + table[t * RD + i];
    rows_rmsnorm(sp, dims.ln1_w, x0, hat1, rstd1, n1);
    rows_matmul<RD, RR>(sp, dims.qkv_a, RD, rq, n1, h);
    rows_matmul<RR, RD>(sp, dims.bq, rq, RD, h, q);
    rows_matmul<RR, RD>(sp, dims.bkv, rq, RD, h, k);
    if (live) keys[r] = make_float4(k[0], k[1], k[2], k[3]);
    __syncthreads();

    // causal attention over the sequence's rows 0..t: the max first, then the terms (kept), sum and the values
    float* terms = &row_terms[sl];                  // this sequence's triangle, every SEQS-th float
    float* own = &terms[t * (t + 1) / 2 * SEQS];    // this row's terms: own[j·SEQS] = e_tj
    float mx = -INFINITY;
    float kj[RD];
    for (int j = 0; j <= t; j++) {
        rows_unpack(keys[j * SEQS + sl], kj);
        mx = fmaxf(mx, rows_score(q, kj));
    }
    float sum = 0.0f, y[RD] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int j = 0; j <= t; j++) {
        rows_unpack(keys[j * SEQS + sl], kj);
        float e = adder_exp(rows_score(q, kj) - mx);
        if (live) own[j * SEQS] = e;
        sum += e;
        for (int c = 0; c < RD; c++) y[c] = fmaf(e, kj[c], y[c]);
    }
    float inv = 1.0f / sum;
    for (int c = 0; c < RD; c++) y[c] *= inv;

    float ph[RR], o[RD], xmid[RD], hat2[RD], rstd2, n2[RD];
    rows_matmul<RD, RR>(sp, dims.proj.a, RD, ra, y, ph);
    rows_matmul<RR, RD>(sp, dims.proj.b, ra, RD, ph, o);
    for (int i = 0; i < RD; i++) xmid[i] = x0[i] + o[i];
    rows_rmsnorm(sp, dims.ln2_w, xmid, hat2, rstd2, n2);
    // gelu's term 1 + erf(u/√2) is kept for the backward (one erf a unit, not two)
    float f1h[RR], u[RF], term[RF], g[RF], f2h[RR], x1[RD], hatf[RD], rstdf, z[RD];
    rows_matmul<RD, RR>(sp, dims.fc1.a, RD, r1, n2, f1h);
    rows_matmul<RR, RF>(sp, dims.fc1.b, r1, RF, f1h, u);
    for (int i = 0; i < RF; i++) {
        term[i] = adder_gelu_term(u[i]);
        g[i] = 0.5f * u[i] * term[i];   // adder_gelu
    }
    rows_matmul<RF, RR>(sp, dims.fc2.a, RF, r2, g, f2h);
    rows_matmul<RR, RD>(sp, dims.fc2.b, r2, RD, f2h, o);
    for (int i = 0; i < RD; i++) x1[i] = xmid[i] + o[i];
    rows_rmsnorm(sp, dims.lnf_w, x1, hatf, rstdf, z);

    // ---- backward: head, final norm, MLP ----
    float dLogits[ADDER_VOCAB], dz[RD] = {0.0f, 0.0f, 0.0f, 0.0f}, dx1[RD] = {0.0f, 0.0f, 0.0f, 0.0f}, loss = 0.0f;
    for (int v = 0; v < ADDER_VOCAB; v++) dLogits[v] = 0.0f;
    if (t >= ADDER_FIRST_SCORED) {
        float weight = valid ? 1.0f / (float)(batch * ADDER_SCORED) : 0.0f;
        head_forward(sp, dims.tok_emb, ADDER_VOCAB, RD, z, dLogits);
        loss = cross_entropy_forward_backward(dLogits, ADDER_VOCAB, label, weight) * weight;
        for (int v = 0; v < ADDER_VOCAB; v++)
            for (int i = 0; i < RD; i++) dz[i] = fmaf(dLogits[v], sp[dims.tok_emb + v * RD + i], dz[i]);
        rows_rmsnorm_backward(sp, dims.lnf_w, hatf, rstdf, dz, dx1);
    }
    float df2h[RR] = {0.0f, 0.0f, 0.0f}, dg[RF], df1h[RR] = {0.0f, 0.0f, 0.0f}, dn2[RD] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int i = 0; i < RF; i++) dg[i] = 0.0f;
    rows_matmul_backward<RR, RD>(sp, dims.fc2.b, r2, RD, dx1, df2h);
    rows_matmul_backward<RF, RR>(sp, dims.fc2.a, RF, r2, df2h, dg);
    for (int i = 0; i < RF; i++) dg[i] *= adder_gelu_grad_of(u[i], term[i]);   // dg is dL/du from here
    rows_matmul_backward<RR, RF>(sp, dims.fc1.b, r1, RF, dg, df1h);
    rows_matmul_backward<RD, RR>(sp, dims.fc1.a, RD, r1, df1h, dn2);

    // phase 1: the head (tied embedding), the final norm's weight, fc2.B
    if (live) {
        rows_put4(row, 0, z); rows_put4(row, 4, hatf); rows_put4(row, 8, dz); rows_put4(row, 12, dx1);
        rows_put(row, 16, f2h); rows_put(row, 20, dLogits);
    }
    __syncthreads();
    row_phase<SEQS>(stage, grad, [&](RowEntry& en, int& e) {
        entry_outer(en, e, dims.tok_emb, ADDER_VOCAB, RD, 20, 0);
        entry_diag(en, e, dims.lnf_w, RD, 4, 8);
        entry_outer(en, e, dims.fc2.b, r2, RD, 16, 12);
    });
    __syncthreads();

    // phase 2: fc2.A, fc1.B, fc1.A
    if (live) {
        rows_put8(row, 0, g); rows_put8(row, 8, dg); rows_put4(row, 16, n2);
        rows_put(row, 20, df2h); rows_put(row, 24, f1h); rows_put(row, 28, df1h);
    }
    __syncthreads();
    row_phase<SEQS>(stage, grad, [&](RowEntry& en, int& e) {
        entry_outer(en, e, dims.fc2.a, RF, r2, 0, 20);
        entry_outer(en, e, dims.fc1.b, r1, RF, 24, 8);
        entry_outer(en, e, dims.fc1.a, RD, r1, 16, 28);
    });
    __syncthreads();

    // ---- backward: second norm, projection, attention ----
    float dxmid[RD], dph[RR] = {0.0f, 0.0f, 0.0f}, dy[RD] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int i = 0; i < RD; i++) dxmid[i] = dx1[i];
    rows_rmsnorm_backward(sp, dims.ln2_w, hat2, rstd2, dn2, dxmid);
    rows_matmul_backward<RR, RD>(sp, dims.proj.b, ra, RD, dxmid, dph);
    rows_matmul_backward<RD, RR>(sp, dims.proj.a, RD, ra, dph, dy);

    // this row as the query: p_j = e_j/sum; dp_j = dy·v_j; dq = Σ ds_j·k_j (attention_backward's operations)
    float scale = 1.0f / sqrtf((float)RD), dot = 0.0f, dq[RD] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int j = 0; j <= t; j++) {
        rows_unpack(keys[j * SEQS + sl], kj);
        float pj = own[j * SEQS] * inv, dp = 0.0f;
        for (int c = 0; c < RD; c++) dp = fmaf(dy[c], kj[c], dp);
        dot = fmaf(pj, dp, dot);
    }
    for (int j = 0; j <= t; j++) {
        rows_unpack(keys[j * SEQS + sl], kj);
        float pj = own[j * SEQS] * inv, dp = 0.0f;
        for (int c = 0; c < RD; c++) dp = fmaf(dy[c], kj[c], dp);
        float ds = pj * (dp - dot) * scale;
        for (int c = 0; c < RD; c++) dq[c] = fmaf(ds, kj[c], dq[c]);
    }

    // phase 3: ln2's weight, proj.B, proj.A; and what the keys' threads need of every query row
    if (live) {
        rows_put4(row, 0, hat2); rows_put4(row, 4, dn2); rows_put4(row, 8, dxmid); rows_put4(row, 12, y);
        rows_put4(row, 16, q); rows_put4(row, 20, dy);
        row[24] = inv; row[25] = dot;
        rows_put(row, 26, ph); rows_put(row, 29, dph);
    }
    __syncthreads();
    row_phase<SEQS>(stage, grad, [&](RowEntry& en, int& e) {
        entry_diag(en, e, dims.ln2_w, RD, 0, 4);
        entry_outer(en, e, dims.proj.b, ra, RD, 26, 8);
        entry_outer(en, e, dims.proj.a, RD, ra, 12, 29);
    });
    // this row as the key (and value): dk = Σ_{t' ≥ t} p·dy_t' + ds·q_t', t' from 32 down, as the CPU adds them
    float dk[RD] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int tq = live ? ADDER_T - 1 : -1; tq >= t; tq--) {
        const float* qr = &stage[(tq * SEQS + sl) * STAGE];   // query tq's q, dy, 1/sum and dot
        float qt[RD], dyt[RD];
        rows_unpack(adder_load4(&qr[16]), qt);
        rows_unpack(adder_load4(&qr[20]), dyt);
        float2 invDot = adder_load2(&qr[24]);
        float pj = terms[(tq * (tq + 1) / 2 + t) * SEQS] * invDot.x, dp = 0.0f;
        for (int c = 0; c < RD; c++) dp = fmaf(dyt[c], k[c], dp);
        float ds = pj * (dp - invDot.y) * scale;
        for (int c = 0; c < RD; c++) {
            dk[c] = fmaf(pj, dyt[c], dk[c]);
            dk[c] = fmaf(ds, qt[c], dk[c]);
        }
    }
    __syncthreads();

    // ---- backward: q, k (= v), the first norm, the embeddings ----
    float dh[RR] = {0.0f, 0.0f, 0.0f}, dn1[RD] = {0.0f, 0.0f, 0.0f, 0.0f}, dx0[RD];
    rows_matmul_backward<RR, RD>(sp, dims.bq, rq, RD, dq, dh);
    rows_matmul_backward<RR, RD>(sp, dims.bkv, rq, RD, dk, dh);
    rows_matmul_backward<RD, RR>(sp, dims.qkv_a, RD, rq, dh, dn1);
    for (int i = 0; i < RD; i++) dx0[i] = dxmid[i];
    rows_rmsnorm_backward(sp, dims.ln1_w, hat1, rstd1, dn1, dx0);

    // phase 4: Bq, Bkv, qkv_A, ln1's weight, the token embedding, the position table's gradient, the loss
    if (live) {
        rows_put4(row, 0, dq); rows_put4(row, 4, dk); rows_put4(row, 8, n1); rows_put4(row, 12, hat1);
        rows_put4(row, 16, dn1); rows_put4(row, 20, dx0); rows_put(row, 24, h); rows_put(row, 27, dh);
        row[30] = (float)token; row[31] = loss; row[32] = 1.0f;
    }
    __syncthreads();
    row_phase<SEQS>(stage, grad, [&](RowEntry& en, int& e) {   // 12 + 12 + 12 + 4 + 56 + 132 + 1 = 229 entries at rank 3
        entry_outer(en, e, dims.bq, rq, RD, 24, 0);
        entry_outer(en, e, dims.bkv, rq, RD, 24, 4);
        entry_outer(en, e, dims.qkv_a, RD, rq, 8, 27);
        entry_diag(en, e, dims.ln1_w, RD, 12, 16);
        entry_token(en, e, dims.tok_emb, 30, 20);
        entry_position(en, e, P, 20);
        entry_outer(en, e, G - 1, 1, 1, 31, 32);   // the loss: Σ loss·1
    });
    __syncthreads();

    // record `rec` sums sequences 4·rec .. 4·rec + 3, whichever kernel ran; a group past the batch has none
    int records = (batch + ADDER_ROWS_GROUP - 1) / ADDER_ROWS_GROUP;
    for (int group = 0; group < SEQS / ADDER_ROWS_GROUP; group++) {
        int rec = blockIdx.x * (SEQS / ADDER_ROWS_GROUP) + group;
        if (rec >= records) break;
        float* out = partials + ((size_t)m * records + rec) * G;
        for (int k2 = tid; k2 < G; k2 += blockDim.x) out[k2] = grad[group * ROW_MAX_G + k2];
    }
}

// Few blocks (one model: 512 sequences): 4 sequences a block, so 128 blocks spread over the SMs and each block's
// gradient sums run over 132 rows.
extern "C" __global__ void __launch_bounds__(ADDER_ROWS_THREADS(ADDER_ROWS_FEW_SEQS))
adder_train_rows(AdderDims dims, const float* params, const unsigned char* tokens, int batch, float* partials)
{
    row_step<ADDER_ROWS_FEW_SEQS>(dims, params, tokens, batch, partials);
}

// Many blocks (many models): 8 sequences a block (two record groups) and three blocks an SM (72
// registers, some spills: more warps to hide latency; measured on an H200, 16% faster than two at 64 and 256
// models; BENCHMARKS).
extern "C" __global__ void __launch_bounds__(ADDER_ROWS_THREADS(ADDER_ROWS_MANY_SEQS), 3)
adder_train_rows_many(AdderDims dims, const float* params, const unsigned char* tokens, int batch, float* partials)
{
    row_step<ADDER_ROWS_MANY_SEQS>(dims, params, tokens, batch, partials);
}
