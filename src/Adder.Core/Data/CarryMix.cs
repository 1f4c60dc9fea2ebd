namespace Adder.Core;

/// <summary>Carry-mix (MicroAdder's recipe, ../shared/reference/FRONTIER.md §B): each example of a batch is
/// replaced, with a probability that holds until FadeStart and falls linearly to 0 at FadeEnd, by a sum chosen
/// uniformly among four carry patterns, each as wide as the curriculum allows at that step (a digit count
/// drawn from the phase's range, as MicroAdder's sampler does). The draws come from a generator seeded by (run seed, step, stream), so a
/// step's batch does not depend on what came before and a resumed run gets the same batches.</summary>
public sealed record CarryMix(double Probability, int FadeStart, int FadeEnd)
{
    public static readonly CarryMix Off = new(0, 0, 0);
    public bool Active => Probability > 0;

    public enum Pattern { Single, Chain, Place, Boundary }

    /// <summary>Refuses a probability outside [0, 1] or a fade that ends before it starts.</summary>
    public CarryMix Validate()
    {
        if (!(Probability >= 0 && Probability <= 1)) throw new AdderException($"--carry-mix must be in [0, 1], got {Probability}");
        if (FadeStart < 0) throw new AdderException($"--carry-mix-fade-start must not be negative, got {FadeStart}");
        if (FadeEnd < FadeStart) throw new AdderException($"the carry-mix fade ends (--carry-mix-fade-end {FadeEnd}) before it starts (--carry-mix-fade-start {FadeStart})");
        return this;
    }

    /// <summary>The replacement probability at a step.</summary>
    public double At(int step) =>
        step < FadeStart ? Probability
        : step >= FadeEnd ? 0
        : Probability * (FadeEnd - step) / (double)(FadeEnd - FadeStart);

    /// <summary>Replaces examples of one stream's batch in place, with patterns of minDigits..maxDigits digits
    /// (the curriculum's phase at this step).</summary>
    public void Apply(long seed, int step, int stream, int minDigits, int maxDigits, Span<long> a, Span<long> b)
    {
        if (minDigits < 1 || maxDigits > Tokens.OperandDigits || minDigits > maxDigits)
            throw new ArgumentOutOfRangeException(nameof(minDigits), $"digits {minDigits}..{maxDigits}");
        double p = At(step);
        if (p <= 0) return;
        var rng = new SplitMix64(Hash(seed, step, stream));
        for (int i = 0; i < a.Length; i++)
        {
            if (rng.NextDouble() >= p) continue;
            (a[i], b[i]) = Draw((Pattern)rng.Below(4), minDigits, maxDigits, ref rng);
        }
    }

    static long Pow10(int n) { long x = 1; for (int i = 0; i < n; i++) x *= 10; return x; }

    /// <summary>One example of a pattern with n digits, n uniform in minDigits..maxDigits (a ≤ 10^10 − 1 and
    /// b ≤ 10^10 − 1 always).</summary>
    public static (long A, long B) Draw(Pattern pattern, int minDigits, int maxDigits, ref SplitMix64 rng)
    {
        int n = minDigits + rng.Below(maxDigits - minDigits + 1);
        switch (pattern)
        {
            case Pattern.Single:
            {
                // one position where both digits are 5..9 (a carry is born there), 0..4 elsewhere
                int at = rng.Below(n);
                long a = 0, b = 0;
                for (int i = n - 1; i >= 0; i--)
                {
                    int da = i == at ? 5 + rng.Below(5) : rng.Below(5), db = i == at ? 5 + rng.Below(5) : rng.Below(5);
                    a = a * 10 + da; b = b * 10 + db;
                }
                return (a, b);
            }
            case Pattern.Chain:
            {
                // a run of 9s that a small b's carry travels through
                return (Pow10(n) - 1, 1 + rng.BelowLong(Pow10(Math.Min(n, 3))));
            }
            case Pattern.Place:
            {
                // a random n-digit a plus one digit k at a place p below n
                long a = Pow10(n - 1) + rng.BelowLong(Pow10(n) - Pow10(n - 1));
                return (a, (1 + rng.Below(9)) * Pow10(rng.Below(n)));
            }
            default:
            {
                // just below a power of ten (its exponent drawn afresh from the range), plus a little
                int power = minDigits + rng.Below(maxDigits - minDigits + 1);
                long r = 1 + rng.Below(10);
                return (Pow10(power) - r, 1 + rng.Below(20));
            }
        }
    }

    static ulong Hash(long seed, int step, int stream) =>
        SplitMix64.Mix((ulong)seed * 0x9E3779B97F4A7C15UL ^ SplitMix64.Mix((ulong)step + 0x632BE59BD9B4E019UL) ^ ((ulong)stream << 40));
}

/// <summary>SplitMix64: a small, well-mixed generator for draws that must be reproducible from a seed alone.</summary>
public struct SplitMix64(ulong seed)
{
    ulong state = seed;

    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong Next() { state += 0x9E3779B97F4A7C15UL; return Mix(state); }
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));
    public int Below(int n) => (int)(Next() % (ulong)n);
    public long BelowLong(long n) => (long)(Next() % (ulong)n);
}
