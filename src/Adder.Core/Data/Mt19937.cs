namespace Adder.Core;

/// <summary>The 32-bit Mersenne Twister MT19937 (Matsumoto and Nishimura), the one generator under both torch's
/// CPU generator (<see cref="TorchGenerator"/>) and CPython's random (<see cref="PythonRandom"/>); they differ
/// only in how they seed it and turn its words into integers.</summary>
public sealed class Mt19937
{
    const int N = 624, M = 397;
    readonly uint[] state = new uint[N];
    int index;

    /// <summary>Classic seeding (init_genrand): the stream of std::mt19937(seed).</summary>
    public Mt19937(uint seed) => InitGenrand(seed);

    /// <summary>Seeding from a key of 32-bit words (init_by_array), as CPython seeds from an int.</summary>
    public Mt19937(IReadOnlyList<uint> key)
    {
        if (key.Count == 0) throw new ArgumentException("empty key", nameof(key));
        InitGenrand(19650218u);
        int i = 1, j = 0;
        for (int k = Math.Max(N, key.Count); k > 0; k--)
        {
            state[i] = (state[i] ^ ((state[i - 1] ^ (state[i - 1] >> 30)) * 1664525u)) + key[j] + (uint)j;
            i++; j++;
            if (i >= N) { state[0] = state[N - 1]; i = 1; }
            if (j >= key.Count) j = 0;
        }
        for (int k = N - 1; k > 0; k--)
        {
            state[i] = (state[i] ^ ((state[i - 1] ^ (state[i - 1] >> 30)) * 1566083941u)) - (uint)i;
            i++;
            if (i >= N) { state[0] = state[N - 1]; i = 1; }
        }
        state[0] = 0x80000000u;   // non-zero initial array
        index = N;
    }

    void InitGenrand(uint seed)
    {
        state[0] = seed;
        for (int i = 1; i < N; i++) state[i] = 1812433253u * (state[i - 1] ^ (state[i - 1] >> 30)) + (uint)i;
        index = N;
    }

    /// <summary>The next 32-bit output (genrand_uint32).</summary>
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

    // The reference's three loops (no index wraps inside them): a sampler spends about half its time here.
    void Twist()
    {
        var s = state.AsSpan();
        int i = 0;
        for (; i < N - M; i++) s[i] = Mix(s[i], s[i + 1], s[i + M]);
        for (; i < N - 1; i++) s[i] = Mix(s[i], s[i + 1], s[i + M - N]);
        s[N - 1] = Mix(s[N - 1], s[0], s[M - 1]);
        index = 0;
    }

    static uint Mix(uint current, uint next, uint far)
    {
        uint y = (current & 0x80000000u) | (next & 0x7fffffffu);
        return far ^ (y >> 1) ^ (0x9908b0dfu & (0u - (y & 1)));
    }

    /// <summary>The 624 state words followed by the position, for saving a run mid-stream.</summary>
    public uint[] GetState()
    {
        var s = new uint[StateLength];
        GetState(s);
        return s;
    }

    public const int StateLength = N + 1;

    /// <summary>GetState into a caller's buffer of <see cref="StateLength"/> words (no allocation: taken every
    /// step by the training loop).</summary>
    public void GetState(Span<uint> into)
    {
        if (into.Length != StateLength) throw new ArgumentException($"a generator state is {StateLength} words, not {into.Length}");
        state.CopyTo(into);
        into[N] = (uint)index;
    }

    public void SetState(uint[] s)
    {
        if (s.Length != N + 1 || s[N] > N) throw new AdderException("corrupt generator state");
        Array.Copy(s, state, N);
        index = (int)s[N];
    }
}
