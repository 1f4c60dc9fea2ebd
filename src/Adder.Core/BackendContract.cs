namespace Adder.Core;

/// <summary>The argument rules every <see cref="IBackend"/> keeps, so that the backends fail alike: a model
/// index outside 0 .. Models−1 is an ArgumentOutOfRangeException; a batch below 1 (TrainStep, LossAndGradient)
/// likewise; a count below 0 too, while a count of 0 (Logits, Decode) does nothing; every buffer must have
/// exactly the length its verb's layout gives, else an ArgumentException naming it.</summary>
public static class BackendContract
{
    public static void Model(int model, int models)
    {
        if (model < 0 || model >= models) throw new ArgumentOutOfRangeException(nameof(model), $"model {model} of {models}");
    }

    public static void Batch(int batch)
    {
        if (batch < 1) throw new ArgumentOutOfRangeException(nameof(batch), $"a batch holds at least one sequence, got {batch}");
    }

    public static void Count(int count)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), $"count {count} is negative");
    }

    public static void Length(int length, long expected, string what)
    {
        if (length != expected) throw new ArgumentException($"{what}: {length} values, expected {expected}");
    }
}
