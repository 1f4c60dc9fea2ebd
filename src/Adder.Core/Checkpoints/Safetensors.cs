using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Adder.Core;

/// <summary>A float32 tensor as stored in a file.</summary>
public sealed record StoredTensor(string Name, int[] Shape, float[] Data);

/// <summary>The safetensors format: an 8-byte little-endian header length, a JSON header (dtype, shape,
/// data_offsets per tensor, and a __metadata__ string map), then the raw little-endian data.</summary>
public static class Safetensors
{
    public static void Write(Stream stream, IReadOnlyList<StoredTensor> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        var header = new JsonObject();
        var meta = new JsonObject();
        foreach (var (k, v) in metadata) meta[k] = v;
        header["__metadata__"] = meta;
        long offset = 0;
        foreach (var t in tensors)
        {
            long bytes = 4L * t.Data.Length;
            header[t.Name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(t.Shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;     // keeps the data 8-byte aligned
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
        stream.Write(length);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach (var t in tensors)
        {
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("big-endian host");
            stream.Write(MemoryMarshal.AsBytes(t.Data.AsSpan()));
        }
    }

    public static (List<StoredTensor> Tensors, Dictionary<string, string> Metadata) Read(byte[] file, string path)
    {
        AdderException Bad(string why) => new($"{path}: not a valid safetensors file: {why}");
        if (file.Length < 8) throw Bad($"{file.Length} bytes is too short");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(file);
        if (headerLength > (ulong)(file.Length - 8)) throw Bad($"header length {headerLength} runs past the end of the file ({file.Length} bytes)");
        JsonObject header;
        try
        {
            var text = file.AsSpan(8, (int)headerLength);
            if (HeaderProblem(text) is { } problem) throw Bad(problem);
            header = JsonNode.Parse(text) as JsonObject ?? throw Bad("header is not a JSON object");
        }
        catch (JsonException e) { throw Bad($"header is not valid JSON ({e.Message})"); }
        int dataStart = 8 + (int)headerLength;
        long dataLength = file.Length - dataStart;
        var metadata = new Dictionary<string, string>();
        var tensors = new List<StoredTensor>();
        var ranges = new List<(long Begin, long End, string Name)>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                if (node is not JsonObject m) throw Bad("__metadata__ is not an object");
                foreach (var (k, v) in m)
                    metadata[k] = v is JsonValue jv && jv.TryGetValue<string>(out var s) ? s : throw Bad($"metadata '{Limits.Echo(k)}' is not a string");
                continue;
            }
            if (node is not JsonObject t) throw Bad($"entry '{Limits.Echo(name)}' is not an object");
            var dtype = (t["dtype"] as JsonValue)?.GetValue<string>();
            if (dtype != "F32") throw Bad($"tensor '{Limits.Echo(name)}' has dtype {(dtype is null ? "(none)" : Limits.Echo(dtype))}; only F32 is supported");
            if (t["shape"] is not JsonArray shapeNode || t["data_offsets"] is not JsonArray offsets || offsets.Count != 2)
                throw Bad($"tensor '{Limits.Echo(name)}' lacks shape or data_offsets");
            int[] shape;
            long begin, end;
            try
            {
                shape = shapeNode.Select(x => x!.GetValue<int>()).ToArray();
                begin = offsets[0]!.GetValue<long>();
                end = offsets[1]!.GetValue<long>();
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
            {
                throw Bad($"tensor '{Limits.Echo(name)}' has a malformed shape or data_offsets");
            }
            long count = shape.Aggregate(1L, (a, b) => b < 0 ? -1 : a * b);
            if (count < 0) throw Bad($"tensor '{Limits.Echo(name)}' has a negative dimension");
            if (begin < 0 || end < begin || end > dataLength) throw Bad($"tensor '{Limits.Echo(name)}' data [{begin}, {end}) lies outside the {dataLength} data bytes");
            if (end - begin != 4 * count) throw Bad($"tensor '{Limits.Echo(name)}' has {end - begin} bytes for shape [{string.Join(", ", shape)}]");
            var data = new float[count];
            MemoryMarshal.Cast<byte, float>(file.AsSpan(dataStart + (int)begin, (int)(end - begin))).CopyTo(data);
            tensors.Add(new StoredTensor(name, shape, data));
            ranges.Add((begin, end, name));
        }
        ranges.Sort();
        for (int i = 1; i < ranges.Count; i++)
            if (ranges[i].Begin < ranges[i - 1].End) throw Bad($"tensors '{Limits.Echo(ranges[i - 1].Name)}' and '{Limits.Echo(ranges[i].Name)}' overlap");
        return (tensors, metadata);
    }

    /// <summary>Counts a header's entries (tensors and metadata keys) and tokens before it is parsed into
    /// objects; null when both are within the limits. Malformed JSON is left for the parser to report.</summary>
    static string? HeaderProblem(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        long entries = 0, tokens = 0;
        bool inMetadata = false;
        while (reader.Read())
        {
            if (reader.TokenType is JsonTokenType.EndObject or JsonTokenType.EndArray) continue;
            if (++tokens > Limits.MaxSafetensorsTokens) return $"header holds more than {Limits.MaxSafetensorsTokens} JSON tokens";
            if (reader.TokenType != JsonTokenType.PropertyName) continue;
            if (reader.CurrentDepth == 1) inMetadata = reader.ValueTextEquals("__metadata__");
            if ((reader.CurrentDepth == 1 && !inMetadata) || (reader.CurrentDepth == 2 && inMetadata))
                if (++entries > Limits.MaxSafetensorsEntries) return $"header lists more than {Limits.MaxSafetensorsEntries} entries (tensors and metadata keys)";
        }
        return null;
    }
}
