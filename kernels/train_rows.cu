// The training step of the 311p family, one thread per (sequence, position) row: 8 sequences a block, 264
// threads, each running its position's forward and backward with its vectors in registers. Written for
// d_model 4, one head, d_ff 8, shareA_tieKV and every rank 1..3 (the host checks `rows_fit` in ABI.md);
// every other supported config runs adder_train_step (train_step.cu), the one-thread-per-sequence kernel.
//
// Rows of one sequence meet through shared memory: the forward's causal attention reads the keys of earlier
// rows and keeps its exp(s_j − max) terms (one exp per query-key pair, reused by the backward); the backward's
// key/value gradient of row j sums over the queries t ≥ j (each key's thread loops over them, in the CPU's
// order: t = 32 down to j, value term then key term). Parameter gradients are not kept per thread: in four
// phases the rows write the vectors whose outer products make a parameter's gradient (x and dL/dy of each
// small matmul) into a staging table, and each of the block's gradient entries is then summed over the 264
// rows by one thread, in a fixed order (deterministic). The block writes one partial record [G] like
// adder_train_step (kernels/ABI.md), so the same reduction and optimizer kernels follow.
//
// Shared memory is 48 KB (static; a carveout preference lets several blocks share an SM), so the staging table
// serves twice: first for the attention terms, then for the phases. Everything after the attention output y
// (the MLP, the norms, the head and their backward: "the tail") is cheap next to attention, so it is computed
// once to get dL/dy and again after attention's backward, rather than held in registers meanwhile.
#include "common.cuh"
#include "embedding.cuh"
#include "head.cuh"

#define ROW_SEQS 8                           // sequences per block
#define ROW_COUNT (ROW_SEQS * ADDER_T)       // rows = threads per block: 264
#define RD 4                                 // d_model
#define RF 8                                 // d_ff
#define RR 3                                 // the largest rank
#define ROW_MAX_P 311                        // the family's largest parameter count (every rank 3)
#define ROW_MAX_G (ROW_MAX_P + ADDER_T * RD + 1)
#define STAGE 33                             // staging columns a row (odd: a warp's rows hit distinct banks)
#define XREC 10                              // a query row's record for the keys' threads: q, dL/dy, 1/sum, dot

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
ADDER_DEVICE float rows_score(const float* q, const float* key)
{
    float scale = 1.0f / sqrtf((float)RD), s = 0.0f;
    for (int c = 0; c < RD; c++) s = fmaf(q[c] * scale, key[c], s);
    return s;
}

template <int N> ADDER_DEVICE void rows_put(float* row, int col, const float (&v)[N])
{
    for (int i = 0; i < N; i++) row[col + i] = v[i];
}

// ---- the gradient sums over the block's rows ----

enum { ROW_OUTER, ROW_DIAG, ROW_TOKEN, ROW_POSITION, ROW_LOSS };

// One gradient tensor's sum over rows, from staging columns: OUTER g[i·out + o] = Σ x_i·dy_o (x at column xc,
// dy at dc); DIAG g[i] = Σ x_i·dy_i (norm weights); TOKEN g[v·out + i] = Σ_{rows with token v} dy_i (the
// token at column xc); POSITION g[t·out + i] = Σ_{rows at position t} dy_i; LOSS g[0] = Σ x.
struct RowTerm { int kind, grad, in, out, xc, dc; };

ADDER_DEVICE int row_term_size(const RowTerm& tm)
{
    return tm.kind == ROW_DIAG ? tm.in : tm.kind == ROW_LOSS ? 1 : tm.in * tm.out;
}

// Thread e of the block sums entries e, e + blockDim, ... of the terms laid end to end, each over all rows
// (four interleaved partial sums, rows r ≡ 0..3 mod 4, then (s0 + s1) + (s2 + s3): independent chains hide
// the shared-memory latency), and adds it into its place of the block's gradient record. No two threads
// share an entry.
ADDER_DEVICE void row_sums(const RowTerm* terms, int count, const float* stage, float* grad)
{
    int total = 0;
    for (int k = 0; k < count; k++) total += row_term_size(terms[k]);
    for (int e = threadIdx.x; e < total; e += blockDim.x) {
        int k = 0, local = e;
        while (local >= row_term_size(terms[k])) { local -= row_term_size(terms[k]); k++; }
        const RowTerm tm = terms[k];
        float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        int index = local;
        if (tm.kind == ROW_POSITION) {
            int t = local / tm.out, i = local % tm.out;
            for (int s = 0; s < ROW_SEQS; s++) a[0] += stage[(s * ADDER_T + t) * STAGE + tm.dc + i];
        } else {
            // x and dy columns of this entry (TOKEN: x is the token, compared with v; LOSS: x alone)
            int xc, dc, v = -1;
            if (tm.kind == ROW_OUTER) { xc = tm.xc + local / tm.out; dc = tm.dc + local % tm.out; }
            else if (tm.kind == ROW_DIAG) { xc = tm.xc + local; dc = tm.dc + local; }
            else if (tm.kind == ROW_TOKEN) { v = local / tm.out; xc = tm.xc; dc = tm.dc + local % tm.out; }
            else { xc = tm.xc; dc = -1; index = 0; }
            for (int r = 0; r < ROW_COUNT; r += 4) {
                for (int u = 0; u < 4; u++) {
                    const float* row = &stage[(r + u) * STAGE];
                    if (tm.kind == ROW_TOKEN) { if ((int)row[xc] == v) a[u] += row[dc]; }
                    else if (dc < 0) a[u] += row[xc];
                    else a[u] = fmaf(row[xc], row[dc], a[u]);
                }
            }
        }
        grad[tm.grad + index] += (a[0] + a[1]) + (a[2] + a[3]);
    }
}

// The tail of a row: from the attention output y and the embedding x0, the projection, the second norm, the MLP,
// the final norm, the head and cross-entropy (scored rows), and their backward down to dL/dy. Every vector a
// phase stages is kept here.
struct RowTail {
    float ph[RR], xmid[RD], hat2[RD], rstd2, n2[RD], f1h[RR], u[RF], g[RF], f2h[RR], hatf[RD], rstdf, z[RD];
    float dLogits[ADDER_VOCAB], dz[RD], dx1[RD], df2h[RR], du[RF], df1h[RR], dn2[RD], dxmid[RD], dph[RR], dy[RD];
    float loss;
};

ADDER_DEVICE void row_tail(const float* sp, const AdderDims& dims, const float (&x0)[RD], const float (&y)[RD],
                           bool scored, int label, float weight, RowTail& a)
{
    int ra = dims.proj.rank, r1 = dims.fc1.rank, r2 = dims.fc2.rank;
    float o[RD], x1[RD];
    rows_matmul<RD, RR>(sp, dims.proj.a, RD, ra, y, a.ph);
    rows_matmul<RR, RD>(sp, dims.proj.b, ra, RD, a.ph, o);
    for (int i = 0; i < RD; i++) a.xmid[i] = x0[i] + o[i];
    rows_rmsnorm(sp, dims.ln2_w, a.xmid, a.hat2, a.rstd2, a.n2);
    rows_matmul<RD, RR>(sp, dims.fc1.a, RD, r1, a.n2, a.f1h);
    rows_matmul<RR, RF>(sp, dims.fc1.b, r1, RF, a.f1h, a.u);
    for (int i = 0; i < RF; i++) a.g[i] = adder_gelu(a.u[i]);
    rows_matmul<RF, RR>(sp, dims.fc2.a, RF, r2, a.g, a.f2h);
    rows_matmul<RR, RD>(sp, dims.fc2.b, r2, RD, a.f2h, o);
    for (int i = 0; i < RD; i++) x1[i] = a.xmid[i] + o[i];
    rows_rmsnorm(sp, dims.lnf_w, x1, a.hatf, a.rstdf, a.z);

    // head and final norm (scored rows; the others get no gradient from here)
    for (int v = 0; v < ADDER_VOCAB; v++) a.dLogits[v] = 0.0f;
    for (int i = 0; i < RD; i++) { a.dz[i] = 0.0f; a.dx1[i] = 0.0f; }
    a.loss = 0.0f;
    if (scored) {
        head_forward(sp, dims.tok_emb, ADDER_VOCAB, RD, a.z, a.dLogits);
        a.loss = cross_entropy_forward_backward(a.dLogits, ADDER_VOCAB, label, weight) * weight;
        for (int v = 0; v < ADDER_VOCAB; v++)
            for (int i = 0; i < RD; i++) a.dz[i] = fmaf(a.dLogits[v], sp[dims.tok_emb + v * RD + i], a.dz[i]);
        rows_rmsnorm_backward(sp, dims.lnf_w, a.hatf, a.rstdf, a.dz, a.dx1);
    }
    // MLP, second norm, projection
    for (int j = 0; j < RR; j++) { a.df2h[j] = 0.0f; a.df1h[j] = 0.0f; a.dph[j] = 0.0f; }
    for (int i = 0; i < RF; i++) a.du[i] = 0.0f;
    for (int i = 0; i < RD; i++) { a.dn2[i] = 0.0f; a.dy[i] = 0.0f; }
    rows_matmul_backward<RR, RD>(sp, dims.fc2.b, r2, RD, a.dx1, a.df2h);
    rows_matmul_backward<RF, RR>(sp, dims.fc2.a, RF, r2, a.df2h, a.du);
    for (int i = 0; i < RF; i++) a.du[i] *= adder_gelu_grad(a.u[i]);   // dL/dg becomes dL/du
    rows_matmul_backward<RR, RF>(sp, dims.fc1.b, r1, RF, a.du, a.df1h);
    rows_matmul_backward<RD, RR>(sp, dims.fc1.a, RD, r1, a.df1h, a.dn2);
    for (int i = 0; i < RD; i++) a.dxmid[i] = a.dx1[i];
    rows_rmsnorm_backward(sp, dims.ln2_w, a.hat2, a.rstd2, a.dn2, a.dxmid);
    rows_matmul_backward<RR, RD>(sp, dims.proj.b, ra, RD, a.dxmid, a.dph);
    rows_matmul_backward<RD, RR>(sp, dims.proj.a, RD, ra, a.dph, a.dy);
}

// ---- the kernel ----

#ifndef ROW_MIN_BLOCKS
#define ROW_MIN_BLOCKS 3   // blocks an SM must hold: caps registers at 65,536 / (3 · 264) (measured in BENCHMARKS)
#endif

extern "C" __global__ void __launch_bounds__(ROW_COUNT, ROW_MIN_BLOCKS)
adder_train_rows(AdderDims dims, const float* params, const unsigned char* tokens, int batch, float* partials)
{
    __shared__ float sp[ROW_MAX_P];                 // this model's parameters
    __shared__ float table[ADDER_T * RD];           // the position table
    __shared__ float grad[ROW_MAX_G];               // the block's gradient record: [P], dPos [T][d], loss
    __shared__ float kx[ROW_COUNT * XREC];          // k of every row [row][RD] (K and V are tied); then [row][XREC]
    __shared__ float stage[ROW_COUNT * STAGE];      // attention's e_j [row][j ≤ t]; then the phases' vectors

    int P = dims.params, G = adder_grad_stride(dims), tid = threadIdx.x;
    int m = blockIdx.y, sl = tid / ADDER_T, t = tid % ADDER_T, first = sl * ADDER_T;   // first: row of position 0
    int seq = blockIdx.x * ROW_SEQS + sl;
    bool valid = seq < batch;
    const float* pg = params + (size_t)m * P;
    for (int k = tid; k < P; k += blockDim.x) sp[k] = pg[k];
    for (int k = tid; k < G; k += blockDim.x) grad[k] = 0.0f;
    position_table(pg, dims, table);   // ends with a barrier

    const unsigned char* sq = tokens + ((size_t)m * batch + (valid ? seq : 0)) * ADDER_FULL;
    bool scored = t >= ADDER_FIRST_SCORED;
    int token = valid ? sq[t] : 0, label = valid && scored ? sq[t + 1] : 0;
    float weight = valid ? 1.0f / (float)(batch * ADDER_SCORED) : 0.0f;
    int rq = dims.qkv_rank;
    float* row = &stage[tid * STAGE];

    // ---- forward to the attention output ----
    float x0[RD], hat1[RD], rstd1, n1[RD], h[RR], q[RD], k[RD];
    for (int i = 0; i < RD; i++) x0[i] = sp[dims.tok_emb + token * RD + i] + table[t * RD + i];
    rows_rmsnorm(sp, dims.ln1_w, x0, hat1, rstd1, n1);
    rows_matmul<RD, RR>(sp, dims.qkv_a, RD, rq, n1, h);
    rows_matmul<RR, RD>(sp, dims.bq, rq, RD, h, q);
    rows_matmul<RR, RD>(sp, dims.bkv, rq, RD, h, k);
    for (int c = 0; c < RD; c++) kx[tid * RD + c] = k[c];
    __syncthreads();

    // causal attention over rows first..first+t: the max first, then e_j = exp(s_j − max) (kept), sum, values
    float mx = -INFINITY;
    for (int j = 0; j <= t; j++) mx = fmaxf(mx, rows_score(q, &kx[(first + j) * RD]));
    float sum = 0.0f, y[RD] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int j = 0; j <= t; j++) {
        const float* kj = &kx[(first + j) * RD];
        float e = adder_exp(rows_score(q, kj) - mx);
        row[j] = e;
        sum += e;
        for (int c = 0; c < RD; c++) y[c] = fmaf(e, kj[c], y[c]);
    }
    float inv = 1.0f / sum;
    for (int c = 0; c < RD; c++) y[c] *= inv;

    // ---- backward of attention ----
    float dy[RD];
    {
        RowTail a;
        row_tail(sp, dims, x0, y, scored, label, weight, a);
        for (int c = 0; c < RD; c++) dy[c] = a.dy[c];
    }
    // this row as the query: p_j = e_j/sum; dp_j = dy·v_j; dq = Σ ds_j·k_j (attention_backward's operations)
    float scale = 1.0f / sqrtf((float)RD), dot = 0.0f, dq[RD] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int j = 0; j <= t; j++) {
        const float* kj = &kx[(first + j) * RD];
        float dp = 0.0f;
        for (int c = 0; c < RD; c++) dp = fmaf(dy[c], kj[c], dp);
        dot = fmaf(row[j] * inv, dp, dot);
    }
    for (int j = 0; j <= t; j++) {
        const float* kj = &kx[(first + j) * RD];
        float pj = row[j] * inv, dp = 0.0f;
        for (int c = 0; c < RD; c++) dp = fmaf(dy[c], kj[c], dp);
        float ds = pj * (dp - dot) * scale;
        for (int c = 0; c < RD; c++) dq[c] = fmaf(ds, kj[c], dq[c]);
    }
    __syncthreads();   // every row is done with the keys: their space takes the query records
    float* xr = &kx[tid * XREC];
    for (int c = 0; c < RD; c++) { xr[c] = q[c]; xr[RD + c] = dy[c]; }
    xr[8] = inv; xr[9] = dot;
    __syncthreads();
    // this row as the key (and value): dk = Σ_{t' ≥ t} p·dy_t' + ds·q_t', t' from 32 down, as the CPU adds them
    float dk[RD] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int tq = ADDER_T - 1; tq >= t; tq--) {
        const float* x = &kx[(first + tq) * XREC];
        float pj = stage[(first + tq) * STAGE + t] * x[8], dp = 0.0f;
        for (int c = 0; c < RD; c++) dp = fmaf(x[RD + c], k[c], dp);
        float ds = pj * (dp - x[9]) * scale;
        for (int c = 0; c < RD; c++) {
            dk[c] = fmaf(pj, x[RD + c], dk[c]);
            dk[c] = fmaf(ds, x[c], dk[c]);
        }
    }
    __syncthreads();   // the attention terms are read: the staging table is free

    // ---- the tail's parameter gradients (its vectors again, the same values) ----
    RowTail a;
    row_tail(sp, dims, x0, y, scored, label, weight, a);
    int ra = dims.proj.rank, r1 = dims.fc1.rank, r2 = dims.fc2.rank;
    // phase 1: the head (tied embedding), the final norm's weight, fc2.B
    rows_put(row, 0, a.z); rows_put(row, 4, a.dLogits); rows_put(row, 18, a.hatf); rows_put(row, 22, a.dz);
    rows_put(row, 26, a.f2h); rows_put(row, 29, a.dx1);
    __syncthreads();
    {
        RowTerm terms[3] = {{ROW_OUTER, dims.tok_emb, ADDER_VOCAB, RD, 4, 0}, {ROW_DIAG, dims.lnf_w, RD, RD, 18, 22},
                            {ROW_OUTER, dims.fc2.b, r2, RD, 26, 29}};
        row_sums(terms, 3, stage, grad);
    }
    __syncthreads();
    // phase 2: fc2.A, fc1.B, fc1.A
    rows_put(row, 0, a.g); rows_put(row, 8, a.df2h); rows_put(row, 11, a.f1h); rows_put(row, 14, a.du);
    rows_put(row, 22, a.n2); rows_put(row, 26, a.df1h);
    __syncthreads();
    {
        RowTerm terms[3] = {{ROW_OUTER, dims.fc2.a, RF, r2, 0, 8}, {ROW_OUTER, dims.fc1.b, r1, RF, 11, 14},
                            {ROW_OUTER, dims.fc1.a, RD, r1, 22, 26}};
        row_sums(terms, 3, stage, grad);
    }
    __syncthreads();
    // phase 3: ln2's weight, proj.B, proj.A
    rows_put(row, 0, a.hat2); rows_put(row, 4, a.dn2); rows_put(row, 8, a.ph); rows_put(row, 11, a.dxmid);
    rows_put(row, 15, y); rows_put(row, 19, a.dph);
    float dxmid[RD], loss = a.loss;
    for (int i = 0; i < RD; i++) dxmid[i] = a.dxmid[i];
    __syncthreads();
    {
        RowTerm terms[3] = {{ROW_DIAG, dims.ln2_w, RD, RD, 0, 4}, {ROW_OUTER, dims.proj.b, ra, RD, 8, 11},
                            {ROW_OUTER, dims.proj.a, RD, ra, 15, 19}};
        row_sums(terms, 3, stage, grad);
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
    rows_put(row, 0, h); rows_put(row, 3, dq); rows_put(row, 7, dk); rows_put(row, 11, n1);
    rows_put(row, 15, dh); rows_put(row, 18, hat1); rows_put(row, 22, dn1); rows_put(row, 26, dx0);
    row[30] = (float)token; row[31] = loss;
    __syncthreads();
    {
        RowTerm terms[7] = {{ROW_OUTER, dims.bq, rq, RD, 0, 3}, {ROW_OUTER, dims.bkv, rq, RD, 0, 7},
                            {ROW_OUTER, dims.qkv_a, RD, rq, 11, 15}, {ROW_DIAG, dims.ln1_w, RD, RD, 18, 22},
                            {ROW_TOKEN, dims.tok_emb, ADDER_VOCAB, RD, 30, 26}, {ROW_POSITION, P, ADDER_T, RD, 0, 26},
                            {ROW_LOSS, G - 1, 1, 1, 31, 0}};
        row_sums(terms, 7, stage, grad);
    }
    __syncthreads();

    float* out = partials + ((size_t)m * gridDim.x + blockIdx.x) * G;
    for (int k2 = tid; k2 < G; k2 += blockDim.x) out[k2] = grad[k2];
}
