/// Model shapes by name: the seed family's presets (ModelConfig's knobs, its specialised paths) and the
/// architecture presets and files (Core's Architecture, the general backend), and how `adder info` shows one.
module Adder.Pipeline.Architectures

open Adder.Core

/// A preset name to its model: 311p, 275p and wide are the seed family's; 62p, 44p, 36p, 67p and 57p are
/// architectures (architectures/*.json).
let preset (name: string) =
    match name.ToLowerInvariant() with
    | "311p" | "275p" | "wide" -> ModelConfig.Preset name
    | n when ArchitecturePresets.IsPreset n -> ModelConfig.Of(ArchitecturePresets.Load n)
    | _ -> fail "unknown model preset '%s' (known: 311p, 275p, wide, %s)" (Limits.Echo name) (String.concat ", " (ArchitecturePresets.Names |> Array.filter ((<>) "311p")))

/// An architecture file (`--arch FILE`).
let file (path: string) = ModelConfig.Of(ArchitecturePresets.FromFile path)

/// The lines `adder info` prints for a shape: the stored parameters, the roles with their shapes and how each
/// is derived (the ties), and the unique count.
let describe (config: ModelConfig) =
    match config.General with
    | null ->
        let layout = ParameterLayout config
        [ yield sprintf "config:     %s" (config.Describe())
          yield ""
          yield sprintf "%-28s %-10s %s" "tensor" "shape" "params"
          for t in layout.Tensors -> sprintf "%-28s %-10s %d" t.Name t.ShapeText t.Size
          yield sprintf "%-28s %-10s %d" "lm_head.weight" "(tied)" 0
          yield ""
          yield sprintf "unique parameters: %d" layout.Count ]
    | arch ->
        let compiled = arch.Compile()
        let rope = if arch.RopeTheta.HasValue then sprintf ", RoPE θ=%g" arch.RopeTheta.Value else ", no RoPE"
        [ yield sprintf "architecture: %s (format %s: %d tokens, vocabulary %d)" arch.Name arch.Format.Name arch.Format.FullLength arch.Format.VocabSize
          yield sprintf "block:        d_model %d, head dim %d, value dim %d, d_ff %d, %s MLP%s, norm eps %g, attention scale %g"
                    compiled.D compiled.Dq compiled.Dv compiled.F arch.Mlp rope arch.NormEps compiled.Scale
          yield ""
          yield sprintf "%-28s %-10s %s" "stored parameter" "shape" "params"
          for p in arch.Parameters -> sprintf "%-28s %-10s %d" p.Name ("[" + System.String.Join(", ", p.Shape) + "]") p.Size
          yield ""
          yield sprintf "%-18s %-7s %s" "role" "shape" "derived as"
          for KeyValue(role, expression) in arch.Roles -> sprintf "%-18s %-7s %s" role (compiled.Role(role).Value.ShapeText) expression
          yield ""
          yield sprintf "unique parameters: %d" arch.Count ]

/// Where a moved model's parameters the source lacks start: refused (an error naming the first), at the target's
/// initial values, or at expressions in the roles' algebra over the source's parameters and roles.
type NewParameters =
    | Refused
    | FromInit of Model
    | FromExpressions of Map<string, string>

/// A model moved to another architecture: each of the target's stored parameters taken from the source's of the
/// same name and shape (one of another shape is an error naming it), or, where `fresh` says, from the target's
/// init or an expression over the source (of the parameter's shape); the source's others are dropped, each
/// returned with its largest magnitude (what the cut leaves out of the function).
let transferWith (fresh: NewParameters) (source: Model) (target: ModelConfig) =
    if isNull (box target.General) then fail "--arch/--preset: %s is not an architecture (convert moves weights between architectures)" (target.Describe())
    if isNull (box source.Config.General) then fail "the checkpoint's model %s is not an architecture (convert moves weights between architectures)" (source.Config.Describe())
    let layout = ParameterLayout target
    let values = Array.zeroCreate<float32> layout.Count
    let byName = source.Layout.Tensors |> Seq.map (fun t -> t.Name, t) |> Map.ofSeq
    let expressions = match fresh with FromExpressions e -> e | _ -> Map.empty
    let targetNames = layout.Tensors |> Seq.map (fun t -> t.Name) |> Set.ofSeq
    for KeyValue(name, _) in expressions do
        if not (targetNames.Contains name) then fail "new_parameters names '%s', which %s does not store" (Limits.Echo name) (target.Describe())
    let sourceValues = lazy (Array.map float source.Parameters)
    for t in layout.Tensors do
        match expressions.TryFind t.Name, byName.TryFind t.Name, fresh with
        | Some expression, _, _ ->
            let value = source.Config.General.Evaluate(expression, System.ReadOnlySpan(sourceValues.Force()), sprintf "new parameter %s" t.Name)
            let rows, cols = (if t.Shape.Length = 1 then t.Shape.[0], 1 else t.Shape.[0], t.Shape.[1])
            if value.Rows <> rows || value.Cols <> cols then
                fail "new parameter %s: its expression is %s, the parameter %s" t.Name value.ShapeText t.ShapeText
            for i in 0 .. t.Size - 1 do values.[t.Offset + i] <- float32 value.Data.[i]
        | None, None, FromInit initial -> Array.blit initial.Parameters t.Offset values t.Offset t.Size
        | None, None, _ -> fail "the checkpoint has no parameter '%s' for %s (it has: %s)" t.Name (target.Describe()) (source.Layout.Tensors |> Seq.map (fun t -> t.Name) |> String.concat ", ")
        | None, Some s, _ when s.Shape <> t.Shape -> fail "parameter '%s' is %s in the checkpoint and %s in %s" t.Name s.ShapeText t.ShapeText (target.Describe())
        | None, Some s, _ -> Array.blit source.Parameters s.Offset values t.Offset t.Size
    let kept = layout.Tensors |> Seq.map (fun t -> t.Name) |> Set.ofSeq
    let dropped =
        [ for s in source.Layout.Tensors do
            if not (kept.Contains s.Name) then
                yield s.Name, (source.Parameters.[s.Offset .. s.Offset + s.Size - 1] |> Array.fold (fun m x -> max m (abs (float x))) 0.0) ]
    Model(target, values), dropped

/// transferWith, every parameter of the target taken from the source.
let transfer (source: Model) (target: ModelConfig) = transferWith Refused source target
