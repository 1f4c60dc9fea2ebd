using System.Globalization;

namespace Adder.Core;

/// <summary>From step Start on, operands have MinDigits..MaxDigits digits (a digit count drawn uniformly, then
/// each operand uniformly below 10^count: SPEC section 6), or, for a value range, each operand is drawn uniformly
/// from MinValue..MaxValue (MicroAdder's and the Qwen3 + arc block's curricula). A value range's digit bounds are
/// those of its ends.</summary>
public readonly record struct CurriculumPhase(int Start, int MinDigits, int MaxDigits)
{
    public long MinValue { get; init; } = -1;
    public long MaxValue { get; init; } = -1;
    public bool ByValue => MaxValue >= 0;

    public static CurriculumPhase Values(int start, long min, long max) =>
        new(start, Digits(min), Digits(max)) { MinValue = min, MaxValue = max };

    /// <summary>The number of decimal digits of x ≥ 0 (0 has one).</summary>
    public static int Digits(long x) => x < 10 ? 1 : 1 + Digits(x / 10);

    public override string ToString() => ByValue ? $"{Start}:{MinValue}..{MaxValue}" : $"{Start}:{MinDigits}-{MaxDigits}";
}

public sealed class Curriculum
{
    public CurriculumPhase[] Phases { get; }

    public Curriculum(CurriculumPhase[] phases)
    {
        if (phases.Length == 0 || phases[0].Start != 0) throw new AdderException("a curriculum starts with a phase at step 0");
        for (int i = 0; i < phases.Length; i++)
        {
            var p = phases[i];
            if (p.ByValue && (p.MinValue < 0 || p.MaxValue > Tokens.MaxOperand || p.MinValue > p.MaxValue))
                throw new AdderException($"curriculum phase at step {p.Start}: values {p.MinValue}..{p.MaxValue} not within 0..{Tokens.MaxOperand}");
            if (p.MinDigits < 1 || p.MaxDigits > Tokens.OperandDigits || p.MinDigits > p.MaxDigits)
                throw new AdderException($"curriculum phase at step {p.Start}: digits {p.MinDigits}..{p.MaxDigits} not within 1..10");
            if (i > 0 && p.Start <= phases[i - 1].Start) throw new AdderException("curriculum phases must start at increasing steps");
        }
        Phases = phases;
    }

    /// <summary>Base training (SPEC section 6): 1..3 digits, then 1..6 from step 2000, 1..10 from 7000.</summary>
    public static Curriculum Base => new([new(0, 1, 3), new(2000, 1, 6), new(7000, 1, 10)]);

    /// <summary>Fine-tuning: 1..10 digits throughout.</summary>
    public static Curriculum Full => new([new(0, 1, 10)]);

    /// <summary>Parses "0:1-3,2000:1-6,7000:1-10" (digit counts) or "0:0..999,2000:0..999999" (value ranges),
    /// the form of --curriculum and config.json; the two forms may be mixed.</summary>
    public static Curriculum Parse(string text)
    {
        var phases = new List<CurriculumPhase>();
        const NumberStyles plain = NumberStyles.None;
        var invariant = CultureInfo.InvariantCulture;
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var fields = part.Split(':');
            bool byValue = fields.Length == 2 && fields[1].Contains("..");
            var range = fields.Length != 2 ? [] : byValue ? fields[1].Split("..") : fields[1].Split('-');
            if (range.Length != 2 || !int.TryParse(fields[0], plain, invariant, out int start)
                || !long.TryParse(range[0], plain, invariant, out long lo) || !long.TryParse(range[1], plain, invariant, out long hi)
                || (!byValue && (lo > int.MaxValue || hi > int.MaxValue)))
                throw new AdderException($"bad curriculum phase '{Limits.Echo(part)}' (expected STEP:MIN-MAX digits, e.g. 2000:1-6, or STEP:LOW..HIGH values, e.g. 2000:0..999999)");
            phases.Add(byValue ? CurriculumPhase.Values(start, lo, hi) : new CurriculumPhase(start, (int)lo, (int)hi));
        }
        if (phases.Count == 0) throw new AdderException("empty curriculum");
        return new Curriculum([.. phases]);
    }

    // equal phases, equal curricula (run configs compare by value)
    public override bool Equals(object? obj) => obj is Curriculum c && c.Phases.SequenceEqual(Phases);
    public override int GetHashCode() => ToString().GetHashCode();

    public override string ToString() => string.Join(",", Phases.Select(p => p.ToString()));

    public CurriculumPhase At(int step)
    {
        var phase = Phases[0];
        foreach (var p in Phases) if (p.Start <= step) phase = p;
        return phase;
    }
}

/// <summary>The reference training stream (SPEC section 6): a generator seeded seed + 1337 draws, per
/// example, n uniform in [min, max], then a and b below 10ⁿ, redrawing a and b while the pair is reserved.
/// A value-range phase draws a and b uniformly from its range instead (and n is the wider operand's digit count).</summary>
public sealed class Sampler
{
    readonly TorchGenerator rng;
    readonly Holdout reserved;
    readonly Curriculum curriculum;
    static readonly long[] PowersOfTen = Enumerable.Range(0, 11).Select(n => (long)Math.Pow(10, n)).ToArray();

    /// <param name="generatorSeed">the seed of the sampler's own generator: run seed + 1337</param>
    public Sampler(long generatorSeed, Holdout reserved, Curriculum curriculum)
    {
        rng = new TorchGenerator((ulong)generatorSeed);
        this.reserved = reserved;
        this.curriculum = curriculum;
    }

    public (int Digits, long A, long B) Next(int step)
    {
        var phase = curriculum.At(step);
        if (phase.ByValue)
        {
            long x, y;
            do
            {
                x = rng.RandInt(phase.MinValue, phase.MaxValue + 1);
                y = rng.RandInt(phase.MinValue, phase.MaxValue + 1);
            } while (reserved.Contains(x, y));
            return (CurriculumPhase.Digits(Math.Max(x, y)), x, y);
        }
        int n = (int)rng.RandInt(phase.MinDigits, phase.MaxDigits + 1);
        long a, b;
        do
        {
            a = rng.RandInt(0, PowersOfTen[n]);
            b = rng.RandInt(0, PowersOfTen[n]);
        } while (reserved.Contains(a, b));
        return (n, a, b);
    }

    public void NextBatch(int step, Span<long> a, Span<long> b)
    {
        for (int i = 0; i < a.Length; i++) (_, a[i], b[i]) = Next(step);
    }

    public uint[] GetState() => rng.GetState();
    /// <summary>GetState into a buffer of <see cref="Mt19937.StateLength"/> words.</summary>
    public void GetState(Span<uint> into) => rng.GetState(into);
    public void SetState(uint[] state) => rng.SetState(state);
}
