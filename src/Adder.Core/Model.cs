namespace Adder.Core;

/// <summary>A config with its parameters: one flat float buffer, addressed through the layout's named views.</summary>
public sealed class Model
{
    public ModelConfig Config { get; }
    public ParameterLayout Layout { get; }
    public float[] Parameters { get; }

    public Model(ModelConfig config, float[]? parameters = null)
    {
        Config = config;
        Layout = new ParameterLayout(config);
        if (parameters is not null && parameters.Length != Layout.Count)
            throw new AdderException($"parameter buffer has {parameters.Length} values, the config needs {Layout.Count}");
        Parameters = parameters ?? new float[Layout.Count];
    }

    public static Model Initialised(ModelConfig config, int seed)
    {
        var model = new Model(config);
        model.Layout.Initialise(model.Parameters, seed);
        return model;
    }

    public Span<float> Tensor(string name)
    {
        var t = Layout[name];
        return Parameters.AsSpan(t.Offset, t.Size);
    }
}
