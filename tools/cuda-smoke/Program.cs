// GPU smoke test of Adder.Kernels' CudaBackend against the CPU code, for one call on a lent GPU (not in Adder.sln;
// written against the CpuBackend API before the backend seam, so adapt its CPU calls after that merge):
//   dotnet publish tools/cuda-smoke -c Release -r linux-x64 --self-contained -p:PublishSingleFile=true \
//       -p:PublishTrimmed=true -p:EnableCompressionInSingleFile=true -o publish/smoke
//   then on the device, from the repo root (carry publish/smoke): ./publish/smoke/cuda-smoke
// Checks: cuBLAS found and Sgemm right; for both shipped models: parameters round trip, logits (1e-5) and loss and
// gradient (1e-4) against the CPU, 100,000 greedy decodes against the CPU, 30 AdamW steps of 4 models against the
// CPU and bit-identical on a second run, graph recapture on a new batch size, steps/s at 1, 64 and 256 models.
using System.Diagnostics;
using Adder.Core;
using Adder.Core.Cpu;
using Adder.Kernels;

int passed = 0, failed = 0;
void Check(string what, bool ok, string detail)
{
    Console.WriteLine($"{(ok ? "PASS" : "FAIL")}  {what}: {detail}");
    if (ok) passed++; else failed++;
}
double RelErr(float[] got, float[] want)
{
    double d = 0, n = 0;
    for (int i = 0; i < got.Length; i++) { d += (double)(got[i] - want[i]) * (got[i] - want[i]); n += (double)want[i] * want[i]; }
    return Math.Sqrt(d) / Math.Max(Math.Sqrt(n), 1e-30);
}
(long[] a, long[] b, int[] full) Batch(Random rng, int n)
{
    var a = new long[n]; var b = new long[n]; var full = new int[n * Tokens.FullLength];
    for (int i = 0; i < n; i++)
    {
        a[i] = rng.NextInt64(0, Tokens.MaxOperand + 1); b[i] = rng.NextInt64(0, Tokens.MaxOperand + 1);
        Tokens.EncodeFull(a[i], b[i], full.AsSpan(i * Tokens.FullLength, Tokens.FullLength));
    }
    return (a, b, full);
}

Console.WriteLine($"driver CUDA version {Cuda.DriverVersion()}; available: {CudaBackend.IsAvailable(out var why)} {why}");
using (var ctx = new CudaContext())
    Console.WriteLine($"device {ctx.DeviceName}, cc {ctx.ComputeCapability}, {ctx.MultiprocessorCount} SMs, {ctx.TotalMemory >> 20} MiB");

// cuBLAS through the resolver: C = A·B for 2×2 column-major matrices.
try
{
    using var ctx = new CudaContext();
    using var s = new CudaStream();
    using var blas = new CudaBlas(s);
    using var A = new CudaDeviceVariable<float>(4); using var B = new CudaDeviceVariable<float>(4); using var C = new CudaDeviceVariable<float>(4);
    A.CopyToDevice([1, 2, 3, 4]); B.CopyToDevice([5, 6, 7, 8]);
    blas.Gemm(Operation.NonTranspose, Operation.NonTranspose, 2, 2, 2, 1f, A.DevicePointer, 2, B.DevicePointer, 2, 0f, C.DevicePointer, 2);
    s.Synchronize();
    var c = new float[4]; C.CopyToHost(c);
    Check("cuBLAS Sgemm via resolver", c.SequenceEqual(new float[] { 23, 34, 31, 46 }), string.Join(",", c));
}
catch (Exception e) { Check("cuBLAS Sgemm via resolver", false, e.Message); }

foreach (var file in new[] { "models/adder-311p-s36.safetensors", "models/adder-912p-s1.safetensors" })
{
    Console.WriteLine($"--- {file}");
    try
    {
        var model = Checkpoint.Load(file).Model;
        var config = model.Config; var p = model.Parameters; int P = p.Length;
        var cpu = new CpuBackend(config);
        var rng = new Random(7);

        using (var gpu = new CudaBackend(config, 1))
        {
            gpu.SetParameters(0, p);
            var back = new float[P]; gpu.GetParameters(0, back);
            Check("parameters round trip", back.SequenceEqual(p), $"{P} floats");

            var (a, b, full) = Batch(rng, 512);
            var lg = new float[512 * 33 * 14]; gpu.Logits(0, full, 512, lg);
            var lc = cpu.Logits(p, a, b, 512);
            double e = RelErr(lg, lc); Check("logits vs CPU", e <= 1e-5, $"rel err {e:E2}");

            var gg = new float[P]; float lossG = gpu.LossAndGradient(0, full, 512, gg);
            var gc = new float[P]; float lossC = cpu.LossAndGradient(p, a, b, 512, gc);
            e = RelErr(gg, gc);
            Check("loss and gradient vs CPU", e <= 1e-4 && Math.Abs(lossG - lossC) <= 1e-5 * Math.Max(1, Math.Abs(lossC)), $"loss {lossG} vs {lossC}, grad rel err {e:E2}");

            int n = 100_000;
            var (da, db, _) = Batch(rng, n);
            var prompts = new int[n * Tokens.PromptLength];
            for (int i = 0; i < n; i++) Tokens.EncodePrompt(da[i], db[i], prompts.AsSpan(i * Tokens.PromptLength, Tokens.PromptLength));
            var og = new int[n * Tokens.SumDigits];
            gpu.Decode(0, prompts, n, og);
            var sw = Stopwatch.StartNew(); gpu.Decode(0, prompts, n, og); double ms = sw.Elapsed.TotalMilliseconds;
            var oc = new int[n * Tokens.SumDigits]; cpu.Decode(p, da, db, n, oc);
            int same = 0, right = 0;
            for (int i = 0; i < n; i++)
            {
                if (og.AsSpan(i * 11, 11).SequenceEqual(oc.AsSpan(i * 11, 11))) same++;
                if (Tokens.DecodeReversedSum(og.AsSpan(i * 11, 11)) == da[i] + db[i]) right++;
            }
            Check("decode 100,000 vs CPU", same >= n - 5, $"{same} identical to CPU, GPU exact {right}/{n}, {ms:F1} ms (host time)");
        }

        // Training: 4 models from different inits, 30 steps, against CPU LossAndGradient + GradClip + AdamW.
        int M = 4, B = 512, steps = 30;
        var inits = Enumerable.Range(0, M).Select(s => { var w = new float[P]; model.Layout.Initialise(w, 100 + s); return w; }).ToArray();
        var settings = new StepSettings(0.01, 0.01, 1.0, 0.9, 0.999, 1e-8);
        float[][] RunGpu(out float[] lastLoss, out double[] lastNorm)
        {
            using var gpu = new CudaBackend(config, M);
            for (int m = 0; m < M; m++) gpu.SetParameters(m, inits[m]);
            var r = new Random(11); var res = new StepResult[M];
            for (int s = 0; s < steps; s++)
            {
                var tok = new int[M * B * Tokens.FullLength];
                for (int m = 0; m < M; m++) Batch(r, B).full.CopyTo(tok, m * B * Tokens.FullLength);
                gpu.TrainStep(tok, B, settings, res);
            }
            lastLoss = res.Select(x => x.Loss).ToArray(); lastNorm = res.Select(x => x.GradNorm).ToArray();
            var st = gpu.GetOptimizer(0);
            Check("optimizer step count", st.Step == steps, $"{st.Step}");
            return Enumerable.Range(0, M).Select(m => { var w = new float[P]; gpu.GetParameters(m, w); return w; }).ToArray();
        }
        var run1 = RunGpu(out var loss1, out var norm1);
        var run2 = RunGpu(out _, out _);
        Check("training deterministic (two runs)", run1.Zip(run2).All(t => t.First.SequenceEqual(t.Second)), "bit-identical parameters");

        var rc = new Random(11); double worst = 0; float[] lossCpu = new float[M]; double[] normCpu = new double[M];
        var ws = inits.Select(w => (float[])w.Clone()).ToArray();
        var opts = Enumerable.Range(0, M).Select(_ => new AdamW(P)).ToArray();
        var grad = new float[P];
        for (int s = 0; s < steps; s++)
            for (int m = 0; m < M; m++)
            {
                var (ba, bb, _) = Batch(rc, B);
                lossCpu[m] = cpu.LossAndGradient(ws[m], ba, bb, B, grad);
                normCpu[m] = GradClip.Apply(grad, settings.Clip).Norm;
                opts[m].Update(ws[m], grad, settings.Lr, settings.WeightDecay);
            }
        for (int m = 0; m < M; m++) worst = Math.Max(worst, RelErr(run1[m], ws[m]));
        Check("30 AdamW steps of 4 models vs CPU", worst <= 1e-4, $"params rel err {worst:E2}; loss GPU {loss1[0]:F5} CPU {lossCpu[0]:F5}; norm GPU {norm1[0]:F5} CPU {normCpu[0]:F5}");

        // Recapture on a new batch size: 256, 512, 256 on one backend.
        using (var gpu = new CudaBackend(config, 1))
        {
            gpu.SetParameters(0, inits[0]);
            var r = new Random(5); var res = new StepResult[1]; bool finite = true;
            foreach (var batch in new[] { 256, 512, 256 }) { gpu.TrainStep(Batch(r, batch).full, batch, settings, res); finite &= float.IsFinite(res[0].Loss); }
            Check("recapture on batch size change", finite && gpu.GetOptimizer(0).Step == 3, $"loss {res[0].Loss:F4}, step {gpu.GetOptimizer(0).Step}");
        }

        // Speed.
        foreach (var (models, batch) in new[] { (1, 256), (1, 512), (64, 512), (256, 512) })
        {
            using var gpu = new CudaBackend(config, models);
            for (int m = 0; m < models; m++) gpu.SetParameters(m, inits[m % M]);
            var tok = new int[models * batch * Tokens.FullLength];
            var r = new Random(3);
            for (int m = 0; m < models; m++) Batch(r, batch).full.CopyTo(tok, m * batch * Tokens.FullLength);
            var res = new StepResult[models];
            gpu.TrainStep(tok, batch, settings, res);
            int k = 0; var sw = Stopwatch.StartNew();
            while (sw.Elapsed.TotalSeconds < 2) { gpu.TrainStep(tok, batch, settings, res); k++; }
            double sps = k / sw.Elapsed.TotalSeconds;
            Check($"train {models} models batch {batch}", res.All(x => float.IsFinite(x.Loss)), $"{sps:F0} steps/s, {sps * models:F0} model-steps/s, loss[0] {res[0].Loss:F4}");
        }
    }
    catch (Exception e) { Check(file, false, e.GetType().Name + ": " + e.Message); }
}
Console.WriteLine($"{passed} passed, {failed} failed");
return failed == 0 ? 0 : 1;
