/// Bounds on what a checkpoint's parsed contents may become, not only its bytes: a small file of opcodes or
/// header entries that would build gigabytes of objects, or an integer that takes hours to convert, is refused
/// in one line, quickly and in bounded memory.
module Adder.Tests.ParsedBoundsTests

open System
open System.Diagnostics
open System.IO
open System.IO.Compression
open System.Text
open Xunit
open Adder.Core
open Adder.Tests.Shared
open Adder.Tests.CliTests
open Adder.Tests.TestProcesses

/// A .pt holding `pickle` as its data.pkl, with a little-endian byteorder record (deflated: a few KB).
let private ptHolding (dir: string) (name: string) (pickle: byte[]) =
    let path = Path.Combine(dir, name + ".pt")
    do
        use zip = ZipFile.Open(path, ZipArchiveMode.Create)
        for entry, bytes in [ "data.pkl", pickle; "byteorder", "little"B; "version", "3\n"B ] do
            use s = zip.CreateEntry(name + "/" + entry, CompressionLevel.Optimal).Open()
            s.Write(bytes, 0, bytes.Length)
    path

let private le32 (n: int) = BitConverter.GetBytes n
/// Pickle protocol 2's opening, BINUNICODE and LONG4.
let private proto = [| 0x80uy; 2uy |]
let private str (s: string) = Array.concat [ "X"B; le32 (Encoding.UTF8.GetByteCount s); Encoding.UTF8.GetBytes s ]
let private long4 (bytes: byte[]) = Array.concat [ [| 0x8buy |]; le32 bytes.Length; bytes ]

/// A checkpoint dict {'model_state': {}, 'model_config': {'d_model': value}}.
let private configWith (value: byte[]) =
    Array.concat [ proto; "}("B; str "model_state"; "}"B; str "model_config"; "}("B; str "d_model"; value; "uu."B ]

/// Refused in one line, within 300 MB and 20 seconds.
let private refusedQuickly (fragment: string) (path: string) =
    let clock = Stopwatch.StartNew()
    refusedWithin 300.0 fragment None [ "info"; path ]
    Assert.True(clock.Elapsed.TotalSeconds < 20.0, sprintf "refusing %s took %.0f s" path clock.Elapsed.TotalSeconds)

[<Fact>]
let ``a .pt whose data.pkl builds millions of objects is refused before building them`` () =
    let dir = tempDir ()
    // 16 MiB of EMPTY_DICT: about 4 GB of dicts, from a file of about 20 KB
    let dicts = ptHolding dir "dicts" (Array.concat [ proto; Array.create (int Limits.MaxPickleBytes - 3) '}'B; "."B ])
    Assert.True(FileInfo(dicts).Length < (1L <<< 20))
    refusedQuickly (sprintf "more than %d values" Limits.MaxPickleValues) dicts
    // one dict fetched from the memo millions of times: a deep stack of references, no new object
    let fetches = Array.concat [ proto; "}q\000"B; Array.concat (Array.create 4_000_000 "h\000"B); "."B ]
    refusedQuickly (sprintf "more than %d values" Limits.MaxPickleValues) (ptHolding dir "fetches" fetches)
    // one dict put in the memo under a million indices
    let puts = Array.concat [ proto; "}"B; Array.concat [| for i in 0 .. 999_999 -> Array.append "r"B (le32 i) |]; "."B ]
    refusedQuickly (sprintf "more than %d entries in its memo" Limits.MaxPickleValues) (ptHolding dir "puts" puts)

[<Fact>]
let ``a .pt holding a huge integer is refused at once`` () =
    let dir = tempDir ()
    // 15 MB in LONG4: its decimal conversion for an error message would take hours
    let huge = Array.create 15_000_000 0x7fuy
    refusedQuickly "an integer of 15000000 bytes" (ptHolding dir "long4" (configWith (long4 huge)))
    // LONG1 and the text forms INT and LONG (protocol 0) have the same bound
    let long1 = Array.concat [ [| 0x8auy; 17uy |]; Array.create 17 1uy ]
    refusedQuickly "an integer of 17 bytes" (ptHolding dir "long1" (configWith long1))
    let digits = String('7', 1_000_000)
    refusedQuickly "an integer of 1000000 digits" (ptHolding dir "longtext" (configWith (Encoding.ASCII.GetBytes("L" + digits + "L\n"))))
    refusedQuickly "an integer of 1000000 digits" (ptHolding dir "inttext" (configWith (Encoding.ASCII.GetBytes("I" + digits + "\n"))))
    // an integer of 16 bytes is still read (and refused as a d_model, naming it)
    let fits = Array.concat [ [| 0x8auy; 16uy |]; Array.create 16 1uy ]
    run [ "info"; ptHolding dir "fits" (configWith fits) ] |> assertOneLineError "'d_model' is not an integer"

[<Fact>]
let ``a safetensors header listing a million empty tensors is refused before it is parsed`` () =
    let dir = tempDir ()
    let path = Path.Combine(dir, "many.safetensors")
    let header = StringBuilder("{")
    for i in 0 .. 999_999 do
        header.Append(sprintf "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}" (if i = 0 then "" else ",") i) |> ignore
    let json = Encoding.UTF8.GetBytes(header.Append("}").ToString())
    File.WriteAllBytes(path, Array.append (BitConverter.GetBytes(int64 json.Length)) json)
    refusedQuickly (sprintf "more than %d entries" Limits.MaxSafetensorsEntries) path
    // a few entries with a shape of millions of dimensions: the tokens are bounded too
    let shape = String.Join(",", Array.create 1_000_000 "1")
    let wide = Encoding.UTF8.GetBytes(sprintf "{\"t\":{\"dtype\":\"F32\",\"shape\":[%s],\"data_offsets\":[0,4]}}" shape)
    let widePath = Path.Combine(dir, "wide.safetensors")
    File.WriteAllBytes(widePath, Array.concat [ BitConverter.GetBytes(int64 wide.Length); wide; Array.zeroCreate 4 ])
    refusedQuickly (sprintf "more than %d JSON tokens" Limits.MaxSafetensorsTokens) widePath

[<Fact>]
let ``README's Limits table states these bounds as Limits holds them`` () =
    let readme = File.ReadAllText(Path.Combine(repoRoot, "README.md"))
    let n (x: int) = x.ToString("N0", Globalization.CultureInfo.InvariantCulture)
    for fact in [ sprintf "%s values" (n Limits.MaxPickleValues); sprintf "%s memo entries" (n Limits.MaxPickleValues)
                  sprintf "an integer of at most %d bytes" Limits.MaxPickleIntegerBytes
                  sprintf "%s entries (tensors and metadata keys), %s JSON tokens" (n Limits.MaxSafetensorsEntries) (n Limits.MaxSafetensorsTokens) ] do
        Assert.Contains(fact, readme)
