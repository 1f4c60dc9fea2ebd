using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Adder.Core;

/// <summary>Writes a model as a PyTorch checkpoint in the published layout (SPEC section 9): a zip (entries
/// stored, data 64-byte aligned as torch writes them) with one top folder holding data.pkl (pickle protocol 2),
/// data/&lt;key&gt;, byteorder and version. data.pkl is a dict with model_state (an OrderedDict of
/// torch._utils._rebuild_tensor_v2 calls whose storages are persistent ids; lm_head.weight shares
/// token_emb.weight's key), model_config, step, val_exact and params. An architecture's file has its stored
/// parameters under their own names in model_state (no tied duplicate: ties are in the architecture) and
/// model_config = {"architecture": its description as JSON, the schema of --arch FILE}. The pickle opcodes are written by hand:
/// the subset is small, and persistent ids and globals are awkward to express through a generic pickler.</summary>
public static class PtWriter
{
    public const string LmHead = "lm_head.weight";

    /// <summary>Entries of the checkpoint dict besides model_state and model_config.</summary>
    public sealed record Facts(long Step, double? ValExact);

    public static void Write(Stream stream, Model model, Facts facts, string archiveName)
    {
        var storages = new List<(string Key, float[] Data)>();
        var pickle = new Pickle();
        pickle.Proto();
        pickle.EmptyDict();
        pickle.Mark();

        pickle.Str("model_state");
        pickle.Global("collections", "OrderedDict");
        pickle.EmptyTuple();
        pickle.Reduce();
        pickle.Mark();
        string embeddingKey = "";
        foreach (var t in model.Layout.Tensors)
        {
            string key = storages.Count.ToString(CultureInfo.InvariantCulture);
            storages.Add((key, model.Parameters.AsSpan(t.Offset, t.Size).ToArray()));
            if (t.Name == "token_emb.weight") embeddingKey = key;
            pickle.Str(t.Name);
            pickle.Tensor(key, t.Size, t.Shape);
        }
        var c = model.Config;
        if (c.General is null)
        {
            // the tied output head: the same storage as the embedding, as torch saves a tied parameter
            var emb = model.Layout["token_emb.weight"];
            pickle.Str(LmHead);
            pickle.Tensor(embeddingKey, emb.Size, emb.Shape);
        }
        pickle.SetItems();

        pickle.Str("model_config");
        pickle.EmptyDict();
        pickle.Mark();
        var configEntries = c.General is { } architecture
            ? new (string, object)[] { (ConfigJson.ArchitectureKey, architecture.ToJson()) }
            : new (string, object)[]
                 {
                     ("n_layer", c.NLayer), ("d_model", c.DModel), ("n_head", c.NHead), ("d_ff", c.DFf), ("dropout", 0.0),
                     ("max_seq_len", c.MaxSeqLen), ("vocab_size", c.VocabSize), ("pos_rank", c.PosRank), ("qkv_rank", c.QkvRank),
                     ("attn_out_rank", c.AttnOutRank), ("ffn_rank", c.FfnRank), ("use_rmsnorm", c.UseRmsNorm), ("tie_qkv", c.TieQkv),
                 };
        foreach (var (name, value) in configEntries)
        {
            pickle.Str(name);
            pickle.Value(value);
        }
        pickle.SetItems();

        pickle.Str("step");
        pickle.Int(facts.Step);
        pickle.Str("val_exact");
        if (facts.ValExact is double v) pickle.Float(v); else pickle.None();
        pickle.Str("params");
        pickle.Int(model.Layout.Count);
        pickle.SetItems();
        pickle.Stop();

        var zip = new StoredZip(stream);
        zip.Add($"{archiveName}/data.pkl", pickle.ToArray());
        zip.Add($"{archiveName}/byteorder", "little"u8.ToArray());
        foreach (var (key, data) in storages)
        {
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("big-endian host");
            zip.Add($"{archiveName}/data/{key}", MemoryMarshal.AsBytes(data.AsSpan()).ToArray());
        }
        zip.Add($"{archiveName}/version", "3\n"u8.ToArray());
        zip.Finish();
    }

    /// <summary>The pickle opcodes this file needs (protocol 2).</summary>
    sealed class Pickle
    {
        readonly MemoryStream s = new();
        void Op(char op) => s.WriteByte((byte)op);
        public void Proto() { s.WriteByte(0x80); s.WriteByte(2); }
        public void Mark() => Op('(');
        public void Stop() => Op('.');
        public void EmptyDict() => Op('}');
        public void EmptyTuple() => Op(')');
        public void Tuple() => Op('t');
        public void Reduce() => Op('R');
        public void SetItems() => Op('u');
        public void BinPersId() => Op('Q');
        public void None() => Op('N');
        public void Bool(bool b) => s.WriteByte(b ? (byte)0x88 : (byte)0x89);

        public void Global(string module, string name)
        {
            Op('c');
            s.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
        }

        public void Str(string text)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            Op('X');   // BINUNICODE: 4-byte little-endian length, UTF-8
            Span<byte> n = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(n, bytes.Length);
            s.Write(n);
            s.Write(bytes);
        }

        public void Int(long x)
        {
            Span<byte> b = stackalloc byte[8];
            if (x >= 0 && x < 256) { Op('K'); s.WriteByte((byte)x); }
            else if (x >= 0 && x < 65536) { Op('M'); BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)x); s.Write(b[..2]); }
            else if (x >= int.MinValue && x <= int.MaxValue) { Op('J'); BinaryPrimitives.WriteInt32LittleEndian(b, (int)x); s.Write(b[..4]); }
            else
            {
                // LONG1: little-endian two's complement, 8 bytes is always enough for a long
                s.WriteByte(0x8a); s.WriteByte(8);
                BinaryPrimitives.WriteInt64LittleEndian(b, x);
                s.Write(b);
            }
        }

        public void Float(double x)
        {
            Op('G');   // BINFLOAT: big-endian IEEE double
            Span<byte> b = stackalloc byte[8];
            BinaryPrimitives.WriteDoubleBigEndian(b, x);
            s.Write(b);
        }

        public void Value(object value)
        {
            switch (value)
            {
                case bool b: Bool(b); break;
                case int i: Int(i); break;
                case long l: Int(l); break;
                case double d: Float(d); break;
                case string t: Str(t); break;
                default: throw new ArgumentException($"cannot pickle {value.GetType().Name}");
            }
        }

        void IntTuple(int[] items)
        {
            Mark();
            foreach (var x in items) Int(x);
            Tuple();
        }

        /// <summary>torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict()) with the
        /// storage as the persistent id ('storage', torch.FloatStorage, key, 'cpu', numel).</summary>
        public void Tensor(string key, int numel, int[] shape)
        {
            Global("torch._utils", "_rebuild_tensor_v2");
            Mark();
            Mark();
            Str("storage");
            Global("torch", "FloatStorage");
            Str(key);
            Str("cpu");
            Int(numel);
            Tuple();
            BinPersId();
            Int(0);
            IntTuple(shape);
            var stride = new int[shape.Length];
            for (int d = shape.Length - 1, step = 1; d >= 0; d--) { stride[d] = step; step *= shape[d]; }
            IntTuple(stride);
            Bool(false);
            Global("collections", "OrderedDict");
            EmptyTuple();
            Reduce();
            Tuple();
            Reduce();
        }

        public byte[] ToArray() => s.ToArray();
    }

    /// <summary>A zip archive of stored (uncompressed) entries with fixed timestamps, each entry's data padded
    /// to a 64-byte boundary through the local header's extra field, as torch's writer does.</summary>
    sealed class StoredZip(Stream stream)
    {
        const int Alignment = 64;
        readonly List<(byte[] Name, uint Crc, int Size, long Offset)> entries = [];
        long position;

        void Write(ReadOnlySpan<byte> bytes) { stream.Write(bytes); position += bytes.Length; }
        void U16(int x) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)x); Write(b); }
        void U32(uint x) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, x); Write(b); }

        public void Add(string name, byte[] data)
        {
            var nameBytes = Encoding.UTF8.GetBytes(name);
            uint crc = Crc32(data);
            long offset = position;
            long dataStart = offset + 30 + nameBytes.Length;
            int pad = (int)((Alignment - (dataStart + 4) % Alignment) % Alignment);
            int extra = 4 + pad;    // one extra field: id "FB", length, zeros
            U32(0x04034b50); U16(20); U16(0); U16(0); U16(0); U16(0x21);  // version, flags, stored, time, date (1980-01-01)
            U32(crc); U32((uint)data.Length); U32((uint)data.Length);
            U16(nameBytes.Length); U16(extra);
            Write(nameBytes);
            U16(0x4246); U16(pad);
            Write(new byte[pad]);
            Write(data);
            entries.Add((nameBytes, crc, data.Length, offset));
        }

        public void Finish()
        {
            long start = position;
            foreach (var e in entries)
            {
                U32(0x02014b50); U16(20); U16(20); U16(0); U16(0); U16(0); U16(0x21);
                U32(e.Crc); U32((uint)e.Size); U32((uint)e.Size);
                U16(e.Name.Length); U16(0); U16(0); U16(0); U16(0); U32(0); U32((uint)e.Offset);
                Write(e.Name);
            }
            long size = position - start;
            U32(0x06054b50); U16(0); U16(0); U16(entries.Count); U16(entries.Count);
            U32((uint)size); U32((uint)start); U16(0);
        }

        static readonly uint[] CrcTable = BuildCrcTable();

        static uint[] BuildCrcTable()
        {
            var table = new uint[256];
            for (uint n = 0; n < 256; n++)
            {
                uint c = n;
                for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
                table[n] = c;
            }
            return table;
        }

        static uint Crc32(ReadOnlySpan<byte> data)
        {
            uint c = 0xFFFFFFFFu;
            foreach (var b in data) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
            return c ^ 0xFFFFFFFFu;
        }
    }
}
