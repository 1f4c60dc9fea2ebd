namespace Adder.Core;

/// <summary>torch's CPU generator: MT19937 seeded the classic way (the stream of std::mt19937(seed)),
/// with torch.randint's CPU rule for turning words into integers (SPEC section 4).</summary>
public sealed class TorchGenerator
{
    readonly Mt19937 mt;

    public TorchGenerator(ulong seed) => mt = new Mt19937((uint)seed);

    public uint NextUInt32() => mt.NextUInt32();

    /// <summary>torch.randint(lo, hi) on the CPU: one 32-bit word when the range fits in 32 bits, else two.</summary>
    public long RandInt(long lo, long hi)
    {
        ulong range = (ulong)(hi - lo);
        if (range >= 1UL << 32)
        {
            ulong u1 = NextUInt32(), u2 = NextUInt32();
            return (long)(((u1 << 32) | u2) % range) + lo;
        }
        return (long)(NextUInt32() % range) + lo;
    }

    /// <summary>The 624 state words followed by the position, for saving a run mid-stream.</summary>
    public uint[] GetState() => mt.GetState();
    public void GetState(Span<uint> into) => mt.GetState(into);

    public void SetState(uint[] s) => mt.SetState(s);
}
