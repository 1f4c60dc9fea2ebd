module Adder.Tests.PythonRandomTests

open System.Numerics
open Xunit
open Adder.Core
open Adder.Pipeline

// Values printed by CPython 3.11 (/usr/bin/python3), e.g.
// python3 -c 'import random; r=random.Random(2025); print([r.randint(0,9999999999) for _ in range(6)])'

[<Fact>]
let ``Random(2025).randint(0, 9999999999) matches CPython`` () =
    let r = PythonRandom(BigInteger 2025)
    let got = [ for _ in 1 .. 6 -> r.RandInt(0L, 9_999_999_999L) ]
    Assert.Equal<int64 list>([ 2395527356L; 9334186774L; 4296888873L; 8475224721L; 2446880696L; 4577514554L ], got)

[<Fact>]
let ``a small range and other seeds match CPython`` () =
    let r = PythonRandom(BigInteger 7)
    Assert.Equal<int64 list>([ 5L; 2L; 6L; 0L; 1L; 8L; 1L; 5L ], [ for _ in 1 .. 8 -> r.RandInt(0L, 9L) ])
    let r = PythonRandom(BigInteger 0)
    Assert.Equal<int64 list>([ 4L; 4L; 1L; 3L; 5L; 4L ], [ for _ in 1 .. 6 -> r.RandInt(1L, 6L) ])
    // a seed wider than 32 bits: the key is two words, least significant first
    let r = PythonRandom(BigInteger.Parse "123456789012345")
    Assert.Equal<int64 list>([ 2896848117L; 5550504683L; 9084513790L ], [ for _ in 1 .. 3 -> r.RandInt(0L, 9_999_999_999L) ])

[<Fact>]
let ``the AdderBoard suite is 10 edge cases then 10,000 pairs starting with CPython's first draws`` () =
    match AdderBoard.sets () with
    | [ (edgeName, ea, _); (randomName, a, b) ] ->
        Assert.Equal("edge cases", edgeName)
        Assert.Equal(10, ea.Length)
        Assert.Equal("random(2025)", randomName)
        Assert.Equal(10_000, a.Length)
        Assert.Equal((2395527356L, 9334186774L), (a.[0], b.[0]))
        Assert.Equal((4296888873L, 8475224721L), (a.[1], b.[1]))
    | other -> failwithf "unexpected sets %A" (other |> List.map (fun (n, _, _) -> n))

[<Fact>]
let ``the last AdderBoard pair and the sum of all 10,000 match CPython`` () =
    let pairs = AdderBoard.randomPairs ()
    Assert.Equal((4210807827L, 8038206893L), pairs.[pairs.Length - 1])
    Assert.Equal(100928675748699L, pairs |> Array.sumBy (fun (a, b) -> a + b))
