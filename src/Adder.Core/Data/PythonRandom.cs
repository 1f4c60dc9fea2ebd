using System.Numerics;

namespace Adder.Core;

/// <summary>CPython's random.Random: MT19937 seeded from an int through init_by_array, with getrandbits,
/// _randbelow (rejection sampling on n.bit_length() bits) and randint as CPython 3 computes them, so that
/// AdderBoard's pairs (random.Random(2025), randint(0, 9999999999)) are reproduced exactly.</summary>
public sealed class PythonRandom
{
    const int N = 624, M = 397;
    readonly uint[] mt = new uint[N];
    int index;

    /// <summary>random.Random(seed) for an int seed: the key is |seed| split into 32-bit words, least
    /// significant first ([0] for 0).</summary>
    public PythonRandom(BigInteger seed)
    {
        var n = BigInteger.Abs(seed);
        var key = new List<uint>();
        while (n > 0) { key.Add((uint)(n & uint.MaxValue)); n >>= 32; }
        if (key.Count == 0) key.Add(0);
        InitByArray(key);
    }

    void InitGenrand(uint s)
    {
        mt[0] = s;
        for (int i = 1; i < N; i++) mt[i] = 1812433253u * (mt[i - 1] ^ (mt[i - 1] >> 30)) + (uint)i;
        index = N;
    }

    void InitByArray(List<uint> key)
    {
        InitGenrand(19650218u);
        int i = 1, j = 0;
        for (int k = Math.Max(N, key.Count); k > 0; k--)
        {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint)j;
            i++; j++;
            if (i >= N) { mt[0] = mt[N - 1]; i = 1; }
            if (j >= key.Count) j = 0;
        }
        for (int k = N - 1; k > 0; k--)
        {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941u)) - (uint)i;
            i++;
            if (i >= N) { mt[0] = mt[N - 1]; i = 1; }
        }
        mt[0] = 0x80000000u;   // non-zero initial array
        index = N;
    }

    /// <summary>The next 32-bit output of MT19937 (genrand_uint32).</summary>
    public uint NextUInt32()
    {
        if (index >= N)
        {
            for (int k = 0; k < N; k++)
            {
                uint y = (mt[k] & 0x80000000u) | (mt[(k + 1) % N] & 0x7fffffffu);
                mt[k] = mt[(k + M) % N] ^ (y >> 1) ^ ((y & 1u) != 0 ? 0x9908b0dfu : 0u);
            }
            index = 0;
        }
        uint x = mt[index++];
        x ^= x >> 11;
        x ^= (x << 7) & 0x9d2c5680u;
        x ^= (x << 15) & 0xefc60000u;
        x ^= x >> 18;
        return x;
    }

    /// <summary>getrandbits(k), 1 ≤ k ≤ 64: 32-bit words filled least significant first, the last one
    /// keeping only its top bits.</summary>
    public ulong GetRandBits(int k)
    {
        if (k < 1 || k > 64) throw new ArgumentOutOfRangeException(nameof(k));
        if (k <= 32) return NextUInt32() >> (32 - k);
        ulong result = 0;
        for (int shift = 0; k > 0; shift += 32, k -= 32)
        {
            uint r = NextUInt32();
            if (k < 32) r >>= 32 - k;
            result |= (ulong)r << shift;
        }
        return result;
    }

    /// <summary>_randbelow(n): draws n.bit_length() bits until the value is below n.</summary>
    public ulong RandBelow(ulong n)
    {
        if (n == 0) throw new ArgumentOutOfRangeException(nameof(n));
        int k = 64 - BitOperations.LeadingZeroCount(n);
        ulong r = GetRandBits(k);
        while (r >= n) r = GetRandBits(k);
        return r;
    }

    /// <summary>randint(a, b): a + _randbelow(b − a + 1), both ends included.</summary>
    public long RandInt(long a, long b)
    {
        if (b < a) throw new ArgumentOutOfRangeException(nameof(b));
        return a + (long)RandBelow((ulong)(b - a) + 1);
    }
}
