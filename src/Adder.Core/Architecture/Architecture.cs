using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Adder.Core;

/// <summary>How a stored parameter starts: normal(0, std), uniform(−bound, bound), a constant, or given values.</summary>
public sealed record ParameterInit(string Kind, double Scale, double[]? Values)
{
    public static ParameterInit Normal(double std) => new("normal", std, null);
    public static ParameterInit Uniform(double bound) => new("uniform", bound, null);
    public static ParameterInit Constant(double value) => new("constant", value, null);
    public static ParameterInit Given(params double[] values) => new("values", 0, values);

    public string Text => Kind == "values" ? "[" + string.Join(", ", Values!.Select(RoleNodes.Number)) + "]" : $"{Kind} {RoleNodes.Number(Scale)}";
}

/// <summary>A stored (trained, counted) parameter: its name as checkpoints store it, its shape, its init.</summary>
public sealed record ParameterDefinition(string Name, int[] Shape, ParameterInit Init)
{
    public int Size => Shape.Aggregate(1, (a, b) => a * b);
    public int Rows => Shape.Length == 0 ? 1 : Shape[0];
    public int Cols => Shape.Length < 2 ? 1 : Shape[1];
}

/// <summary>A one-layer block's shape as one value: the token format, the residual width, the stored
/// parameters and, for each role of the block (<see cref="ArchitectureRoles"/>), an expression deriving its
/// effective matrix from them (<see cref="RoleExpression"/>). Ties are expressions: K = V is two roles naming
/// one matrix, K = R_θ(Q) is `rot(angle, 4) @ W_q`. What a role's matrix must be is fixed by the block, so a
/// new tie is a line of an architecture file, with no backward pass to write. Saved whole in checkpoints
/// (model_config's "architecture") and read back from files (`--arch FILE`) with this schema.</summary>
public sealed class Architecture
{
    public string Name { get; }
    public TokenFormat Format { get; }
    public int DModel { get; }
    public string Mlp { get; }
    public double NormEps { get; }
    public double QkNormEps { get; }
    /// <summary>RoPE's base, or null for none.</summary>
    public double? RopeTheta { get; }
    /// <summary>The attention scores' scale; null is 1/√(head dim).</summary>
    public double? AttentionScale { get; }
    public IReadOnlyList<ParameterDefinition> Parameters { get; }
    /// <summary>Role name → expression, in the file's order (a role may name roles before it).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Roles { get; }

    public const string Gelu = "gelu", SwiGlu = "swiglu";

    /// <summary>The config keys of an architecture file, each defined here once.</summary>
    public static readonly string[] Keys = ["name", "format", "d_model", "mlp", "norm_eps", "qk_norm_eps", "rope_theta", "attention_scale", "parameters", "roles"];

    public Architecture(string name, TokenFormat format, int dModel, string mlp, double normEps, double qkNormEps, double? ropeTheta,
                        double? attentionScale, IReadOnlyList<ParameterDefinition> parameters, IReadOnlyList<KeyValuePair<string, string>> roles)
    {
        Name = name; Format = format; DModel = dModel; Mlp = mlp; NormEps = normEps; QkNormEps = qkNormEps;
        RopeTheta = ropeTheta; AttentionScale = attentionScale; Parameters = parameters; Roles = roles;
        Validate();
    }

    /// <summary>Unique trained parameters: the stored ones (frozen tables are constants, not parameters).</summary>
    public int Count => Parameters.Sum(p => p.Size);

    string? canonical;
    public string ToJson() => canonical ??= ToJsonObject().ToJsonString();
    public override bool Equals(object? obj) => obj is Architecture a && a.ToJson() == ToJson();
    public override int GetHashCode() => ToJson().GetHashCode();

    JsonObject ToJsonObject()
    {
        var parameters = new JsonObject();
        foreach (var p in Parameters)
        {
            JsonNode init = p.Init.Kind == "values" ? new JsonArray(p.Init.Values!.Select(v => (JsonNode)JsonValue.Create(v)!).ToArray()) : JsonValue.Create(p.Init.Text)!;
            parameters[p.Name] = new JsonObject { ["shape"] = new JsonArray(p.Shape.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()), ["init"] = init };
        }
        var roles = new JsonObject();
        foreach (var (role, expr) in Roles) roles[role] = expr;
        var o = new JsonObject { ["name"] = Name, ["format"] = Format.Name, ["d_model"] = DModel, ["mlp"] = Mlp, ["norm_eps"] = NormEps, ["qk_norm_eps"] = QkNormEps };
        if (RopeTheta is { } theta) o["rope_theta"] = theta;
        if (AttentionScale is { } scale) o["attention_scale"] = scale;
        o["parameters"] = parameters;
        o["roles"] = roles;
        return o;
    }

    public static Architecture FromJson(string json, string source)
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new AdderException($"{source}: an architecture is a JSON object"); }
        catch (JsonException e) { throw new AdderException($"{source}: not valid JSON ({e.Message.Split('.')[0]})"); }
        try { return FromJsonObject(o); }
        catch (AdderException e) { throw new AdderException($"{source}: {e.Message}"); }
        catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException)
        {
            throw new AdderException($"{source}: malformed architecture ({e.Message})");
        }
    }

    static Architecture FromJsonObject(JsonObject o)
    {
        foreach (var (key, _) in o)
            if (!Keys.Contains(key)) throw new AdderException($"unknown architecture key '{Limits.Echo(key)}' (known: {string.Join(", ", Keys)})");
        JsonNode Required(string key) => o[key] ?? throw new AdderException($"the architecture has no '{key}'");
        string Str(string key) => Required(key).GetValueKind() == JsonValueKind.String ? Required(key).GetValue<string>() : throw new AdderException($"'{key}' is not a string");
        double Num(JsonNode n, string what) => n.GetValueKind() == JsonValueKind.Number ? n.GetValue<double>() : throw new AdderException($"'{what}' is not a number");
        double? OptionalNum(string key) => o[key] is { } n ? Num(n, key) : null;

        int dModel = (int)Num(Required("d_model"), "d_model");
        var parameters = new List<ParameterDefinition>();
        if (Required("parameters") is not JsonObject ps) throw new AdderException("'parameters' is not an object of name: {shape, init}");
        foreach (var (name, node) in ps)
        {
            if (node is not JsonObject p) throw new AdderException($"parameter '{Limits.Echo(name)}' is not an object {{shape, init}}");
            foreach (var (k, _) in p)
                if (k is not ("shape" or "init")) throw new AdderException($"parameter '{Limits.Echo(name)}': unknown key '{Limits.Echo(k)}' (known: shape, init)");
            if (p["shape"] is not JsonArray shapeNode) throw new AdderException($"parameter '{Limits.Echo(name)}' has no shape list");
            var shape = shapeNode.Select(s => (int)Num(s!, name + ".shape")).ToArray();
            parameters.Add(new ParameterDefinition(name, shape, ParseInit(p["init"], name)));
        }
        if (Required("roles") is not JsonObject rs) throw new AdderException("'roles' is not an object of role: expression");
        var roles = rs.Select(r => new KeyValuePair<string, string>(r.Key,
            r.Value?.GetValueKind() == JsonValueKind.String ? r.Value.GetValue<string>() : throw new AdderException($"role {Limits.Echo(r.Key)}: the expression is not a string"))).ToList();
        return new Architecture(o["name"] is null ? "custom" : Str("name"), TokenFormat.Named(Str("format")), dModel,
            o["mlp"] is null ? Gelu : Str("mlp"), OptionalNum("norm_eps") ?? 1e-5, OptionalNum("qk_norm_eps") ?? OptionalNum("norm_eps") ?? 1e-5,
            OptionalNum("rope_theta"), OptionalNum("attention_scale"), parameters, roles);
    }

    static ParameterInit ParseInit(JsonNode? node, string name)
    {
        if (node is null) return ParameterInit.Normal(0.02);
        if (node is JsonArray values) return ParameterInit.Given(values.Select(v => v!.GetValue<double>()).ToArray());
        if (node.GetValueKind() == JsonValueKind.Number) return ParameterInit.Constant(node.GetValue<double>());
        var parts = node.GetValue<string>().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 2 && parts[0] is "normal" or "uniform" or "constant"
            && double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double x) && double.IsFinite(x))
            return new ParameterInit(parts[0], x, null);
        throw new AdderException($"parameter '{Limits.Echo(name)}': init must be 'normal STD', 'uniform BOUND', 'constant C', a number or a list of values");
    }

    void Validate()
    {
        void Require(bool ok, string message) { if (!ok) throw new AdderException($"architecture {Limits.Echo(Name)}: {message}"); }
        Require(DModel is >= 1 and <= 64, $"d_model {DModel} (1 to 64)");
        Require(Mlp is Gelu or SwiGlu, $"mlp '{Limits.Echo(Mlp)}' (known: {Gelu}, {SwiGlu})");
        Require(NormEps > 0 && QkNormEps > 0 && double.IsFinite(NormEps) && double.IsFinite(QkNormEps), "norm eps must be positive");
        Require(RopeTheta is null || RopeTheta > 0 && double.IsFinite(RopeTheta.Value), "rope_theta must be positive");
        Require(Parameters.Count > 0, "no stored parameters");
        var names = new HashSet<string>();
        foreach (var p in Parameters)
        {
            Require(names.Add(p.Name), $"parameter '{Limits.Echo(p.Name)}' is defined twice");
            Require(p.Shape.Length <= 2 && p.Shape.All(s => s is >= 1 and <= 4096), $"parameter '{Limits.Echo(p.Name)}' has shape [{string.Join(", ", p.Shape)}] (one or two dimensions of 1 to 4096; a scalar is [1])");
            Require(p.Init.Kind != "values" || p.Init.Values!.Length == p.Size, $"parameter '{Limits.Echo(p.Name)}' has {p.Size} values but its init lists {p.Init.Values?.Length}");
        }
        Compile();
    }

    /// <summary>Builds the role graph and checks every role against the block: the roles it needs are there,
    /// each of the shape the block and the format give it, and every stored parameter is used.</summary>
    public CompiledArchitecture Compile() => new(this);

    /// <summary>An expression in the roles' algebra over this architecture's stored parameters and roles, at the
    /// given parameter values (a parameter's start when weights move into another architecture).</summary>
    public Mat Evaluate(string expression, ReadOnlySpan<double> parameters, string what) =>
        Compile().EvaluateOnOwnGraph(expression, parameters, what);
}
