module Adder.Tests.VerifyTests

open Xunit
open FsCheck.Xunit
open Adder.Pipeline

let private digits (x: int64) = string x |> Seq.map (fun c -> int c - int '0') |> Array.ofSeq |> Array.rev
let private digit (x: int64) (i: int) = let d = digits x in if i < d.Length then d.[i] else 0
let private inRange (a, b) = a >= 0L && a <= Verify.maxOperand && b >= 0L && b <= Verify.maxOperand

[<Property(MaxTest = 20)>]
let ``every generator stays in range and is reproducible from its seed`` (seed: int64) (block: byte) =
    for g in Verify.generators do
        match g.Gen with
        | Some gen ->
            let x = Verify.sample gen seed 1 (int block) 2000
            Assert.True(Array.forall inRange x, g.Name)
            Assert.Equal<(int64 * int64)[]>(x, Verify.sample gen seed 1 (int block) 2000)
            Assert.NotEqual<(int64 * int64)[]>(x, Verify.sample gen (seed + 1L) 1 (int block) 2000)
        | None -> Assert.True(Array.forall inRange Verify.edgeCases)

[<Fact>]
let ``mixed-length gives every pair of lengths 1..10, about uniformly`` () =
    let pairs = Verify.sample Verify.mixedLength 3L 0 0 50_000
    let counts = pairs |> Array.countBy (fun (a, b) -> (string a).Length, (string b).Length) |> Map.ofArray
    Assert.Equal(100, counts.Count)
    for KeyValue(_, n) in counts do Assert.InRange(n, 350, 650)    // 500 expected each

[<Fact>]
let ``carry-chain sums carry through a run of digit pairs summing to 9 into 10^k`` () =
    for a, b in Verify.sample Verify.carryChain 5L 0 0 20_000 do
        // some digit j-1 makes a carry, and the pairs above it up to k-1 (k - j >= 1 of them) sum to 9
        let found =
            [ for j in 1 .. 9 ->
                digit a (j - 1) + digit b (j - 1) >= 10 && digit a j + digit b j = 9 ]
            |> List.exists id
        Assert.True(found, sprintf "%d + %d has no carry chain" a b)

[<Fact>]
let ``nine-pairs have every digit pair summing to 9`` () =
    for a, b in Verify.sample Verify.ninePairs 5L 0 0 20_000 do
        let n = (string (a + b)).Length
        Assert.Equal(String.replicate n "9", string (a + b))

[<Fact>]
let ``Wilson interval matches known values`` () =
    // n = 100, 10 failures: [0.0552, 0.1744] (Wilson 1927; e.g. statsmodels proportion_confint method='wilson')
    let low, high = Verify.wilson 10 100
    Assert.Equal(0.05523, low, 4)
    Assert.Equal(0.17437, high, 4)
    let low, high = Verify.wilson 0 1000
    Assert.Equal(0.0, low, 10)
    Assert.Equal(0.00383, high, 4)

[<Property>]
let ``shrink candidates stay in range and are simpler`` (a: uint64) (b: uint64) =
    let a = int64 (a % 10_000_000_000UL)
    let b = int64 (b % 10_000_000_000UL)
    for x, y in Verify.shrinkCandidates (a, b) do
        Assert.True(inRange (x, y))
        Assert.True((x, y) <> (a, b))
        Assert.True(x <= a && y <= b && (x < a || y < b))

[<Fact>]
let ``the edge generator pairs every boundary operand with every other, 0 1 5 9 included`` () =
    let boundary = [ 0L; 1L; 5L; 9L; 10L; 99L; 100L; 999_999_999L; 1_000_000_000L; 9_999_999_998L; 9_999_999_999L ]
    for a in boundary do
        for b in boundary do
            Assert.Contains((a, b), Verify.edgeCases)
    Assert.Equal(10 + 33 * 33, Verify.edgeCases.Length)
