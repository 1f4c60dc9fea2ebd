using System.Globalization;

namespace Adder.Core;

/// <summary>AdamW's step and moments, and the Grokfast filter's gradient average when the run uses one
/// (null until its first filtered step), saved in training checkpoints so a resumed run continues bit for bit.</summary>
public sealed record OptimizerState(long Step, float[] M, float[] V, float[]? GrokfastEma = null);

/// <summary>A model with what its file says about it. Loads either format; saves ours (safetensors:
/// tensor names as SPEC section 2 without the tied lm_head, the config and facts in __metadata__).</summary>
/// <summary>A model with its metadata; a training checkpoint adds the optimizer's state and, when the run keeps
/// one, the moving average of its weights (WeightsEma).</summary>
public sealed class Checkpoint(Model model, Dictionary<string, string>? metadata = null, OptimizerState? optimizer = null, float[]? weightsEma = null)
{
    public const string Format = "adder-1";
    const string OptimizerM = "optimizer.m", OptimizerV = "optimizer.v", OptimizerEma = "optimizer.grokfast_ema", WeightsEmaName = "training.weights_ema";

    public Model Model { get; } = model;
    public Dictionary<string, string> Metadata { get; } = metadata ?? [];
    public OptimizerState? Optimizer { get; } = optimizer;
    public float[]? WeightsEma { get; } = weightsEma;

    public static Checkpoint Load(string path)
    {
        // a regular file of at most Limits.MaxCheckpointBytes: /dev/zero or a FIFO is refused before any read
        byte[] bytes = SafeFiles.ReadAllBytes(path, Limits.MaxCheckpointBytes, "checkpoint");
        if (bytes.Length == 0) throw new AdderException($"checkpoint {path} is empty");
        try
        {
            return bytes is [(byte)'P', (byte)'K', ..] ? FromTorch(bytes, path) : FromSafetensors(bytes, path);
        }
        catch (Exception e) when (e is not AdderException)
        {
            // a corrupt file must end in a one-line error, whatever the parser tripped on
            throw new AdderException($"{path}: corrupt checkpoint ({e.GetType().Name}: {e.Message})");
        }
    }

    static Checkpoint FromTorch(byte[] bytes, string path)
    {
        var (tensors, configValues, metadata) = TorchCheckpoint.Read(bytes, path);
        if (metadata.TryGetValue("source_format", out var source) && source == "microadder")
            return new Checkpoint(MicroAdderImport.ToModel(tensors, configValues, path), metadata);
        var config = ConfigJson.FromDictionary(configValues, path);
        var byName = tensors.ToDictionary(t => t.Name);
        // lm_head.weight is the tied output head: the same storage as token_emb.weight
        if (byName.Remove("lm_head.weight", out var head))
        {
            if (!byName.TryGetValue("token_emb.weight", out var emb) || !head.Data.AsSpan().SequenceEqual(emb.Data))
                throw new AdderException($"{path}: lm_head.weight differs from token_emb.weight; only the tied head is supported");
        }
        metadata["source_format"] = "pytorch";
        return new Checkpoint(Assemble(config, byName, path), metadata);
    }

    static Checkpoint FromSafetensors(byte[] bytes, string path)
    {
        var (tensors, metadata) = Safetensors.Read(bytes, path);
        // another tool's safetensors (format "pt", say) or a later adder format is not read as ours
        if (metadata.TryGetValue("format", out var format) && format != Format)
            throw new AdderException($"{path}: safetensors format '{Limits.Echo(format)}' is not {Format} (written by another tool or a later adder?)");
        if (!metadata.TryGetValue("model_config", out var configJson))
            throw new AdderException($"{path}: no model_config in the safetensors metadata (not written by adder?)");
        var config = ConfigJson.Read(configJson, path);
        var byName = tensors.ToDictionary(t => t.Name);
        OptimizerState? optimizer = null;
        if (byName.Remove(OptimizerM, out var m) | byName.Remove(OptimizerV, out var v))
        {
            if (m is null || v is null || !metadata.TryGetValue("optimizer_step", out var stepText)
                || !long.TryParse(stepText, NumberStyles.None, CultureInfo.InvariantCulture, out long step))
                throw new AdderException($"{path}: incomplete optimizer state");
            byName.Remove(OptimizerEma, out var ema);
            optimizer = new OptimizerState(step, m.Data, v.Data, ema?.Data);
        }
        byName.Remove(WeightsEmaName, out var weightsEma);
        var model = Assemble(config, byName, path);
        if (weightsEma is not null && weightsEma.Data.Length != model.Layout.Count)
            throw new AdderException($"{path}: the weights' average has {weightsEma.Data.Length} values, the model {model.Layout.Count}");
        if (optimizer is not null && (optimizer.M.Length != model.Layout.Count || optimizer.V.Length != model.Layout.Count
                                      || optimizer.GrokfastEma is { } e && e.Length != model.Layout.Count))
            throw new AdderException($"{path}: optimizer state has {optimizer.M.Length} values, the model {model.Layout.Count}");
        metadata.Remove("optimizer_step");
        return new Checkpoint(model, metadata, optimizer, weightsEma?.Data);
    }

    /// <summary>Places named tensors into a model's flat buffer, insisting on exactly the layout's names and shapes.</summary>
    static Model Assemble(ModelConfig config, Dictionary<string, StoredTensor> byName, string path)
    {
        // names and shapes are checked before the model is allocated: a small file claiming a huge config
        // fails on its missing tensors instead of allocating the config's parameters
        foreach (var spec in new ParameterLayout(config).Tensors)
        {
            if (!byName.TryGetValue(spec.Name, out var t)) throw new AdderException($"{path}: missing tensor '{spec.Name}' {spec.ShapeText}");
            if (!t.Shape.SequenceEqual(spec.Shape))
                throw new AdderException($"{path}: tensor '{spec.Name}' has shape [{string.Join(", ", t.Shape)}], the config needs {spec.ShapeText}");
        }
        var model = new Model(config);
        foreach (var spec in model.Layout.Tensors)
        {
            byName.Remove(spec.Name, out var t);
            t!.Data.CopyTo(model.Parameters, spec.Offset);
        }
        if (byName.Count > 0) throw new AdderException($"{path}: unexpected tensor '{Limits.Echo(byName.Keys.First())}' for config {config.Describe()}");
        foreach (var x in model.Parameters)
            if (!float.IsFinite(x)) throw new AdderException($"{path}: parameters contain NaN or infinity");
        return model;
    }

    /// <summary>Writes safetensors atomically (<see cref="AtomicFile"/>).</summary>
    public void Save(string path)
    {
        SafeFiles.CheckWritable(path, "output");
        var tensors = Model.Layout.Tensors
            .Select(t => new StoredTensor(t.Name, t.Shape, Model.Parameters.AsSpan(t.Offset, t.Size).ToArray())).ToList();
        var metadata = new Dictionary<string, string>(Metadata)
        {
            ["format"] = Format,
            ["model_config"] = ConfigJson.Write(Model.Config),
            ["params"] = Model.Layout.Count.ToString(CultureInfo.InvariantCulture),
        };
        if (Optimizer is not null)
        {
            tensors.Add(new StoredTensor(OptimizerM, [Optimizer.M.Length], Optimizer.M));
            tensors.Add(new StoredTensor(OptimizerV, [Optimizer.V.Length], Optimizer.V));
            if (Optimizer.GrokfastEma is { } ema) tensors.Add(new StoredTensor(OptimizerEma, [ema.Length], ema));
            metadata["optimizer_step"] = Optimizer.Step.ToString(CultureInfo.InvariantCulture);
        }
        if (WeightsEma is { } average) tensors.Add(new StoredTensor(WeightsEmaName, [average.Length], average));
        AtomicFile.Write(path, stream => Safetensors.Write(stream, tensors, metadata));
    }
}
