using System.Globalization;

namespace Adder.Core;

/// <summary>Per-parameter weight decay (torch's parameter groups): each named stored parameter's decay is the run's
/// (after its cuts) times a factor. A large factor on one parameter pulls it towards zero while the rest train, so a
/// term kept beside a tie (down = Wᵤᵀ·R + W_res) can be faded out and the tie reached by training, not by a cut.</summary>
public sealed record WeightDecayScales(IReadOnlyList<(string Parameter, double Factor)> Scales)
{
    public static readonly WeightDecayScales None = new(Array.Empty<(string, double)>());

    public const string CpuOnly = "--decay-scales (per-parameter weight decay) runs on the CPU backend only";

    public bool Active => Scales.Count > 0;

    /// <summary>Parses "mlp.W_res:1000,norm.ln1:0" (stored parameter : factor); "" is none.</summary>
    public static WeightDecayScales Parse(string text)
    {
        var scales = new List<(string, double)>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int colon = part.LastIndexOf(':');
            const NumberStyles style = NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent;
            if (colon <= 0 || !double.TryParse(part[(colon + 1)..], style, CultureInfo.InvariantCulture, out double k))
                throw new AdderException($"bad decay scale '{Limits.Echo(part)}' (expected PARAMETER:FACTOR, e.g. mlp.W_down:100)");
            if (!double.IsFinite(k) || k < 0) throw new AdderException($"decay scale '{Limits.Echo(part)}': the factor must be finite and not negative");
            string name = part[..colon];
            if (scales.Any(s => s.Item1 == name)) throw new AdderException($"decay scales name '{Limits.Echo(name)}' twice");
            scales.Add((name, k));
        }
        return new WeightDecayScales(scales);
    }

    /// <summary>Refuses a name that is not one of the layout's stored parameters, and a factor with which a step's decay
    /// (lr·wd·factor at the peak lr) would reach 1 and flip the parameter's sign.</summary>
    public void Check(ParameterLayout layout, double peakLr, double weightDecay)
    {
        foreach (var (name, factor) in Scales)
        {
            if (!layout.Tensors.Any(t => t.Name == name))
                throw new AdderException($"decay scale for '{Limits.Echo(name)}': the model has no such parameter (it has: {string.Join(", ", layout.Tensors.Select(t => t.Name))})");
            if (peakLr * weightDecay * factor >= 1)
                throw new AdderException($"decay scale {name}:{factor.ToString("R", CultureInfo.InvariantCulture)}: lr × weight decay × factor is {(peakLr * weightDecay * factor).ToString("G3", CultureInfo.InvariantCulture)}, at least 1, so a step would flip its sign");
        }
    }

    /// <summary>One factor per element of the flat buffer (1 where no scale is named); null when none is.</summary>
    public float[]? PerElement(ParameterLayout layout)
    {
        if (!Active) return null;
        var scale = new float[layout.Count];
        Array.Fill(scale, 1f);
        foreach (var (name, factor) in Scales)
        {
            var t = layout.Tensors.First(t => t.Name == name);
            Array.Fill(scale, (float)factor, t.Offset, t.Size);
        }
        return scale;
    }

    public override string ToString() =>
        string.Join(",", Scales.Select(s => $"{s.Parameter}:{s.Factor.ToString("R", CultureInfo.InvariantCulture)}"));

    public bool Equals(WeightDecayScales? other) => other is not null && other.Scales.SequenceEqual(Scales);
    public override int GetHashCode() => ToString().GetHashCode();
}
