namespace Adder.Core;

/// <summary>Reads a MicroAdder checkpoint (evindor/MicroAdder: model_state_dict + config) into the 67p or 57p
/// architecture. The config must describe the shape those presets express, and the file's frozen buffers
/// and tied duplicates must hold what the presets assume (the spiral's constants, zero PLUS/EOS positions,
/// one norm weight, A = B of the arc): anything else is refused in one line rather than computed wrongly.</summary>
public static class MicroAdderImport
{
    /// <summary>Config key → the value the presets express.</summary>
    static readonly (string Key, object Value)[] Expected =
    [
        ("d_model", 5L), ("tok_dim", 2L), ("pos_dim", 3L), ("n_heads", 1L), ("head_dim", 5L), ("qk_dim", 4L), ("n_layers", 1L),
        ("ffn_dim", 2L), ("ffn_bias", false), ("vocab_size", 10L), ("tie_qk", true), ("q_phase", true), ("tie_vo", true),
        ("attn_out_rank", 1L), ("norm_mode", "shared"), ("tok_emb_mode", "parametric"), ("tie_tok_arc_ab", true),
        ("freeze_spiral", "amp,phase,slope,offset"), ("freeze_special", "plus_eos"), ("qk_source", "pos"), ("alibi", false),
        ("softmax1", false), ("num_kv_heads", 0L), ("q_proj_rank", 0L), ("share_layers", false),
    ];

    /// <summary>Their state-dict names → the presets' parameter names (the authors' submission names).</summary>
    static readonly (string From, string To)[] Names =
    [
        ("tok_arc_A", "tok_arc_A"), ("tok_arc_start", "tok_arc_start"), ("tok_arc_stride", "tok_arc_stride"),
        ("z_hi_pos", "z_hi_pos"), ("special_pos_equals", "special_pos_equals"),
        ("blocks.0.attn.q_phase_angle", "q_phase_angle"), ("blocks.0.attn.q_proj.weight", "q_proj.weight"),
        ("blocks.0.attn.out_proj.A", "out_proj_A"), ("blocks.0.attn.out_proj.B", "out_proj_B"),
        ("blocks.0.ln1.weight", "norm_weight"), ("blocks.0.ffn.fc1.weight", "fc1.weight"),
        ("blocks.0.ffn.fc2.weight", "fc2.weight"), ("head_proj.weight", "head_proj.weight"),
    ];

    public static Model ToModel(List<StoredTensor> tensors, Dictionary<string, object?> config, string path)
    {
        AdderException Refuse(string why) => new($"{path}: a MicroAdder checkpoint this import does not cover: {why}");
        foreach (var (key, value) in Expected)
        {
            config.TryGetValue(key, out var got);
            object? normal = got is int i ? (long)i : got;
            if (!Equals(normal, value)) throw Refuse($"config {key} is {Show(got)}, the 67p/57p presets have {Show(value)}");
        }
        if (config.TryGetValue("pos_correction_mode", out var correction) && correction is string c && c != "none")
            throw Refuse($"config pos_correction_mode is {Show(c)}");
        var byName = tensors.ToDictionary(t => t.Name);
        float[] Get(string name) => byName.TryGetValue(name, out var t) ? t.Data : throw Refuse($"no tensor '{name}'");
        void Frozen(string name, params float[] values)
        {
            if (!Get(name).AsSpan().SequenceEqual(values)) throw Refuse($"frozen '{name}' is [{string.Join(", ", Get(name))}], not [{string.Join(", ", values)}]");
        }
        void Tied(string name, string to)
        {
            if (!Get(name).AsSpan().SequenceEqual(Get(to))) throw Refuse($"'{name}' differs from '{to}' (the presets tie them)");
        }
        Frozen("spiral_amp", 3.5f); Frozen("spiral_phase", 0f); Frozen("spiral_slope", 0.15f); Frozen("spiral_offset", 0f);
        Frozen("_plus_pos", 0f, 0f, 0f); Frozen("_eos_pos", 0f, 0f, 0f);
        Tied("tok_arc_B", "tok_arc_A"); Tied("blocks.0.ln2.weight", "blocks.0.ln1.weight"); Tied("ln_f.weight", "blocks.0.ln1.weight");

        // the 57p's MLP output is the head's transpose: no fc2 of its own
        var arch = ArchitecturePresets.Load(byName.ContainsKey("blocks.0.ffn.fc2.weight") ? "67p" : "57p");
        var model = new Model(ModelConfig.Of(arch));
        var known = new HashSet<string>(["tok_arc_B", "blocks.0.ln2.weight", "ln_f.weight", "spiral_amp", "spiral_phase", "spiral_slope",
                                         "spiral_offset", "_plus_pos", "_eos_pos", "blocks.0.attn.causal_mask", "_pos_sources", "_pos_indices"]);
        foreach (var (from, to) in Names)
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
