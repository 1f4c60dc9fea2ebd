module Adder.Tests.DataTests

open Xunit
open FsCheck
open FsCheck.FSharp
open FsCheck.Xunit
open Adder.Core
open Adder.Tests.Shared

[<Fact>]
let ``the generator is std::mt19937`` () =
    let g = TorchGenerator(5489UL)
    Assert.Equal(3499211612u, g.NextUInt32())
    let g = TorchGenerator(5489UL)
    for _ in 1 .. 9999 do g.NextUInt32() |> ignore
    Assert.Equal(4123659995u, g.NextUInt32())   // the C++ standard's check value for mt19937

[<Fact>]
let ``randint uses one word below 2^32 and two words above`` () =
    let words = TorchGenerator(7UL)
    let u1, u2, u3 = words.NextUInt32(), words.NextUInt32(), words.NextUInt32()
    let g = TorchGenerator(7UL)
    Assert.Equal(int64 (uint64 u1 % 1000UL) + 5L, g.RandInt(5L, 1005L))
    let expected = ((uint64 u2 <<< 32) ||| uint64 u3) % 10_000_000_000UL
    Assert.Equal(int64 expected, g.RandInt(0L, 10_000_000_000L))

let pairList (e: System.Text.Json.JsonElement) =
    [| for p in e.EnumerateArray() -> let xs = [| for x in p.EnumerateArray() -> x.GetInt64() |] in Pair(xs.[0], xs.[1]) |]

[<Fact>]
let ``holdout splits of all ten suite seeds match the reference`` () =
    let splits = (goldenJson "reference_splits.json").GetProperty "splits"
    Assert.Equal(10, Holdout.ReferenceSuiteSeeds.Length)
    for seed in Holdout.ReferenceSuiteSeeds do
        let golden = splits.GetProperty(string seed)
        let h = Holdout.Build(5000, 10000, seed)
        Assert.Equal(5000, h.Validation.Length)
        Assert.Equal(10000, h.Test.Length)
        let valFirst = pairList (golden.GetProperty "val_first")
        let testFirst = pairList (golden.GetProperty "test_first")
        let testLast = pairList (golden.GetProperty "test_last")
        Assert.Equal<Pair[]>(valFirst, h.Validation.[0 .. valFirst.Length - 1])
        Assert.Equal<Pair[]>(testFirst, h.Test.[0 .. testFirst.Length - 1])
        Assert.Equal<Pair[]>(testLast, h.Test.[h.Test.Length - testLast.Length ..])
        let sumA = h.Test |> Array.sumBy (fun p -> p.A)
        let sumB = h.Test |> Array.sumBy (fun p -> p.B)
        Assert.Equal(golden.GetProperty("test_sum_of_a_mod_1e9").GetInt64(), sumA % 1_000_000_000L)
        Assert.Equal(golden.GetProperty("test_sum_of_b_mod_1e9").GetInt64(), sumB % 1_000_000_000L)
        let all = Array.append h.Validation h.Test
        Assert.Equal(15000, all |> Array.distinct |> Array.length)

let samples (e: System.Text.Json.JsonElement) =
    [| for s in e.EnumerateArray() -> s.GetProperty("n_digits").GetInt32(), s.GetProperty("a").GetInt64(), s.GetProperty("b").GetInt64() |]

[<Fact>]
let ``the sampler reproduces the reference's first samples`` () =
    let sampler = (goldenJson "reference_splits.json").GetProperty "sampler"
    let check (seed: int) (curriculum: Curriculum) (name: string) =
        let expected = samples (sampler.GetProperty name)
        let s = Sampler(int64 seed + 1337L, Holdout.Build(5000, 10000, seed), curriculum)
        let got = [| for _ in expected -> let struct (n, a, b) = s.Next(0) in n, a, b |]
        Assert.Equal<(int * int64 * int64)[]>(expected, got)
    check 34 Curriculum.Base "seed34_phase_1_to_3"
    check 0 Curriculum.Full "seed0_phase_1_to_10"

[<Fact>]
let ``the curriculum switches phases at steps 2000 and 7000`` () =
    let c = Curriculum.Base
    Assert.Equal(3, c.At(1999).MaxDigits)
    Assert.Equal(6, c.At(2000).MaxDigits)
    Assert.Equal(6, c.At(6999).MaxDigits)
    Assert.Equal(10, c.At(7000).MaxDigits)

[<Property(MaxTest = 30)>]
let ``the sampler never yields a reserved pair and keeps operands within the phase's digits`` (seed: uint16) =
    // A tiny fake reserve: with 1-digit operands a reserved pair would otherwise come up often.
    let holdout = Holdout.Build(40, 10, int64 seed)
    let s = Sampler(int64 seed, holdout, Curriculum.Base)
    let mutable ok = true
    for step in [ 0; 2500; 8000 ] do
        let a = Array.zeroCreate<int64> 300
        let b = Array.zeroCreate<int64> 300
        s.NextBatch(step, a, b)
        let limit = pown 10L (Curriculum.Base.At(step).MaxDigits)
        for i in 0 .. a.Length - 1 do
            ok <- ok && not (holdout.Contains(a.[i], b.[i])) && a.[i] < limit && b.[i] < limit && a.[i] >= 0L && b.[i] >= 0L
    ok

[<Property(MaxTest = 200)>]
let ``a holdout contains exactly its validation and test pairs (its bit filter never hides one)`` (seed: uint16) (a: int64) (b: int64) (near: bool) =
    let h = Holdout.Build(300, 200, int64 seed)
    let reserved = System.Collections.Generic.HashSet<Pair>(Seq.append h.Validation h.Test)
    // every reserved pair; one next to a reserved pair; an arbitrary pair (about one in nine of those that are not
    // reserved hits a set bit of the filter and must be answered by the set)
    let p = h.Test.[int (uint64 a % 200UL)]
    let neighbour = if near then Pair(p.A, p.B + 1L) else Pair(p.B, p.A)
    h.Validation |> Array.forall (fun q -> h.Contains(q.A, q.B))
    && h.Test |> Array.forall (fun q -> h.Contains(q.A, q.B))
    && h.Contains(neighbour.A, neighbour.B) = reserved.Contains neighbour
    && h.Contains(a, b) = reserved.Contains(Pair(a, b))

[<Fact>]
let ``reserved pairs are redrawn with the same digit count`` () =
    // Reserve every 1-digit pair but (9, 9): the sampler must keep redrawing until it finds it.
    let reserved = [| for x in 0L .. 9L do for y in 0L .. 9L do if (x, y) <> (9L, 9L) then Pair(x, y) |]
    let s = Sampler(1L, Holdout.FromPairs(reserved, [||]), Curriculum([| CurriculumPhase(0, 1, 1) |]))
    let a = Array.zeroCreate<int64> 50
    let b = Array.zeroCreate<int64> 50
    s.NextBatch(0, a, b)
    Assert.All(Array.zip a b, fun (x, y) -> Assert.Equal((9L, 9L), (x, y)))

[<Fact>]
let ``a value-range curriculum draws each operand uniformly from its range`` () =
    let c = Curriculum.Parse "0:0..999,2000:0..999999,7000:0..9999999999"
    Assert.Equal("0:0..999,2000:0..999999,7000:0..9999999999", string c)
    Assert.Equal(c, Curriculum.Parse(string c))
    Assert.Equal(3, c.At(1999).MaxDigits)
    Assert.Equal(10, c.At(7000).MaxDigits)
    let s = Sampler(5L, Holdout.Build(40, 10, 5L), c)
    let a = Array.zeroCreate<int64> 20000
    let b = Array.zeroCreate<int64> 20000
    s.NextBatch(100, a, b)
    Assert.All(Array.append a b, fun x -> Assert.InRange(x, 0L, 999L))
    s.NextBatch(8000, a, b)
    Assert.All(Array.append a b, fun x -> Assert.InRange(x, 0L, 9_999_999_999L))
    // uniform on values: about 90% of the operands have all 10 digits (a digit-count draw would give about 10%)
    let tenDigits = Array.append a b |> Array.filter (fun x -> x >= 1_000_000_000L) |> Array.length
    Assert.InRange(float tenDigits / 40000.0, 0.88, 0.92)

[<Fact>]
let ``a malformed value range is refused in one line`` () =
    for bad in [ "0:5..3"; "0:0..10000000000"; "0:-1..5"; "0:0...5"; "0:0..x" ] do
        let e = Assert.Throws<AdderException>(fun () -> Curriculum.Parse bad |> ignore)
        Assert.DoesNotContain("\n", e.Message)
