namespace Adder.Core;

/// <summary>torch's CPU generator: MT19937 seeded the classic way (the stream of std::mt19937(seed)),
/// with torch.randint's CPU rule for turning words into integers (SPEC section 4).</summary>
public sealed class TorchGenerator
{
    const int N = 624, M = 397;
    readonly uint[] state = new uint[N];
    int index;

    public TorchGenerator(ulong seed)
    {
        state[0] = (uint)seed;
        for (int i = 1; i < N; i++) state[i] = 1812433253u * (state[i - 1] ^ (state[i - 1] >> 30)) + (uint)i;
        index = N;
    }

    public uint NextUInt32()
    {
        if (index >= N) Twist();
        uint y = state[index++];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c5680u;
        y ^= (y << 15) & 0xefc60000u;
        y ^= y >> 18;
        return y;
    }

    void Twist()
    {
        for (int i = 0; i < N; i++)
        {
            uint y = (state[i] & 0x80000000u) | (state[(i + 1) % N] & 0x7fffffffu);
            uint next = state[(i + M) % N] ^ (y >> 1);
            state[i] = (y & 1) != 0 ? next ^ 0x9908b0dfu : next;
        }
        index = 0;
    }

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
    public uint[] GetState()
    {
        var s = new uint[N + 1];
        state.CopyTo(s, 0);
        s[N] = (uint)index;
        return s;
    }

    public void SetState(uint[] s)
    {
        if (s.Length != N + 1 || s[N] > N) throw new AdderException("corrupt generator state");
        Array.Copy(s, state, N);
        index = (int)s[N];
    }
}
