namespace Adder.Core;

/// <summary>Reads a MicroAdder checkpoint (evindor/MicroAdder: model_state_dict + config) into the 67p or 57p
/// architecture. The authors' repository holds two codebases whose checkpoints name things differently: the
/// research code (`src/`, blocks.0.* names, the 67p's file) and the later package (`microadder/`, flat names, the
/// 57p's file). The config must describe the shape those presets express, and the file's frozen buffers and tied
/// duplicates must hold what the presets assume (the spiral's constants, zero PLUS/EOS positions, one norm
/// weight, A = B of the arc): anything else is refused in one line rather than computed wrongly.</summary>
public static class MicroAdderImport
{
    /// <summary>One codebase's checkpoint: the config it must carry, its state-dict names for the presets'
    /// parameters (the authors' submission names), the duplicates that must equal their original, the buffers
    /// with no parameter behind them, and how it says whether the MLP output is the head's transpose (the 57p).</summary>
    sealed record Dialect(
        string Name,
        (string Key, object Value)[] Expected,
        (string From, string To)[] Names,
        (string Copy, string Of)[] Tied,
        string[] Buffers,
        Func<Dictionary<string, object?>, HashSet<string>, bool> TiedMlpOut);

    static readonly string[] SharedBuffers =
        ["spiral_amp", "spiral_phase", "spiral_slope", "spiral_offset", "_plus_pos", "_eos_pos", "_pos_sources", "_pos_indices"];

    static readonly Dialect Research = new(
        "research code",
        [
            ("d_model", 5L), ("tok_dim", 2L), ("pos_dim", 3L), ("n_heads", 1L), ("head_dim", 5L), ("qk_dim", 4L), ("n_layers", 1L),
            ("ffn_dim", 2L), ("ffn_bias", false), ("vocab_size", 10L), ("tie_qk", true), ("q_phase", true), ("tie_vo", true),
            ("attn_out_rank", 1L), ("norm_mode", "shared"), ("tok_emb_mode", "parametric"), ("tie_tok_arc_ab", true),
            ("freeze_spiral", "amp,phase,slope,offset"), ("freeze_special", "plus_eos"), ("qk_source", "pos"), ("alibi", false),
            ("softmax1", false), ("num_kv_heads", 0L), ("q_proj_rank", 0L), ("share_layers", false),
        ],
        [
            ("tok_arc_A", "tok_arc_A"), ("tok_arc_start", "tok_arc_start"), ("tok_arc_stride", "tok_arc_stride"),
            ("z_hi_pos", "z_hi_pos"), ("special_pos_equals", "special_pos_equals"),
            ("blocks.0.attn.q_phase_angle", "q_phase_angle"), ("blocks.0.attn.q_proj.weight", "q_proj.weight"),
            ("blocks.0.attn.out_proj.A", "out_proj_A"), ("blocks.0.attn.out_proj.B", "out_proj_B"),
            ("blocks.0.ln1.weight", "norm_weight"), ("blocks.0.ffn.fc1.weight", "fc1.weight"),
            ("blocks.0.ffn.fc2.weight", "fc2.weight"), ("head_proj.weight", "head_proj.weight"),
        ],
        [("tok_arc_B", "tok_arc_A"), ("blocks.0.ln2.weight", "blocks.0.ln1.weight"), ("ln_f.weight", "blocks.0.ln1.weight")],
        [.. SharedBuffers, "blocks.0.attn.causal_mask"],
        (_, names) => !names.Contains("blocks.0.ffn.fc2.weight"));

    static readonly Dialect Package = new(
        "package",
        [
            ("d_model", 5L), ("tok_dim", 2L), ("pos_dim", 3L), ("n_heads", 1L), ("head_dim", 5L), ("qk_dim", 4L),
            ("ffn_dim", 2L), ("vocab_size", 10L), ("norm_mode", "weighted"), ("qk_input", "pos"), ("freeze_tok_arc", ""),
            ("freeze_spiral", "amp,phase,slope,offset"), ("equals_spiral_idx", -1.0),
        ],
        [
            ("tok_arc_A", "tok_arc_A"), ("tok_arc_start", "tok_arc_start"), ("tok_arc_stride", "tok_arc_stride"),
            ("z_hi_pos", "z_hi_pos"), ("special_pos_equals", "special_pos_equals"), ("q_phase_angle", "q_phase_angle"),
            ("q_proj.weight", "q_proj.weight"), ("out_proj.A", "out_proj_A"), ("out_proj.B", "out_proj_B"),
            ("norm1.weight", "norm_weight"), ("fc1.weight", "fc1.weight"), ("fc2.weight", "fc2.weight"),
            ("head_proj.weight", "head_proj.weight"),
        ],
        [("norm2.weight", "norm1.weight"), ("norm_f.weight", "norm1.weight")],
        [.. SharedBuffers, "causal_mask"],
        (config, _) => config.TryGetValue("tie_fc2_head", out var tied) && tied is true);

    public static Model ToModel(List<StoredTensor> tensors, Dictionary<string, object?> config, string path)
    {
        AdderException Refuse(string why) => new($"{path}: a MicroAdder checkpoint this import does not cover: {why}");
        // the research code's configs say how many layers; the package has one and no such key
        var dialect = config.ContainsKey("n_layers") ? Research : Package;
        foreach (var (key, value) in dialect.Expected)
        {
            config.TryGetValue(key, out var got);
            object? normal = got is int i ? (long)i : got;
            if (!Equals(normal, value)) throw Refuse($"config {key} is {Show(got)}, the 67p/57p presets have {Show(value)} ({dialect.Name} checkpoint)");
        }
        if (config.TryGetValue("pos_correction_mode", out var correction) && correction is string c && c != "none")
            throw Refuse($"config pos_correction_mode is {Show(c)}");
        var byName = tensors.ToDictionary(t => t.Name);
        float[] Get(string name) => byName.TryGetValue(name, out var t) ? t.Data : throw Refuse($"no tensor '{name}'");
        void Frozen(string name, params float[] values)
        {
            if (!Get(name).AsSpan().SequenceEqual(values)) throw Refuse($"frozen '{name}' is [{string.Join(", ", Get(name))}], not [{string.Join(", ", values)}]");
        }
        Frozen("spiral_amp", 3.5f); Frozen("spiral_phase", 0f); Frozen("spiral_slope", 0.15f); Frozen("spiral_offset", 0f);
        Frozen("_plus_pos", 0f, 0f, 0f); Frozen("_eos_pos", 0f, 0f, 0f);
        foreach (var (copy, of) in dialect.Tied)
            if (!Get(copy).AsSpan().SequenceEqual(Get(of)))
                throw Refuse($"'{copy}' differs from '{of}' (the presets tie them)");

        // the 57p's MLP output is the head's transpose: no fc2 of its own
        var arch = ArchitecturePresets.Load(dialect.TiedMlpOut(config, [.. byName.Keys]) ? "57p" : "67p");
        var model = new Model(ModelConfig.Of(arch));
        var known = new HashSet<string>([.. dialect.Buffers, .. dialect.Tied.Select(t => t.Copy)]);
        foreach (var (from, to) in dialect.Names)
        {
            if (!model.Layout.Contains(to)) continue;
            var spec = model.Layout[to];
            var data = Get(from);
            if (data.Length != spec.Size) throw Refuse($"'{from}' has {data.Length} values, the preset's '{to}' {spec.Size}");
            data.CopyTo(model.Parameters, spec.Offset);
            known.Add(from);
        }
        foreach (var t in tensors)
            if (!known.Contains(t.Name)) throw Refuse($"unexpected tensor '{Limits.Echo(t.Name)}'");
        foreach (var x in model.Parameters)
            if (!float.IsFinite(x)) throw new AdderException($"{path}: parameters contain NaN or infinity");
        return model;
    }

    static string Show(object? v) => v switch { null => "missing", string s => $"'{Limits.Echo(s)}'", bool b => b ? "true" : "false", _ => v.ToString()! };
}
