namespace Adder.Core;

public readonly record struct Pair(long A, long B);

/// <summary>A run's held-out pairs: validation then test, all distinct (SPEC section 5).</summary>
public sealed class Holdout
{
    /// <summary>The seeds of the reference evaluation suite: the TEST part of holdout(5000, 10000, s).</summary>
    public static readonly int[] ReferenceSuiteSeeds = [41, 100, 200, 300, 400, 500, 999, 1234, 7777, 31415];

    public Pair[] Validation { get; }
    public Pair[] Test { get; }
    readonly HashSet<Pair> reserved;
    // A bit per hash of the reserved pairs, asked before the set: a sampler's pair is almost never reserved, and
    // 16 KB answer that where the set's ~0.5 MB, one a stream, do not stay in cache when a sweep draws many
    // streams (BENCHMARKS, "Drawing a sweep's batches"). No false negatives: a set bit only sends the
    // question on to the set.
    const int FilterBits = 17;
    readonly ulong[] filter = new ulong[(1 << FilterBits) / 64];

    Holdout(Pair[] validation, Pair[] test, HashSet<Pair> reserved)
    {
        Validation = validation;
        Test = test;
        this.reserved = reserved;
        foreach (var p in reserved)
        {
            int i = FilterIndex(p.A, p.B);
            filter[i >> 6] |= 1UL << (i & 63);
        }
    }

    static int FilterIndex(long a, long b) =>
        (int)((((ulong)a * 0x9E3779B97F4A7C15UL) + (ulong)b) * 0xC2B2AE3D27D4EB4FUL >> (64 - FilterBits));

    /// <summary>A holdout of given pairs (tests, custom splits).</summary>
    public static Holdout FromPairs(Pair[] validation, Pair[] test) =>
        new(validation, test, [.. validation, .. test]);

    /// <summary>Whether a pair is one of this holdout's validation or test pairs.</summary>
    public bool Contains(long a, long b)
    {
        int i = FilterIndex(a, b);
        return (filter[i >> 6] & (1UL << (i & 63))) != 0 && reserved.Contains(new Pair(a, b));
    }

    /// <summary>The reference's dedup walk: draw n a's then n b's (n = max(2·missing, 4096)), keep the pairs
    /// not seen before, in order, until val + test are collected.</summary>
    public static Holdout Build(int validationCount, int testCount, long seed)
    {
        int total = validationCount + testCount;
        var rng = new TorchGenerator((ulong)seed);
        var seen = new HashSet<Pair>(total);
        var pairs = new List<Pair>(total);
        const long Range = Tokens.MaxOperand + 1;
        while (pairs.Count < total)
        {
            int n = Math.Max(2 * (total - pairs.Count), 4096);
            var a = new long[n];
            for (int i = 0; i < n; i++) a[i] = rng.RandInt(0, Range);
            var b = new long[n];
            for (int i = 0; i < n; i++) b[i] = rng.RandInt(0, Range);
            for (int i = 0; i < n && pairs.Count < total; i++)
            {
                var p = new Pair(a[i], b[i]);
                if (seen.Add(p)) pairs.Add(p);
            }
        }
        return new Holdout(pairs.GetRange(0, validationCount).ToArray(), pairs.GetRange(validationCount, testCount).ToArray(), seen);
    }
}
