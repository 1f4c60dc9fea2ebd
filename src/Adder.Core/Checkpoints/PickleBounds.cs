using System.Buffers.Binary;

namespace Adder.Core;

/// <summary>Walks a pickle's opcodes, without building anything, to bound what unpickling it would build: a
/// few kilobytes of compressed opcodes can otherwise become gigabytes of objects, or an integer whose
/// conversion takes hours. Counts every value pushed (an object created, a memo fetch, a mark: this bounds the
/// stack's depth and every container's size), every memo entry, and each integer's length.</summary>
public static class PickleBounds
{
    /// <summary>Null when the pickle stays inside the limits; otherwise why not, in a few words. A malformed
    /// opcode stream is left for the unpickler to report.</summary>
    public static string? Problem(ReadOnlySpan<byte> pickle)
    {
        long values = 0, memo = 0;
        int pos = 0;
        while (pos < pickle.Length)
        {
            byte op = pickle[pos++];
            ReadOnlySpan<byte> rest = pickle[pos..];
            int argument;   // bytes of argument after the opcode
            int pushes = 0;
            string? tooLong = null;
            switch (op)
            {
                case (byte)'.': return null;                                        // STOP
                case (byte)'(': argument = 0; pushes = 1; break;                     // MARK
                case (byte)'0' or (byte)'1' or (byte)'a' or (byte)'b' or (byte)'d' or (byte)'e' or (byte)'l' or (byte)'o'
                    or (byte)'s' or (byte)'t' or (byte)'u' or (byte)'R' or (byte)'Q' or 0x81 or 0x85 or 0x86 or 0x87
                    or 0x90 or 0x91 or 0x92 or 0x93 or 0x98:
                    argument = 0; pushes = Replaces(op); break;                      // consume their inputs
                case (byte)'2' or (byte)'N' or (byte)']' or (byte)'}' or (byte)')' or 0x88 or 0x89 or 0x8f or 0x97:
                    argument = 0; pushes = 1; break;                                 // DUP, NONE, empties, bools, NEXT_BUFFER
                case 0x94: argument = 0; memo++; break;                              // MEMOIZE
                case (byte)'K' or (byte)'h' or 0x82: argument = 1; pushes = 1; break;
                case (byte)'M' or 0x83: argument = 2; pushes = 1; break;
                case (byte)'J' or (byte)'j' or 0x84: argument = 4; pushes = 1; break;
                case (byte)'G': argument = 8; pushes = 1; break;
                case (byte)'q': argument = 1; memo++; break;                          // BINPUT
                case (byte)'r': argument = 4; memo++; break;                          // LONG_BINPUT
                case 0x80: argument = 1; break;                                      // PROTO
                case 0x95: argument = 8; break;                                      // FRAME
                case (byte)'p': argument = Line(rest); memo++; break;                // PUT
                case (byte)'F' or (byte)'S' or (byte)'V' or (byte)'P' or (byte)'g':
                    argument = Line(rest); pushes = 1; break;
                case (byte)'I' or (byte)'L':                                         // INT, LONG: decimal text
                    argument = Line(rest); pushes = 1;
                    if (argument > 0 && Digits(rest[..argument]) > MaxDigits) tooLong = $"an integer of {Digits(rest[..argument])} digits";
                    break;
                case (byte)'c' or (byte)'i': argument = TwoLines(rest); pushes = 1; break;  // GLOBAL, INST: module and name
                case 0x8a:                                                           // LONG1
                    argument = rest.Length >= 1 ? 1 + rest[0] : -1; pushes = 1;
                    if (argument > 0 && rest[0] > Limits.MaxPickleIntegerBytes) tooLong = $"an integer of {rest[0]} bytes";
                    break;
                case 0x8b:                                                           // LONG4
                    long n = rest.Length >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(rest) : -1;
                    if (n > Limits.MaxPickleIntegerBytes) { tooLong = $"an integer of {n} bytes"; argument = 0; }
                    else argument = n < 0 ? -1 : 4 + (int)n;
                    pushes = 1;
                    break;
                case (byte)'U' or (byte)'C' or 0x8c: argument = rest.Length >= 1 ? 1 + rest[0] : -1; pushes = 1; break;
                case (byte)'T' or (byte)'X' or (byte)'B': argument = Sized(rest, 4); pushes = 1; break;
                case 0x8d or 0x8e or 0x96: argument = Sized(rest, 8); pushes = 1; break;
                default: return null;                                                // not an opcode: the unpickler says so
            }
            if (tooLong is not null) return $"{tooLong} at byte {pos - 1}; an integer may have at most {Limits.MaxPickleIntegerBytes} bytes ({MaxDigits} digits)";
            if (argument < 0 || argument > rest.Length) return null;               // truncated: the unpickler says so
            values += pushes;
            if (values > Limits.MaxPickleValues) return $"it builds more than {Limits.MaxPickleValues} values (objects, memo fetches and marks)";
            if (memo > Limits.MaxPickleValues) return $"it puts more than {Limits.MaxPickleValues} entries in its memo";
            pos += argument;
        }
        return null;
    }

    /// <summary>Decimal digits of an integer of MaxPickleIntegerBytes bytes (2^128 has 39).</summary>
    static readonly int MaxDigits = (int)Math.Ceiling(8 * Limits.MaxPickleIntegerBytes * Math.Log10(2));

    /// <summary>Opcodes that pop their inputs and push one result push 1; those that only consume push 0.</summary>
    static int Replaces(byte op) => op is (byte)'0' or (byte)'1' or (byte)'e' or (byte)'u' or 0x90 ? 0 : 1;

    /// <summary>Bytes up to and including the next newline, or -1 when there is none.</summary>
    static int Line(ReadOnlySpan<byte> rest)
    {
        int end = rest.IndexOf((byte)'\n');
        return end < 0 ? -1 : end + 1;
    }

    static int TwoLines(ReadOnlySpan<byte> rest)
    {
        int first = Line(rest);
        if (first < 0) return -1;
        int second = Line(rest[first..]);
        return second < 0 ? -1 : first + second;
    }

    static int Digits(ReadOnlySpan<byte> line)
    {
        int digits = 0;
        foreach (byte b in line) if (b is >= (byte)'0' and <= (byte)'9') digits++;
        return digits;
    }

    /// <summary>A length-prefixed argument: the prefix and the bytes it claims, or -1 past the end.</summary>
    static int Sized(ReadOnlySpan<byte> rest, int prefix)
    {
        if (rest.Length < prefix) return -1;
        long n = prefix == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(rest) : (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(rest), long.MaxValue);
        return n > rest.Length - prefix ? -1 : prefix + (int)n;
    }
}
