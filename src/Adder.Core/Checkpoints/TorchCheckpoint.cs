using System.Collections;
using System.IO.Compression;
using System.Runtime.InteropServices;
using Razorvine.Pickle;

namespace Adder.Core;

/// <summary>Reads a PyTorch checkpoint (SPEC section 9): a zip whose data.pkl describes tensors whose bytes
/// live in data/&lt;key&gt;. Only the pickle's structure is interpreted; no code is run.</summary>
public static class TorchCheckpoint
{
    sealed record StorageRef(string Key, string Type, long Count);
    sealed record TensorRef(StorageRef Storage, long Offset, int[] Shape, long[] Stride);

    sealed class RebuildTensor : IObjectConstructor
    {
        public object construct(object[] args)
        {
            if (args.Length < 4 || args[0] is not StorageRef storage) throw new AdderException("unexpected tensor record in data.pkl");
            return new TensorRef(storage, Convert.ToInt64(args[1]), ToInts(args[2]), ToInts(args[3]).Select(x => (long)x).ToArray());
        }
    }

    sealed class OrderedDictionary : IObjectConstructor
    {
        public object construct(object[] args) => new StateDict();
    }

    /// <summary>torch's state dict: an OrderedDict whose BUILD sets a _metadata attribute we do not need.</summary>
    sealed class StateDict : Hashtable
    {
        public void __setstate__(Hashtable state) { }
    }

    sealed class CheckpointUnpickler : Unpickler
    {
        protected override object persistentLoad(object pid)
        {
            // ('storage', torch.FloatStorage, key, location, numel)
            if (pid is object[] t && t.Length == 5 && t[0] as string == "storage")
                return new StorageRef(Convert.ToString(t[2])!, StorageTypeName(t[1]), Convert.ToInt64(t[4]));
            throw new AdderException("unexpected persistent id in data.pkl");
        }
    }

    /// <summary>Stands for a torch storage class (torch.FloatStorage, ...) inside a persistent id.</summary>
    sealed record StorageType(string Name) : IObjectConstructor
    {
        public object construct(object[] args) => throw new AdderException($"unexpected call of {Name} in data.pkl");
    }

    static string StorageTypeName(object type) => type is StorageType s ? s.Name : "an unknown storage type";

    static int[] ToInts(object o) => o switch
    {
        object[] items => items.Select(x => Convert.ToInt32(x)).ToArray(),
        _ => throw new AdderException("unexpected tensor size or stride in data.pkl"),
    };

    static readonly Lock RegisterLock = new();
    static bool registered;

    static void Register()
    {
        lock (RegisterLock)
        {
            if (registered) return;
            Unpickler.registerConstructor("torch._utils", "_rebuild_tensor_v2", new RebuildTensor());
            Unpickler.registerConstructor("collections", "OrderedDict", new OrderedDictionary());
            foreach (var name in new[] { "FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage", "ByteStorage", "BoolStorage" })
                Unpickler.registerConstructor("torch", name, new StorageType("torch." + name));
            registered = true;
        }
    }

    /// <summary>The tensors (by name, tied duplicates included), the model_config dict, and the other
    /// scalar entries (step, val_exact, params, ...) as strings.</summary>
    public static (List<StoredTensor> Tensors, Dictionary<string, object?> Config, Dictionary<string, string> Metadata)
        Read(byte[] file, string path)
    {
        AdderException Bad(string why) => new($"{path}: not a valid PyTorch checkpoint: {why}");
        Register();
        ZipArchive zip;
        try { zip = new ZipArchive(new MemoryStream(file), ZipArchiveMode.Read); }
        catch (InvalidDataException e) { throw Bad($"broken zip archive ({e.Message})"); }
        using (zip)
        {
            var pkl = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl") || e.FullName == "data.pkl")
                ?? throw Bad("no data.pkl in the archive");
            string prefix = pkl.FullName[..^"data.pkl".Length];
            // an entry may inflate far beyond the file (a zip bomb): its declared size is checked first, and
            // reading stops past the cap whatever the header claims
            byte[] ReadEntry(ZipArchiveEntry entry, long maxBytes)
            {
                if (entry.Length > maxBytes) throw Bad($"{entry.FullName} declares {entry.Length} bytes, more than the {maxBytes} it may hold");
                try
                {
                    using var s = entry.Open();
                    return SafeFiles.ReadCapped(s, maxBytes) ?? throw Bad($"{entry.FullName} inflates past the {maxBytes} bytes it may hold");
                }
                catch (InvalidDataException e) { throw Bad($"cannot read {entry.FullName} ({e.Message})"); }
            }
            // torch records the storages' byte order since 2.1; a zip from an earlier torch (1.6 to 2.0) has none,
            // and torch reads such a file as little-endian too
            var byteorder = zip.GetEntry(prefix + "byteorder");
            var order = byteorder is null ? "little" : System.Text.Encoding.ASCII.GetString(ReadEntry(byteorder, 16)).Trim();
            if (order != "little") throw Bad($"byteorder is '{Limits.Echo(order)}'; only little-endian checkpoints are read");
            object root;
            try
            {
                byte[] pickle = ReadEntry(pkl, Limits.MaxPickleBytes);
                if (PickleBounds.Problem(pickle) is { } problem) throw Bad($"data.pkl is refused: {problem}");
                using var unpickler = new CheckpointUnpickler();
                root = unpickler.loads(pickle);
            }
            catch (Exception e) when (e is PickleException or InvalidOpcodeException or InvalidCastException or IOException
                                          or ArgumentException or IndexOutOfRangeException or FormatException or OverflowException)
            {
                throw Bad($"cannot read data.pkl ({e.Message})");
            }
            if (root is not IDictionary top) throw Bad("data.pkl does not hold a dict");
            // ours and the reference's: model_state + model_config; MicroAdder's: model_state_dict + config
            bool microAdder = top["model_state"] is null && top["model_state_dict"] is IDictionary;
            string stateKey = microAdder ? "model_state_dict" : "model_state", configKey = microAdder ? "config" : "model_config";
            if (top[stateKey] is not IDictionary state) throw Bad("no model_state dict");

            var tensors = new List<StoredTensor>();
            foreach (DictionaryEntry entry in state)
            {
                string name = entry.Key.ToString()!;
                if (entry.Value is not TensorRef t) throw Bad($"model_state['{Limits.Echo(name)}'] is not a tensor");
                if (t.Storage.Type != "torch.FloatStorage") throw Bad($"tensor '{Limits.Echo(name)}' is stored as {Limits.Echo(t.Storage.Type)}; only float32 is supported");
                var dataEntry = zip.GetEntry(prefix + "data/" + t.Storage.Key) ?? throw Bad($"storage data/{Limits.Echo(t.Storage.Key)} of '{Limits.Echo(name)}' is missing");
                if (t.Storage.Count < 0 || t.Storage.Count > Limits.MaxCheckpointBytes / 4) throw Bad($"storage data/{Limits.Echo(t.Storage.Key)} of '{Limits.Echo(name)}' claims {t.Storage.Count} values");
                var bytes = ReadEntry(dataEntry, 4 * t.Storage.Count);
                if (bytes.Length != 4 * t.Storage.Count) throw Bad($"storage data/{Limits.Echo(t.Storage.Key)} has {bytes.Length} bytes, expected {4 * t.Storage.Count}");
                long count = t.Shape.Aggregate(1L, (a, b) => a * b);
                long expectedStride = 1;
                for (int d = t.Shape.Length - 1; d >= 0; d--)
                {
                    if (t.Shape[d] != 1 && t.Stride[d] != expectedStride) throw Bad($"tensor '{Limits.Echo(name)}' is not contiguous");
                    expectedStride *= t.Shape[d];
                }
                if (t.Offset < 0 || t.Offset + count > t.Storage.Count) throw Bad($"tensor '{Limits.Echo(name)}' runs past its storage");
                var data = new float[count];
                MemoryMarshal.Cast<byte, float>(bytes.AsSpan((int)(4 * t.Offset), (int)(4 * count))).CopyTo(data);
                tensors.Add(new StoredTensor(name, t.Shape, data));
            }

            var config = new Dictionary<string, object?>();
            if (top[configKey] is IDictionary mc)
                foreach (DictionaryEntry e in mc) config[e.Key.ToString()!] = e.Value;
            else throw Bad("no model_config dict");

            var metadata = new Dictionary<string, string>();
            foreach (DictionaryEntry e in top)
            {
                string key = e.Key.ToString()!;
                if (key == stateKey || key == configKey) continue;
                // the scalars only: an optimizer's state or a run's arguments are not a checkpoint's facts
                if (e.Value is not (null or double or bool or string or int or long)) continue;
                metadata[key] = e.Value switch
                {
                    null => "None",
                    double x => x.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
                    bool b => b ? "True" : "False",
                    string or int or long => e.Value.ToString()!,
                    IDictionary d => "{" + string.Join(", ", d.Cast<DictionaryEntry>().Select(x => $"{x.Key}: {x.Value}")) + "}",
                    _ => e.Value.ToString()!,
                };
            }
            if (microAdder) metadata["source_format"] = "microadder";
            return (tensors, config, metadata);
        }
    }
}
