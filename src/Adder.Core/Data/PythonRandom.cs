using System.Numerics;

namespace Adder.Core;

/// <summary>CPython's random.Random: MT19937 seeded from an int through init_by_array, with getrandbits,
/// _randbelow (rejection sampling on n.bit_length() bits) and randint as CPython 3 computes them, so that
/// AdderBoard's pairs (random.Random(2025), randint(0, 9999999999)) are reproduced exactly.</summary>
public sealed class PythonRandom
{
    readonly Mt19937 mt;

    /// <summary>random.Random(seed) for an int seed: the key is |seed| split into 32-bit words, least
    /// significant first ([0] for 0).</summary>
    public PythonRandom(BigInteger seed)
    {
        var n = BigInteger.Abs(seed);
        var key = new List<uint>();
        while (n > 0) { key.Add((uint)(n & uint.MaxValue)); n >>= 32; }
        if (key.Count == 0) key.Add(0);
        mt = new Mt19937(key);
    }

    /// <summary>The next 32-bit output of MT19937 (genrand_uint32).</summary>
    public uint NextUInt32() => mt.NextUInt32();

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
