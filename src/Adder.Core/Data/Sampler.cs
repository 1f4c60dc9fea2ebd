namespace Adder.Core;

/// <summary>From step Start on, operands have MinDigits..MaxDigits digits.</summary>
public readonly record struct CurriculumPhase(int Start, int MinDigits, int MaxDigits);

public sealed class Curriculum
{
    public CurriculumPhase[] Phases { get; }

    public Curriculum(CurriculumPhase[] phases)
    {
        if (phases.Length == 0 || phases[0].Start != 0) throw new AdderException("a curriculum starts with a phase at step 0");
        for (int i = 0; i < phases.Length; i++)
        {
            var p = phases[i];
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

    /// <summary>Parses "0:1-3,2000:1-6,7000:1-10" (the form of --curriculum and config.json).</summary>
    public static Curriculum Parse(string text)
    {
        var phases = new List<CurriculumPhase>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var fields = part.Split(':');
            var range = fields.Length == 2 ? fields[1].Split('-') : [];
            if (range.Length != 2 || !int.TryParse(fields[0], out int start) || start < 0
                || !int.TryParse(range[0], out int lo) || !int.TryParse(range[1], out int hi))
                throw new AdderException($"bad curriculum phase '{Limits.Echo(part)}' (expected STEP:MIN-MAX, e.g. 2000:1-6)");
            phases.Add(new CurriculumPhase(start, lo, hi));
        }
        if (phases.Count == 0) throw new AdderException("empty curriculum");
        return new Curriculum([.. phases]);
    }

    // equal phases, equal curricula (run configs compare by value)
    public override bool Equals(object? obj) => obj is Curriculum c && c.Phases.SequenceEqual(Phases);
    public override int GetHashCode() => ToString().GetHashCode();

    public override string ToString() => string.Join(",", Phases.Select(p => $"{p.Start}:{p.MinDigits}-{p.MaxDigits}"));

    public CurriculumPhase At(int step)
    {
        var phase = Phases[0];
        foreach (var p in Phases) if (p.Start <= step) phase = p;
        return phase;
    }
}

/// <summary>The reference training stream (SPEC section 6): a generator seeded seed + 1337 draws, per
/// example, n uniform in [min, max], then a and b below 10ⁿ, redrawing a and b while the pair is reserved.</summary>
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
