module Adder.Tests.CheckpointTests

open System
open System.IO
open System.IO.Compression
open System.Runtime.InteropServices
open Xunit
open Adder.Core
open Adder.Tests.Shared

/// Reads a storage's floats straight from the zip, independently of the checkpoint reader.
let rawStorage (key: string) =
    use zip = ZipFile.OpenRead(referenceCheckpoint ())
    let entry = zip.Entries |> Seq.find (fun e -> e.FullName.EndsWith("/data/" + key))
    use s = entry.Open()
    use m = new MemoryStream()
    s.CopyTo m
    MemoryMarshal.Cast<byte, float32>(ReadOnlySpan(m.ToArray())).ToArray()

[<Fact>]
let ``the published checkpoint loads as the 311p model with its raw weights`` () =
    let ckpt = Checkpoint.Load(referenceCheckpoint ())
    Assert.Equal(ModelConfig.Preset311, ckpt.Model.Config)
    Assert.Equal(311, ckpt.Model.Layout.Count)
    Assert.Equal("311", ckpt.Metadata.["params"])
    // data.pkl names storage 0 for token_emb.weight (and lm_head.weight), 1 for pos_emb.A
    Assert.Equal<float32[]>(rawStorage "0", ckpt.Model.Tensor("token_emb.weight").ToArray())
    Assert.Equal<float32[]>(rawStorage "1", ckpt.Model.Tensor("pos_emb.A").ToArray())
    Assert.Null(ckpt.Optimizer)

let randomCheckpoint (config: ModelConfig) =
    let model = Model.Initialised(config, 5)
    let rng = Random(3)
    let m = Array.init model.Layout.Count (fun _ -> float32 (rng.NextDouble()))
    let v = Array.init model.Layout.Count (fun _ -> float32 (rng.NextDouble()))
    let meta = Collections.Generic.Dictionary<string, string>(dict [ "step", "1234"; "note", "ünïcode ✓" ])
    Checkpoint(model, meta, OptimizerState(77L, m, v))

[<Theory>]
[<InlineData("311p")>]
[<InlineData("wide")>]
let ``safetensors round trip is bit-identical with metadata and optimizer state`` (preset: string) =
    let dir = tempDir ()
    let path = Path.Combine(dir, "x.safetensors")
    let original = randomCheckpoint (ModelConfig.Preset preset)
    original.Save path
    let loaded = Checkpoint.Load path
    Assert.Equal(original.Model.Config, loaded.Model.Config)
    Assert.Equal<float32[]>(original.Model.Parameters, loaded.Model.Parameters)
    Assert.Equal("ünïcode ✓", loaded.Metadata.["note"])
    Assert.Equal(77L, loaded.Optimizer.Step)
    Assert.Equal<float32[]>(original.Optimizer.M, loaded.Optimizer.M)
    Assert.Equal<float32[]>(original.Optimizer.V, loaded.Optimizer.V)
    Assert.Empty(Directory.GetFiles(dir, "*.tmp-*", SearchOption.AllDirectories) |> Array.filter (fun f -> f.Contains ".tmp-"))
    Assert.Equal(1, Directory.GetFiles(dir).Length)

/// Every finite float32 bit pattern (subnormals, ±0, the extremes included) survives save and load unchanged;
/// NaN or infinity in the weights is refused on load with a message naming the problem.
[<FsCheck.Xunit.Property(MaxTest = 25)>]
let ``safetensors keep every finite float32 bit pattern`` (bits: uint32[]) =
    let model = Model.Initialised(ModelConfig.Preset311, 1)
    let special = [| 0x00000001u; 0x807fffffu; 0x80000000u; 0x00000000u; 0x7f7fffffu; 0xff7fffffu |]
    let pattern = Array.append special (bits |> Array.filter (fun b -> Single.IsFinite(BitConverter.UInt32BitsToSingle b)))
    for i in 0 .. model.Parameters.Length - 1 do
        model.Parameters.[i] <- BitConverter.UInt32BitsToSingle pattern.[i % pattern.Length]
    let path = Path.Combine(tempDir (), "bits.safetensors")
    Checkpoint(model).Save path
    let loaded = Checkpoint.Load path
    let asBits (xs: float32[]) = xs |> Array.map BitConverter.SingleToUInt32Bits
    asBits model.Parameters = asBits loaded.Model.Parameters

[<Fact>]
let ``a checkpoint with NaN weights is refused on load`` () =
    let model = Model.Initialised(ModelConfig.Preset311, 1)
    model.Parameters.[7] <- nanf
    let path = Path.Combine(tempDir (), "nan.safetensors")
    Checkpoint(model).Save path
    let e = Assert.Throws<AdderException>(fun () -> Checkpoint.Load path |> ignore)
    Assert.Contains("NaN", e.Message)

/// The file layout other safetensors readers expect, checked with a plain JSON parser: u64 header length,
/// a JSON header of F32 tensors whose data_offsets tile the data exactly, string-only __metadata__.
[<Fact>]
let ``our safetensors files follow the safetensors layout`` () =
    let path = Path.Combine(tempDir (), "layout.safetensors")
    (randomCheckpoint (ModelConfig.Preset "wide")).Save path
    let bytes = File.ReadAllBytes path
    let n = int (BitConverter.ToUInt64(bytes, 0))
    Assert.Equal(0, (8 + n) % 8)   // data starts aligned
    let header = Text.Json.JsonDocument.Parse(ReadOnlyMemory(bytes, 8, n)).RootElement
    let spans =
        [ for p in header.EnumerateObject() do
            if p.Name = "__metadata__" then
                for m in p.Value.EnumerateObject() do Assert.Equal(Text.Json.JsonValueKind.String, m.Value.ValueKind)
            else
                Assert.Equal("F32", p.Value.GetProperty("dtype").GetString())
                let count = p.Value.GetProperty("shape").EnumerateArray() |> Seq.fold (fun acc d -> acc * d.GetInt64()) 1L
                let offsets = [| for o in p.Value.GetProperty("data_offsets").EnumerateArray() -> o.GetInt64() |]
                Assert.Equal(4L * count, offsets.[1] - offsets.[0])
                yield offsets.[0], offsets.[1] ]
        |> List.sort
    let ends = spans |> List.fold (fun pos (s, e) -> Assert.Equal(pos, s); e) 0L
    Assert.Equal(int64 (bytes.Length - 8 - n), ends)

[<Fact>]
let ``converting the published checkpoint keeps every parameter`` () =
    let dir = tempDir ()
    let path = Path.Combine(dir, "ref.safetensors")
    let pt = Checkpoint.Load(referenceCheckpoint ())
    pt.Save path
    let st = Checkpoint.Load path
    Assert.Equal<float32[]>(pt.Model.Parameters, st.Model.Parameters)
    Assert.Equal(pt.Model.Config, st.Model.Config)
    // no tied duplicate in our format
    let header = Text.Encoding.UTF8.GetString(File.ReadAllBytes path)
    Assert.DoesNotContain("lm_head", header)

let expectError (bytes: byte[]) (fragment: string) =
    let dir = tempDir ()
    let path = Path.Combine(dir, "bad.ckpt")
    File.WriteAllBytes(path, bytes)
    let e = Assert.Throws<AdderException>(fun () -> Checkpoint.Load path |> ignore)
    Assert.Contains(fragment, e.Message)
    Assert.DoesNotContain("\n", e.Message)

let goodSafetensors () =
    let dir = tempDir ()
    let path = Path.Combine(dir, "g.safetensors")
    (randomCheckpoint ModelConfig.Preset311).Save path
    File.ReadAllBytes path

/// Writes a safetensors file from explicit tensors, through the format's own writer.
let customSafetensors (tensors: StoredTensor list) (configJson: string) =
    use m = new MemoryStream()
    Safetensors.Write(m, ResizeArray tensors, dict [ "model_config", configJson ] |> Collections.Generic.Dictionary)
    m.ToArray()

[<Fact>]
let ``missing, empty, truncated and corrupt files give one-line errors`` () =
    let e = Assert.Throws<AdderException>(fun () -> Checkpoint.Load "/nonexistent/x.safetensors" |> ignore)
    Assert.Contains("not found", e.Message)
    expectError [||] "empty"
    let good = goodSafetensors ()
    expectError good.[0 .. 5] "too short"
    expectError good.[0 .. good.Length / 2] "outside"                 // data cut off
    let corrupt = Array.copy good
    corrupt.[8] <- byte 'x'
    expectError corrupt "JSON"
    expectError (Array.init 4000 (fun i -> byte (i * 7919 % 251))) "safetensors"
    let pt = File.ReadAllBytes(referenceCheckpoint ())
    expectError pt.[0 .. pt.Length / 2] "PyTorch"

[<Fact>]
let ``a tensor of the wrong shape, a missing tensor and an unsupported config are named`` () =
    let model = Model(ModelConfig.Preset311)
    let tensors = [ for t in model.Layout.Tensors -> StoredTensor(t.Name, t.Shape, Array.zeroCreate t.Size) ]
    let config = ConfigJson.Write ModelConfig.Preset311
    let wrong = tensors |> List.map (fun t -> if t.Name = "pos_emb.B" then StoredTensor(t.Name, [| 4; 3 |], t.Data) else t)
    expectError (customSafetensors wrong config) "pos_emb.B"
    expectError (customSafetensors (List.tail tensors) config) "missing tensor 'token_emb.weight'"
    let extra = tensors @ [ StoredTensor("blocks.1.ln1.weight", [| 4 |], Array.zeroCreate 4) ]
    expectError (customSafetensors extra config) "unexpected tensor"
    expectError (customSafetensors tensors (config.Replace("\"vocab_size\":14", "\"vocab_size\":20"))) "vocab_size 20"
    expectError (customSafetensors tensors (config.Replace("shareA_tieKV", "fancy"))) "tie_qkv"
    let nan = tensors |> List.map (fun t -> if t.Name = "ln_f.weight" then StoredTensor(t.Name, t.Shape, [| nanf; 0f; 0f; 0f |]) else t)
    expectError (customSafetensors nan config) "NaN"
