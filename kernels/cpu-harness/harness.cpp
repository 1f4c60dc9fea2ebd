// Runs the Adder kernels on the CPU: `harness KERNEL IN OUT`. IN and OUT are files of named arrays:
// repeated { int32 name length, name (ASCII), int32 type (0 int32, 1 float32, 2 float64, 3 int64),
// int64 count, count values }, little-endian. The runner reads the kernel's inputs by name, allocates every
// device buffer at its exact size (so AddressSanitizer sees an out-of-bounds access), fills output buffers
// with NaN or -1 (so an unwritten element shows), launches the kernel over its grid (blocks one after
// another, the threads of a block as fibers, kernels/cpu-harness/shim.h) and writes all arrays to OUT.
// A failure is one line on stderr and exit 1.
// Built with -DADDER_GPU (scripts/build-gpu-harness.sh) the same runner launches the committed PTX on a GPU
// through the driver API instead (ADDER_PTX_DIR, default kernels/ptx); ADDER_REPEAT=N also times N launches.
// `harness compare A B` compares two such files (the GPU's outputs with the CPU harness's);
// `harness replicate IN OUT M N` scales a train-step, logits or decode input to M models of N sequences
// (cycling through its models and sequences), for timing.
#include <ucontext.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define ADDER_ASAN 1
#endif
#include "../common.cuh"

adder_dim3 threadIdx, blockIdx, blockDim, gridDim;

extern "C" {
void adder_train_step(AdderDims dims, const float* params, const unsigned char* tokens, int batch, float* partials);
void adder_train_rows(AdderDims dims, const float* params, const unsigned char* tokens, int batch, float* partials);
void adder_train_rows_many(AdderDims dims, const float* params, const unsigned char* tokens, int batch, float* partials);
void adder_reduce_gradients(AdderDims dims, const float* params, const float* partials, int nblk, float* grad, float* loss);
void adder_optimizer_step(AdderDims dims, const float* partials, int nblk, const double* settings, float* params,
                          float* adam_m, float* adam_v, long long* step, float* loss, double* norm, float* grokfast_ema);
void adder_logits(AdderDims dims, const float* params, const int* tokens, int count, float* logits);
void adder_decode(AdderDims dims, const float* params, const int* prompts, int count, int* out);
}

[[noreturn]] static void fail(const std::string& message)
{
    fprintf(stderr, "harness: %s\n", message.c_str());
    exit(1);
}

// ---- fibers ----

namespace {
struct Fiber {
    ucontext_t context;
    std::vector<char> stack;
    unsigned tid = 0;
    bool done = false;
};

ucontext_t scheduler;
Fiber* current = nullptr;
const std::function<void()>* body = nullptr;
const size_t StackSize = 1 << 20;
#ifdef ADDER_ASAN
const void* schedulerStackBottom = nullptr;
size_t schedulerStackSize = 0;
#endif

void fiber_main()
{
#ifdef ADDER_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &schedulerStackBottom, &schedulerStackSize);
#endif
    (*body)();
    current->done = true;
#ifdef ADDER_ASAN
    __sanitizer_start_switch_fiber(nullptr, schedulerStackBottom, schedulerStackSize);   // this fiber ends
#endif
    setcontext(&scheduler);
}

void resume(Fiber& f)
{
    current = &f;
    threadIdx = {f.tid, 0, 0};
#ifdef ADDER_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f.stack.data(), f.stack.size());
#endif
    swapcontext(&scheduler, &f.context);
#ifdef ADDER_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

__attribute__((noinline)) void start_fiber(Fiber& f, unsigned tid)
{
    f.tid = tid;
    f.done = false;
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack.data();
    f.context.uc_stack.ss_size = f.stack.size();
    f.context.uc_link = nullptr;
    makecontext(&f.context, fiber_main, 0);
}

// Runs one block: each round resumes every fiber until it reaches a barrier or returns. A round where some
// threads returned while others wait at a barrier is a divergent barrier: an error, as on the GPU.
void run_block(unsigned threads, const std::function<void()>& kernel, std::vector<Fiber>& fibers)
{
    body = &kernel;
    for (unsigned i = 0; i < threads; i++) start_fiber(fibers[i], i);
    for (;;) {
        unsigned done = 0;
        for (unsigned i = 0; i < threads; i++) {
            if (!fibers[i].done) resume(fibers[i]);
            if (fibers[i].done) done++;
        }
        if (done == threads) return;
        if (done > 0) fail("divergent __syncthreads: " + std::to_string(done) + " of " + std::to_string(threads) +
                           " threads returned while the others wait at a barrier");
    }
}

void launch(unsigned gx, unsigned gy, unsigned bx, const std::function<void()>& kernel)
{
    if (gx == 0 || gy == 0 || bx == 0 || bx > 1024) fail("bad launch shape");
    std::vector<Fiber> fibers(bx);
    for (auto& f : fibers) f.stack.resize(StackSize);
    gridDim = {gx, gy, 1};
    blockDim = {bx, 1, 1};
    for (unsigned y = 0; y < gy; y++)
        for (unsigned x = 0; x < gx; x++) {
            blockIdx = {x, y, 0};
            run_block(bx, kernel, fibers);
        }
}
}   // namespace

#ifndef ADDER_GPU
#define LAUNCH(module, kernel, gx, gy, bx, ...) launch(gx, gy, bx, [&] { kernel(__VA_ARGS__); })
#endif

void __syncthreads()
{
    Fiber* f = current;
#ifdef ADDER_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, schedulerStackBottom, schedulerStackSize);
#endif
    swapcontext(&f->context, &scheduler);
#ifdef ADDER_ASAN
    __sanitizer_finish_switch_fiber(fake, &schedulerStackBottom, &schedulerStackSize);
#endif
    current = f;
}

// ---- named arrays ----

namespace {
struct Array {
    int type = 0;              // 0 int32, 1 float32, 2 float64, 3 int64, 4 uint8 (made here, never read or written)
    std::vector<char> bytes;   // exact size: count · element size
    size_t count() const { return bytes.size() / element_size(type); }
    static size_t element_size(int t) { return t == 4 ? 1 : t == 0 || t == 1 ? 4 : 8; }
};
std::map<std::string, Array*> arrays;   // heap-allocated one by one, so each has its own ASan redzones

void read_file(const char* path)
{
    FILE* f = fopen(path, "rb");
    if (!f) fail(std::string("cannot open ") + path);
    int32_t n;
    while (fread(&n, 4, 1, f) == 1) {
        if (n <= 0 || n > 100) fail("bad array name length");
        std::string name(n, '\0');
        int32_t type;
        int64_t count;
        if (fread(name.data(), 1, n, f) != (size_t)n || fread(&type, 4, 1, f) != 1 || fread(&count, 8, 1, f) != 1)
            fail("truncated input");
        if (type < 0 || type > 3 || count < 0 || count > (1ll << 32)) fail("bad array header for " + name);
        auto* a = new Array{type, std::vector<char>(count * Array::element_size(type))};
        if (fread(a->bytes.data(), 1, a->bytes.size(), f) != a->bytes.size()) fail("truncated array " + name);
        delete arrays[name];
        arrays[name] = a;
    }
    fclose(f);
}

void write_file(const char* path)
{
    std::string temp = std::string(path) + ".tmp";
    FILE* f = fopen(temp.c_str(), "wb");
    if (!f) fail(std::string("cannot write ") + path);
    for (auto& [name, a] : arrays) {
        int32_t n = (int32_t)name.size(), type = a->type;
        int64_t count = (int64_t)a->count();
        fwrite(&n, 4, 1, f);
        fwrite(name.data(), 1, n, f);
        fwrite(&type, 4, 1, f);
        fwrite(&count, 8, 1, f);
        fwrite(a->bytes.data(), 1, a->bytes.size(), f);
    }
    if (fclose(f) != 0 || rename(temp.c_str(), path) != 0) fail(std::string("cannot write ") + path);
}

Array& get(const std::string& name, int type, size_t count)
{
    auto it = arrays.find(name);
    if (it == arrays.end()) fail("input has no array '" + name + "'");
    if (it->second->type != type) fail("array '" + name + "' has the wrong type");
    if (it->second->count() != count)
        fail("array '" + name + "' has " + std::to_string(it->second->count()) + " values, expected " + std::to_string(count));
    return *it->second;
}

int scalar(const std::string& name)
{
    auto it = arrays.find(name);
    if (it == arrays.end() || it->second->type != 0 || it->second->count() != 1) fail("input needs the int '" + name + "'");
    int v;
    memcpy(&v, it->second->bytes.data(), 4);
    return v;
}

template <typename T> T* data(Array& a) { return reinterpret_cast<T*>(a.bytes.data()); }

// A fresh output array filled with a value the kernel must overwrite.
template <typename T> T* output(const std::string& name, int type, size_t count, T fill)
{
    auto* a = new Array{type, std::vector<char>(count * Array::element_size(type))};
    for (size_t i = 0; i < count; i++) data<T>(*a)[i] = fill;
    delete arrays[name];
    arrays[name] = a;
    return data<T>(*a);
}

AdderDims dims_input()
{
    static_assert(sizeof(AdderDims) == 57 * 4, "AdderDims is 57 int32 (kernels/ABI.md)");
    Array& a = get("dims", 0, 57);
    AdderDims d;
    memcpy(&d, a.bytes.data(), sizeof d);
    return d;
}

unsigned blocks(int n, int block) { return (unsigned)((n + block - 1) / block); }
const float NaN = std::numeric_limits<float>::quiet_NaN();
}   // namespace


// ---- the GPU: the committed PTX through the driver API ----
#ifdef ADDER_GPU
#include <cuda.h>
#include <chrono>
#include <tuple>

namespace {
void check(CUresult r, const char* call)
{
    if (r == CUDA_SUCCESS) return;
    const char* name = nullptr;
    cuGetErrorName(r, &name);
    fail(std::string(call) + " failed: " + (name ? name : "unknown CUresult"));
}
#define CU(call) check(call, #call)

CUcontext context;
std::map<std::string, CUmodule> modules;
std::map<const Array*, CUdeviceptr> buffers;

CUfunction gpu_function(const std::string& module, const char* name)
{
    if (!context) {
        CU(cuInit(0));
        CUdevice device;
        CU(cuDeviceGet(&device, 0));
        // the primary context: cuCtxCreate's signature changed in CUDA 13 (cuCtxCreate_v4), this one did not
        CU(cuDevicePrimaryCtxRetain(&context, device));
        CU(cuCtxSetCurrent(context));
        CU(cuCtxSetLimit(CU_LIMIT_STACK_SIZE, 40960));   // kernels/ABI.md, "Local memory"
    }
    if (!modules.count(module)) {
        const char* dir = getenv("ADDER_PTX_DIR");
        std::string path = std::string(dir ? dir : "kernels/ptx") + "/" + module + ".ptx";
        FILE* f = fopen(path.c_str(), "rb");
        if (!f) fail("cannot open " + path);
        std::string ptx;
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) ptx.append(chunk, n);
        fclose(f);
        CU(cuModuleLoadData(&modules[module], ptx.c_str()));
    }
    CUfunction f;
    CU(cuModuleGetFunction(&f, modules[module], name));
    // ADDER_CARVEOUT=N (percent): the shared-memory carveout a kernel prefers, for timing variants
    if (const char* c = getenv("ADDER_CARVEOUT")) CU(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, atoi(c)));
    return f;
}

void upload()
{
    for (auto& [name, a] : arrays) {
        if (!buffers.count(a)) CU(cuMemAlloc(&buffers[a], a->bytes.size()));
        CU(cuMemcpyHtoD(buffers[a], a->bytes.data(), a->bytes.size()));
    }
}

void download()
{
    for (auto& [name, a] : arrays) CU(cuMemcpyDtoH(a->bytes.data(), buffers.at(a), a->bytes.size()));
}

template <typename T> T device_arg(T value) { return value; }
template <typename T> T* device_arg(T* host)
{
    for (auto& [name, a] : arrays)
        if ((const void*)a->bytes.data() == (const void*)host) return reinterpret_cast<T*>(buffers.at(a));
    fail("a kernel argument is not one of the named arrays");
}

template <typename... A> void gpu_launch(const char* module, const char* name, unsigned gx, unsigned gy, unsigned bx, A... args)
{
    CUfunction f = gpu_function(module, name);
    // the row kernels keep their attention terms in dynamic shared memory (with their static, over 48 KB: opt in)
    // (ADDER_NO_DYNAMIC=1: none, to time an earlier row kernel's PTX that had none)
    std::string n = name;
    unsigned dynamic = getenv("ADDER_NO_DYNAMIC") ? 0
                       : n == "adder_train_rows" ? ADDER_ROW_DYNAMIC_BYTES(ADDER_ROWS_FEW_SEQS)
                       : n == "adder_train_rows_many" ? ADDER_ROW_DYNAMIC_BYTES(ADDER_ROWS_MANY_SEQS) : 0;
    if (dynamic) CU(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, dynamic));
    upload();
    std::tuple<A...> values(device_arg(args)...);
    auto go = [&] {
        std::apply([&](auto&... v) {
            void* params[] = {(void*)&v...};
            CU(cuLaunchKernel(f, gx, gy, 1, bx, 1, 1, dynamic, nullptr, params, nullptr));
        }, values);
    };
    if (const char* r = getenv("ADDER_REPEAT")) {
        int repeat = atoi(r);
        go();   // warm-up (module JIT, local memory)
        CU(cuCtxSynchronize());
        auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < repeat; i++) go();
        CU(cuCtxSynchronize());
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        printf("%s: %.4f ms per launch (median-free mean of %d; grid %u x %u, block %u)\n", name, ms / repeat, repeat, gx, gy, bx);
        upload();   // the timed launches may have changed in-place buffers (optimizer)
    }
    go();
    CU(cuCtxSynchronize());
    download();
}
}   // namespace
#define LAUNCH(module, kernel, gx, gy, bx, ...) gpu_launch(module, #kernel, gx, gy, bx, __VA_ARGS__)
#endif

// ---- compare: the largest relative difference per array ----
namespace {
int compare(const char* pathA, const char* pathB)
{
    read_file(pathA);
    auto first = arrays;
    arrays.clear();
    read_file(pathB);
    int bad = 0;
    for (auto& [name, b] : arrays) {
        auto it = first.find(name);
        if (it == first.end() || it->second->type != b->type || it->second->count() != b->count()) {
            printf("  %s: missing or different shape\n", name.c_str());
            bad++;
            continue;
        }
        const Array* a = it->second;
        double worst = 0, scale = 0;
        size_t n = b->count();
        auto value = [](const Array* x, size_t i) -> double {
            switch (x->type) {
            case 0: return reinterpret_cast<const int32_t*>(x->bytes.data())[i];
            case 1: return reinterpret_cast<const float*>(x->bytes.data())[i];
            case 2: return reinterpret_cast<const double*>(x->bytes.data())[i];
            default: return (double)reinterpret_cast<const int64_t*>(x->bytes.data())[i];
            }
        };
        for (size_t i = 0; i < n; i++) scale = std::max(scale, std::fabs(value(b, i)));
        for (size_t i = 0; i < n; i++) {
            double x = value(a, i), y = value(b, i);
            double d = std::isnan(x) != std::isnan(y) ? INFINITY : std::isnan(x) ? 0 : std::fabs(x - y);
            worst = std::max(worst, d / std::max(std::fabs(y), std::max(1e-3 * scale, 1e-30)));
        }
        // integers (tokens, steps) must be equal; floats within 1e-4 relative (GPU logf/sqrt vs glibc's)
        bool ok = b->type == 0 || b->type == 3 ? worst == 0 : worst <= 1e-4;
        printf("  %-10s %8zu values, worst relative difference %.3g%s\n", name.c_str(), n, worst, ok ? "" : "  FAIL");
        if (!ok) bad++;
    }
    for (auto& [name, a] : first) delete a;
    for (auto& [name, a] : arrays) delete a;
    return bad == 0 ? 0 : 1;
}
}   // namespace

// ---- replicate: a bigger input of the same kind, for timing ----
namespace {
int replicate(const char* in, const char* out, int M, int N)
{
    read_file(in);
    AdderDims d = dims_input();
    int M0 = scalar("models");
    auto set_int = [](const std::string& name, int v) { memcpy(arrays.at(name)->bytes.data(), &v, 4); };
    auto cycle = [&](const std::string& name, size_t unit, size_t units0, size_t units) {
        Array* a = arrays.at(name);
        if (a->bytes.size() != unit * units0 * 4) fail("array '" + name + "' has an unexpected size");
        auto* b = new Array{a->type, std::vector<char>(unit * units * 4)};
        for (size_t u = 0; u < units; u++) memcpy(b->bytes.data() + u * unit * 4, a->bytes.data() + (u % units0) * unit * 4, unit * 4);
        delete a;
        arrays[name] = b;
    };
    cycle("params", d.params, M0, M);
    set_int("models", M);
    for (const char* key : {"batch", "count"})
        if (arrays.count(key)) {
            int n0 = scalar(key);
            const char* seqs = arrays.count("tokens") ? "tokens" : "prompts";
            size_t unit = std::string(seqs) == "tokens" ? ADDER_FULL : ADDER_PROMPT;
            // model-major [M0][n0] sequences -> [M][N], cycling over all of them
            cycle(seqs, unit, (size_t)M0 * n0, (size_t)M * N);
            set_int(key, N);
        }
    for (const char* output : {"partials", "grad", "loss", "logits", "out"})
        if (arrays.count(output)) { delete arrays[output]; arrays.erase(output); }
    write_file(out);
    for (auto& [name, a] : arrays) delete a;
    return 0;
}
}   // namespace

int main(int argc, char** argv)
{
    if (argc == 6 && std::string(argv[1]) == "replicate") return replicate(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
    if (argc == 4 && std::string(argv[1]) == "compare") return compare(argv[2], argv[3]);
    if (argc != 4)
        fail("usage: harness KERNEL IN OUT (KERNEL: train_step, loss_and_gradient, train_rows, rows_loss_and_gradient, "
             "rows_many_loss_and_gradient, optimizer_step, logits, decode)");
    std::string kernel = argv[1];
    read_file(argv[2]);
    AdderDims d = dims_input();
    int M = scalar("models");
    if (M <= 0) fail("models must be positive");
    size_t P = d.params, G = (size_t)d.params + d.seq_len * d.d_model + 1;

    bool many = kernel == "rows_many_loss_and_gradient";
    bool rows = many || kernel == "train_rows" || kernel == "rows_loss_and_gradient";
    if (rows || kernel == "train_step" || kernel == "loss_and_gradient") {
        // the row kernels: their sequences a block, whatever "block" says (kernels/ABI.md)
        int seqs = many ? ADDER_ROWS_MANY_SEQS : ADDER_ROWS_FEW_SEQS;
        int batch = scalar("batch"), block = rows ? ADDER_ROWS_THREADS(seqs) : scalar("block");
        const float* params = data<float>(get("params", 1, M * P));
        // the training kernels read tokens as bytes (kernels/ABI.md): a uint8 copy, dropped before OUT is written
        Array& wide = get("tokens", 0, (size_t)M * batch * ADDER_FULL);
        auto* narrow = new Array{4, std::vector<char>(wide.count())};
        for (size_t i = 0; i < wide.count(); i++) narrow->bytes[i] = (char)(unsigned char)data<int>(wide)[i];
        arrays["tokens8"] = narrow;
        const unsigned char* tokens = reinterpret_cast<const unsigned char*>(narrow->bytes.data());
        // a block a 64 (or 32) sequences, or the row kernels' 4 or 8; partial records: a block each, or the row
        // kernels' one a group of ADDER_ROWS_GROUP sequences
        unsigned grid = blocks(batch, rows ? seqs : block), nblk = rows ? blocks(batch, ADDER_ROWS_GROUP) : grid;
        float* partials = output<float>("partials", 1, M * nblk * G, NaN);
        if (many) LAUNCH("train_rows", adder_train_rows_many, grid, M, block, d, params, tokens, batch, partials);
        else if (rows) LAUNCH("train_rows", adder_train_rows, grid, M, block, d, params, tokens, batch, partials);
        else LAUNCH("train_step", adder_train_step, grid, M, block, d, params, tokens, batch, partials);
        if (kernel == "loss_and_gradient" || kernel == "rows_loss_and_gradient" || many) {
            float* grad = output<float>("grad", 1, M * P, NaN);
            float* loss = output<float>("loss", 1, M, NaN);
            LAUNCH("train_step", adder_reduce_gradients, M, 1, 256, d, params, (const float*)partials, (int)nblk, grad, loss);
        }
        delete arrays["tokens8"];   // not written to OUT (the tests read int32, float and int64 arrays)
        arrays.erase("tokens8");
    } else if (kernel == "optimizer_step") {
        int nblk = scalar("nblk");
        const float* partials = data<float>(get("partials", 1, M * nblk * G));
        const double* settings = data<double>(get("settings", 2, 8));
        float* params = data<float>(get("params", 1, M * P));
        float* m = data<float>(get("adam_m", 1, M * P));
        float* v = data<float>(get("adam_v", 1, M * P));
        long long* step = data<long long>(get("step", 3, M));
        float* ema = data<float>(get("grokfast_ema", 1, M * P));
        float* loss = output<float>("loss", 1, M, NaN);
        double* norm = output<double>("norm", 2, M, std::numeric_limits<double>::quiet_NaN());
        // 256 threads (any power of two up to ADDER_OPT_BLOCK works; CudaBackend launches 1024): a fiber each
        LAUNCH("optimizer", adder_optimizer_step, M, 1, 256, d, partials, nblk, settings, params, m, v, step, loss, norm, ema);
    } else if (kernel == "logits") {
        int count = scalar("count"), block = scalar("block");
        const float* params = data<float>(get("params", 1, M * P));
        const int* tokens = data<int>(get("tokens", 0, (size_t)M * count * ADDER_FULL));
        float* logits = output<float>("logits", 1, (size_t)M * count * ADDER_T * ADDER_VOCAB, NaN);
        LAUNCH("logits", adder_logits, blocks(count, block), M, block, d, params, tokens, count, logits);
    } else if (kernel == "decode") {
        int count = scalar("count"), block = scalar("block");
        const float* params = data<float>(get("params", 1, M * P));
        const int* prompts = data<int>(get("prompts", 0, (size_t)M * count * ADDER_PROMPT));
        int* out = output<int>("out", 0, (size_t)M * count * ADDER_SUM_DIGITS, -1);
        LAUNCH("decode", adder_decode, blocks(count, block), M, block, d, params, prompts, count, out);
    } else {
        fail("unknown kernel '" + kernel + "'");
    }
    write_file(argv[3]);
    for (auto& [name, a] : arrays) delete a;
    return 0;
}
