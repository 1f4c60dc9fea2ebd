namespace Adder.Core;

/// <summary>What only the CPU backend needs to know (no run hyperparameter: they do not change the weights):
/// how many threads to run on, 0 for all cores.</summary>
public sealed record CpuOptions
{
    public static readonly CpuOptions Default = new(0);

    public CpuOptions(int threads)
    {
        if (threads < 0) throw new AdderException($"--threads must be at least 1, got {threads}");
        Limits.CheckThreads(threads);   // each thread holds its own activations
        Threads = threads;
    }

    public int Threads { get; }
    public int WorkerThreads => Threads > 0 ? Threads : Environment.ProcessorCount;
}
