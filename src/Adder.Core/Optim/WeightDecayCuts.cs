using System.Globalization;

namespace Adder.Core;

/// <summary>Adaptive weight decay (the 44p's recipe, ../shared/reference/FRONTIER.md §A): the decay is multiplied
/// by each cut's factor once the best validation exact match so far exceeds its threshold. Derived from the best
/// validation alone, which a checkpoint keeps, so a resumed run decays as the straight run did.</summary>
public sealed record WeightDecayCuts(IReadOnlyList<(double Threshold, double Factor)> Cuts)
{
    public static readonly WeightDecayCuts None = new(Array.Empty<(double, double)>());

    public bool Active => Cuts.Count > 0;

    /// <summary>The product of the factors of the cuts whose threshold the best validation exceeds.</summary>
    public double Factor(double bestValExact)
    {
        double f = 1;
        foreach (var (threshold, factor) in Cuts) if (bestValExact > threshold) f *= factor;
        return f;
    }

    /// <summary>Parses "0.01:0.1,0.05:0.01" (validation exact match as a fraction : factor); "" is none.</summary>
    public static WeightDecayCuts Parse(string text)
    {
        var cuts = new List<(double, double)>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var f = part.Split(':');
            const NumberStyles style = NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent;
            if (f.Length != 2 || !double.TryParse(f[0], style, CultureInfo.InvariantCulture, out double t)
                || !double.TryParse(f[1], style, CultureInfo.InvariantCulture, out double k))
                throw new AdderException($"bad weight-decay cut '{Limits.Echo(part)}' (expected THRESHOLD:FACTOR, e.g. 0.01:0.1)");
            if (!(t >= 0 && t < 1)) throw new AdderException($"weight-decay cut '{Limits.Echo(part)}': the threshold must be in [0, 1)");
            if (!(k >= 0 && k <= 1)) throw new AdderException($"weight-decay cut '{Limits.Echo(part)}': the factor must be in [0, 1]");
            if (cuts.Count > 0 && t <= cuts[^1].Item1) throw new AdderException("weight-decay cuts' thresholds must increase");
            cuts.Add((t, k));
        }
        return new WeightDecayCuts(cuts);
    }

    public override string ToString() =>
        string.Join(",", Cuts.Select(c => $"{c.Threshold.ToString("R", CultureInfo.InvariantCulture)}:{c.Factor.ToString("R", CultureInfo.InvariantCulture)}"));

    public bool Equals(WeightDecayCuts? other) => other is not null && other.Cuts.SequenceEqual(Cuts);
    public override int GetHashCode() => ToString().GetHashCode();
}
