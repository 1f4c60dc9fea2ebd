/// Causal attention of one query position, lane by lane, against a plain float64 implementation: covers the
/// register-blocked path for heads of width 4 (both presets) and the generic path (other widths), with K and V
/// tied (the same gradient array) and separate.
module Adder.Tests.AttentionTests

open System
open System.Runtime.Intrinsics
open Xunit
open Adder.Core.Cpu

let private W = LaneMath.Width

/// [count][lane] random values as lane vectors, plus the same numbers as doubles.
let private randomVectors (rng: Random) count =
    let values = Array.init count (fun _ -> Array.init W (fun _ -> rng.NextDouble() * 4.0 - 2.0 |> float32))
    values |> Array.map (fun lanes -> Vector512.Create<float32>(ReadOnlySpan lanes)), values |> Array.map (Array.map float)

/// Reference for query position t of one lane: y [D], probabilities [H][t+1], and the gradients of dy·y.
let private reference (t: int) heads headDim (q: float[]) (k: float[][]) (v: float[][]) (dy: float[]) =
    let d = heads * headDim
    let scale = 1.0 / sqrt (float headDim)
    let y = Array.zeroCreate d
    let dq = Array.zeroCreate d
    let dk = Array.init (t + 1) (fun _ -> Array.zeroCreate d)
    let dv = Array.init (t + 1) (fun _ -> Array.zeroCreate d)
    let probs =
        [| for h in 0 .. heads - 1 ->
            let cols = [ h * headDim .. (h + 1) * headDim - 1 ]
            let s = Array.init (t + 1) (fun j -> scale * List.sumBy (fun c -> q.[c] * k.[j].[c]) cols)
            let m = Array.max s
            let e = s |> Array.map (fun x -> exp (x - m))
            let p = e |> Array.map (fun x -> x / Array.sum e)
            for c in cols do y.[c] <- Array.fold2 (fun acc pj (vj: float[]) -> acc + pj * vj.[c]) 0.0 p v.[.. t]
            let dp = Array.init (t + 1) (fun j -> List.sumBy (fun c -> dy.[c] * v.[j].[c]) cols)
            let mean = Array.fold2 (fun acc pj dpj -> acc + pj * dpj) 0.0 p dp
            for j in 0 .. t do
                let ds = p.[j] * (dp.[j] - mean) * scale
                for c in cols do
                    dv.[j].[c] <- dv.[j].[c] + p.[j] * dy.[c]
                    dq.[c] <- dq.[c] + ds * k.[j].[c]
                    dk.[j].[c] <- dk.[j].[c] + ds * q.[c]
            p |]
    y, probs, dq, dk, dv

[<Theory>]
[<InlineData(1, 4, true)>]
[<InlineData(2, 4, false)>]
[<InlineData(2, 2, true)>]
[<InlineData(1, 3, false)>]
let ``attention forward and backward agree with float64`` (heads: int, headDim: int, tied: bool) =
    let T = 33
    let d = heads * headDim
    let rng = Random(heads * 100 + headDim * 10 + (if tied then 1 else 0))
    for t in [ 0; 1; 16; 32 ] do
        let q, qd = randomVectors rng d
        let k, kd = randomVectors rng (T * d)
        let v, vd = if tied then k, kd else randomVectors rng (T * d)
        let dy, dyd = randomVectors rng d
        let att = Array.zeroCreate<Vector512<float32>> (heads * T * T)
        let y = Array.zeroCreate<Vector512<float32>> d
        Layers.AttentionForward(t, heads, headDim, q, k, v, att, T, y)
        let dq = Array.zeroCreate<Vector512<float32>> d
        let dk = Array.zeroCreate<Vector512<float32>> (T * d)
        let dv = if tied then dk else Array.zeroCreate (T * d)
        Layers.AttentionBackward(t, heads, headDim, q, k, v, att, T, dy, dq, dk, dv, Span(Array.zeroCreate<Vector512<float32>> T))
        for lane in 0 .. W - 1 do
            let lanes (xs: float[][]) = xs |> Array.map (fun x -> x.[lane])
            let rows (xs: float[][]) n = Array.init n (fun j -> Array.init d (fun c -> xs.[j * d + c].[lane]))
            let ry, rp, rdq, rdk, rdv = reference t heads headDim (lanes qd) (rows kd T) (rows vd T) (lanes dyd)
            let close (expected: float) (got: float32) what =
                Assert.True(abs (float got - expected) <= 2e-5 * (1.0 + abs expected), sprintf "%s: %g vs %g (t %d lane %d)" what got expected t lane)
            for c in 0 .. d - 1 do
                close ry.[c] y.[c].[lane] "y"
                close rdq.[c] dq.[c].[lane] "dq"
            for h in 0 .. heads - 1 do
                for j in 0 .. t do close rp.[h].[j] att.[(h * T + t) * T + j].[lane] "probability"
            for j in 0 .. t do
                for c in 0 .. d - 1 do
                    if tied then close (rdk.[j].[c] + rdv.[j].[c]) dk.[j * d + c].[lane] "dkv"
                    else
                        close rdk.[j].[c] dk.[j * d + c].[lane] "dk"
                        close rdv.[j].[c] dv.[j * d + c].[lane] "dv"
