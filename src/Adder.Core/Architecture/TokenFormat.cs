namespace Adder.Core;

/// <summary>How a pair a + b becomes a token sequence and how an answer is read back: part of a model's
/// description. A full sequence is the prompt then the target (teacher forcing); the model sees the first
/// InputLength tokens and is scored on the ScoredPositions predictions from FirstScoredPosition on. Decoding
/// generates SumDigits tokens after the prompt, the sum's digits least significant first in every format.</summary>
public abstract class TokenFormat
{
    public abstract string Name { get; }
    public abstract int VocabSize { get; }
    public abstract int PromptLength { get; }
    public abstract int TargetLength { get; }
    public int FullLength => PromptLength + TargetLength;
    public int InputLength => FullLength - 1;
    /// <summary>The prompt's last position predicts the first sum digit.</summary>
    public int FirstScoredPosition => PromptLength - 1;
    public int ScoredPositions => TargetLength;
    public const int SumDigits = Tokens.SumDigits;

    public abstract void EncodePrompt(long a, long b, Span<int> prompt);
    public abstract void EncodeFull(long a, long b, Span<int> full);

    /// <summary>The sum read from its generated digits (least significant first); -1 if a token is not a digit.</summary>
    public long DecodeSum(ReadOnlySpan<int> digits) => Tokens.DecodeReversedSum(digits);

    public int[] EncodeFullBatch(long[] a, long[] b) => EncodeBatch(a, b, FullLength, full: true);
    public int[] EncodePromptBatch(long[] a, long[] b) => EncodeBatch(a, b, PromptLength, full: false);

    public void EncodeFullBatch(ReadOnlySpan<long> a, ReadOnlySpan<long> b, Span<int> tokens)
    {
        if (b.Length != a.Length || tokens.Length < a.Length * FullLength) throw new ArgumentException("batch sizes differ");
        for (int i = 0; i < a.Length; i++) EncodeFull(a[i], b[i], tokens.Slice(i * FullLength, FullLength));
    }

    int[] EncodeBatch(long[] a, long[] b, int length, bool full)
    {
        if (b.Length != a.Length) throw new ArgumentException("batch sizes differ");
        var tokens = new int[a.Length * length];
        const int Block = 8192;
        void Encode(int first, int end)
        {
            for (int i = first; i < end; i++)
            {
                var example = tokens.AsSpan(i * length, length);
                if (full) EncodeFull(a[i], b[i], example); else EncodePrompt(a[i], b[i], example);
            }
        }
        if (a.Length < 2 * Block) Encode(0, a.Length);
        else Parallel.For(0, (a.Length + Block - 1) / Block, k => Encode(k * Block, Math.Min(a.Length, (k + 1) * Block)));
        return tokens;
    }

    /// <summary>Writes x's digits least significant first (up to 15 of them), in 5-digit groups of int
    /// arithmetic: a long division per digit made encoding a visible part of a training step.</summary>
    protected static void WriteDigitsLsbFirst(long x, Span<int> digits)
    {
        int i = 0;
        while (i < digits.Length)
        {
            long high = x / 100_000;
            int group = (int)(x - high * 100_000);
            for (int k = 0; k < 5 && i < digits.Length; k++, i++) { int q = group / 10; digits[i] = group - q * 10; group = q; }
            x = high;
        }
    }

    /// <summary>The seed's format (SPEC section 1): 14 tokens, operands most significant first, '+', '=', the
    /// reversed sum and EOS.</summary>
    public static readonly TokenFormat Seed = new SeedFormat();
    /// <summary>The "Qwen3 + arc" format: 10 digit tokens, `0 a0..a9 0 0 b0..b9 0` then s0..s10 (35 tokens).</summary>
    public static readonly TokenFormat LsbFirst = new LsbFirstFormat();
    /// <summary>MicroAdder's: `a0..a9 + b0..b9 = s0..s10 EOS` with +, = and EOS all token 0 (34 tokens).</summary>
    public static readonly TokenFormat MicroAdder = new MicroAdderFormat();

    public static IReadOnlyList<TokenFormat> All { get; } = [Seed, LsbFirst, MicroAdder];

    public static TokenFormat Named(string name) =>
        All.FirstOrDefault(f => f.Name == name)
        ?? throw new AdderException($"unknown token format '{Limits.Echo(name)}' (known: {string.Join(", ", All.Select(f => f.Name))})");

    sealed class SeedFormat : TokenFormat
    {
        public override string Name => "seed";
        public override int VocabSize => Tokens.VocabSize;
        public override int PromptLength => Tokens.PromptLength;
        public override int TargetLength => Tokens.TargetLength;
        public override void EncodePrompt(long a, long b, Span<int> prompt) => Tokens.EncodePrompt(a, b, prompt);
        public override void EncodeFull(long a, long b, Span<int> full) => Tokens.EncodeFull(a, b, full);
    }

    sealed class LsbFirstFormat : TokenFormat
    {
        public override string Name => "lsb10";
        public override int VocabSize => 10;
        public override int PromptLength => 24;
        public override int TargetLength => SumDigits;
        public override void EncodePrompt(long a, long b, Span<int> prompt)
        {
            Tokens.CheckOperand(a, "operand a");
            Tokens.CheckOperand(b, "operand b");
            prompt[..24].Clear();
            WriteDigitsLsbFirst(a, prompt.Slice(1, 10));
            WriteDigitsLsbFirst(b, prompt.Slice(13, 10));
        }
        public override void EncodeFull(long a, long b, Span<int> full)
        {
            EncodePrompt(a, b, full);
            WriteDigitsLsbFirst(a + b, full.Slice(24, SumDigits));
        }
    }

    sealed class MicroAdderFormat : TokenFormat
    {
        public override string Name => "microadder";
        public override int VocabSize => 10;
        public override int PromptLength => 22;
        public override int TargetLength => SumDigits + 1;
        public override void EncodePrompt(long a, long b, Span<int> prompt)
        {
            Tokens.CheckOperand(a, "operand a");
            Tokens.CheckOperand(b, "operand b");
            WriteDigitsLsbFirst(a, prompt[..10]);
            prompt[10] = 0;
            WriteDigitsLsbFirst(b, prompt.Slice(11, 10));
            prompt[21] = 0;
        }
        public override void EncodeFull(long a, long b, Span<int> full)
        {
            EncodePrompt(a, b, full);
            WriteDigitsLsbFirst(a + b, full.Slice(22, SumDigits));
            full[33] = 0;
        }
    }
}
