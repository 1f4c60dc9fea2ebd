/// Carry-mix: the four patterns' content, the fade, reproducibility from (seed, step, stream), and its options.
module Adder.Tests.CarryMixTests

open System
open System.IO
open Xunit
open Adder.Core
open Adder.Tests.Shared
open Adder.Tests.CliTests

let digits (x: int64) = [| for i in 0 .. 9 -> int ((x / pown 10L i) % 10L) |]

[<Fact>]
let ``each pattern makes the sums it is named for, inside the operand range`` () =
    let mutable rng = SplitMix64 42UL
    for _ in 1 .. 2000 do
        let struct (a, b) = CarryMix.Draw(CarryMix.Pattern.Single, 1, 10, &rng)
        let da, db = digits a, digits b
        // exactly one place where both digits are 5..9 (a carry is born there); elsewhere both 0..4
        Assert.Equal(1, Array.map2 (fun x y -> x >= 5 && y >= 5) da db |> Array.filter id |> Array.length)
        Assert.True(Array.forall2 (fun x y -> (x >= 5 && y >= 5) || (x <= 4 && y <= 4)) da db)
        let struct (a, b) = CarryMix.Draw(CarryMix.Pattern.Chain, 1, 10, &rng)
        Assert.True(a > 0L && (a + 1L) % 10L = 0L && (string a |> Seq.forall ((=) '9')), sprintf "chain a %d" a)
        Assert.True(b >= 1L && b <= 1000L)
        let struct (a, b) = CarryMix.Draw(CarryMix.Pattern.Place, 1, 10, &rng)
        Assert.True(a >= 0L && a <= Tokens.MaxOperand)
        Assert.True(b > 0L && (string b).TrimEnd('0').Length = 1, sprintf "place b %d" b)
        let struct (a, b) = CarryMix.Draw(CarryMix.Pattern.Boundary, 1, 10, &rng)
        Assert.True(a >= 0L && a <= Tokens.MaxOperand && b >= 1L && b <= 20L)
        let power = pown 10L (string (a + 10L)).Length
        Assert.True(power / 10L - a <= 10L || power - a <= 10L, sprintf "boundary a %d" a)

[<Fact>]
let ``every pattern stays within the curriculum's digits: none wider than the phase allows`` () =
    let mutable rng = SplitMix64 7UL
    let width (x: int64) = (string x).Length
    for pattern in [ CarryMix.Pattern.Single; CarryMix.Pattern.Chain; CarryMix.Pattern.Place; CarryMix.Pattern.Boundary ] do
        let widths = [| for _ in 1 .. 3000 -> let struct (a, b) = CarryMix.Draw(pattern, 1, 3, &rng) in width a, width b |]
        // a chain's b may be 10^3 itself (four digits), as in MicroAdder's sampler
        Assert.All(widths, fun (wa, wb) -> Assert.True(wa <= 3 && wb <= 4, sprintf "%A: widths %d, %d" pattern wa wb))
        // every allowed width comes up
        Assert.Equal<int[]>([| 1; 2; 3 |], widths |> Array.map fst |> Array.distinct |> Array.sort)

[<Fact>]
let ``the probability holds, fades linearly and stops; a step's replacements depend only on seed, step and stream`` () =
    let mix = CarryMix(0.8, 100, 300)
    Assert.Equal(0.8, mix.At 0)
    Assert.Equal(0.8, mix.At 99)
    Assert.Equal(0.4, mix.At 200, 12)
    Assert.Equal(0.0, mix.At 300)
    let batch seed step stream =
        let a = Array.init 512 int64
        let b = Array.init 512 (fun i -> int64 (1000 + i))
        mix.Apply(seed, step, stream, 1, 10, Span a, Span b)
        a, b
    Assert.Equal(batch 7L 50 0, batch 7L 50 0)
    Assert.NotEqual(batch 7L 50 0, batch 7L 51 0)
    Assert.NotEqual(batch 7L 50 0, batch 8L 50 0)
    Assert.NotEqual(batch 7L 50 0, batch 7L 50 1)
    let replaced step = let a, _ = batch 7L step 0 in a |> Array.mapi (fun i x -> x <> int64 i) |> Array.filter id |> Array.length
    // about 80% replaced before the fade, none after it
    Assert.InRange(replaced 10, 360, 460)
    Assert.Equal(0, replaced 300)

[<Fact>]
let ``carry-mix options: a fade that ends before it starts or a probability above 1 is refused before any folder`` () =
    let dir = tempDir ()
    let out = Path.Combine(dir, "r")
    assertOneLineError "ends (--carry-mix-fade-end 50) before it starts" (run [ "train"; "--preset"; "67p"; "--steps"; "10"; "--carry-mix"; "0.8"; "--carry-mix-fade-start"; "100"; "--carry-mix-fade-end"; "50"; "--out"; out ])
    assertOneLineError "--carry-mix must be in [0, 1]" (run [ "train"; "--preset"; "67p"; "--steps"; "10"; "--carry-mix"; "1.5"; "--out"; out ])
    Assert.False(Directory.Exists out)
    // a run with carry-mix records it in config.json and resumes with the same batches
    let r = run [ "train"; "--preset"; "67p"; "--steps"; "40"; "--batch"; "16"; "--eval-interval"; "20"; "--carry-mix"; "0.8"; "--carry-mix-fade-start"; "10"; "--carry-mix-fade-end"; "30"; "--out"; out ]
    Assert.True((r.Code = 0), r.Err)
    let config = File.ReadAllText(Path.Combine(out, "config.json"))
    Assert.Contains("\"carry_mix\": 0.8", config)
    Assert.Contains("\"carry_mix_fade_end\": 30", config)
