namespace Adder.Core;

/// <summary>The 14-token vocabulary and the sequence format of SPEC section 1.</summary>
public static class Tokens
{
    public const int Plus = 10, EqualsSign = 11, Pad = 12, Eos = 13;
    public const int VocabSize = 14;
    public const int OperandDigits = 10;
    public const int SumDigits = 11;
    public const int PromptLength = 22;          // a9..a0 + b9..b0 =
    public const int TargetLength = 12;          // 11 reversed sum digits, EOS
    public const int FullLength = PromptLength + TargetLength;   // 34
    public const int InputLength = FullLength - 1;               // 33 = max_seq_len
    public const int FirstScoredPosition = PromptLength - 1;     // 21: '=' predicts the lowest digit
    public const int ScoredPositions = TargetLength;             // 12
    public const long MaxOperand = 9_999_999_999L;

    static readonly string Symbols = "0123456789+=_$";

    public static string Name(int token) => token switch
    {
        Pad => "<PAD>",
        Eos => "<EOS>",
        >= 0 and < VocabSize => Symbols[token].ToString(),
        _ => $"<{token}>",
    };

    public static void CheckOperand(long x, string what = "operand")
    {
        if (x < 0) throw new AdderException($"{what} {x} is negative; operands must be in [0, {MaxOperand}]");
        if (x > MaxOperand) throw new AdderException($"{what} {x} has more than 10 digits; operands must be in [0, {MaxOperand}]");
    }

    /// <summary>Parses an operand as the CLI and pair files give it: plain decimal digits, at most 10.</summary>
    public static long ParseOperand(string text)
    {
        var s = text.Trim();
        if (s.Length == 0) throw new AdderException("empty operand");
        if (s[0] == '-') throw new AdderException($"operand '{Limits.Echo(s)}' is negative; operands must be in [0, {MaxOperand}]");
        foreach (var c in s)
            if (c < '0' || c > '9') throw new AdderException($"operand '{Limits.Echo(s)}' is not a non-negative integer");
        var digits = s.TrimStart('0');
        if (digits.Length > OperandDigits) throw new AdderException($"operand '{Limits.Echo(s)}' has more than 10 digits; operands must be in [0, {MaxOperand}]");
        return digits.Length == 0 ? 0 : long.Parse(digits);
    }

    /// <summary>Writes the 22-token prompt for a + b.</summary>
    public static void EncodePrompt(long a, long b, Span<int> prompt)
    {
        CheckOperand(a, "operand a");
        CheckOperand(b, "operand b");
        WriteOperandDigits(a, prompt[..OperandDigits]);
        prompt[OperandDigits] = Plus;
        WriteOperandDigits(b, prompt.Slice(OperandDigits + 1, OperandDigits));
        prompt[PromptLength - 1] = EqualsSign;
    }

    /// <summary>Writes the full 34-token training sequence: prompt, reversed 11-digit sum, EOS.</summary>
    public static void EncodeFull(long a, long b, Span<int> full)
    {
        EncodePrompt(a, b, full[..PromptLength]);
        // the sum's 11 digits, least significant first: two 5-digit groups in int arithmetic, then the carry
        long sum = a + b, high = sum / 100_000;
        int low = (int)(sum - high * 100_000), mid = (int)(high % 100_000);
        var digits = full.Slice(PromptLength, SumDigits);
        for (int i = 0; i < 5; i++) { int q = low / 10; digits[i] = low - q * 10; low = q; }
        for (int i = 5; i < 10; i++) { int q = mid / 10; digits[i] = mid - q * 10; mid = q; }
        digits[10] = (int)(high / 100_000);
        full[FullLength - 1] = Eos;
    }

    public static int[] EncodeFull(long a, long b)
    {
        var full = new int[FullLength];
        EncodeFull(a, b, full);
        return full;
    }

    /// <summary>The full sequences of a batch, [count][34]: what a backend trains and scores on.</summary>
    public static int[] EncodeFullBatch(long[] a, long[] b) => TokenFormat.Seed.EncodeFullBatch(a, b);

    /// <summary>EncodeFullBatch into a buffer (a training step's batch: small, encoded on this thread).</summary>
    public static void EncodeFullBatch(ReadOnlySpan<long> a, ReadOnlySpan<long> b, Span<int> tokens) => TokenFormat.Seed.EncodeFullBatch(a, b, tokens);

    /// <summary>The prompts of a batch, [count][22]: what a backend decodes from.</summary>
    public static int[] EncodePromptBatch(long[] a, long[] b) => TokenFormat.Seed.EncodePromptBatch(a, b);

    /// <summary>Reads a sum back from its reversed digits (least significant first); -1 if any token is not a digit.</summary>
    public static long DecodeReversedSum(ReadOnlySpan<int> reversedDigits)
    {
        long value = 0;
        for (int i = reversedDigits.Length - 1; i >= 0; i--)
        {
            int d = reversedDigits[i];
            if (d < 0 || d > 9) return -1;
            value = value * 10 + d;
        }
        return value;
    }

    /// <summary>An operand's 10 digits, most significant first, as two 5-digit groups in int arithmetic (a
    /// long division per digit made encoding a visible part of a training step).</summary>
    static void WriteOperandDigits(long x, Span<int> digits)
    {
        int high = (int)(x / 100_000), low = (int)(x - high * 100_000L);
        for (int i = 9; i >= 5; i--) { int q = low / 10; digits[i] = low - q * 10; low = q; }
        for (int i = 4; i >= 0; i--) { int q = high / 10; digits[i] = high - q * 10; high = q; }
    }
}
