using System.Globalization;

namespace Adder.Core;

/// <summary>Parses a role's expression into <see cref="RoleGraph"/> nodes. The language, on small matrices
/// (a vector of n is n×1):
/// <code>
///   NAME                       a stored parameter, or a role defined before this one
///   a @ b   s * x   a + b   a - b   -a   (a)
///   T(x)                       transpose
///   rot(angle, n)              n×n rotation of the pairs (0,1), (2,3), … by one angle
///   arc(p, n)                  n×2 circular-arc table from p = (A, s, δ): A·(cos(s+dδ), sin(s+dδ))
///   spiral(amp, slope, n)      frozen n×3 table (amp·cos(2πi/n), amp·sin(2πi/n), slope·i): no parameters
///   zeros(rows, cols)          frozen zeros
///   pad(x, rows, cols, r0, c0) x placed at (r0, c0) of a zero rows×cols matrix
///   hcat(a, b, …)  vcat(a, b, …)  slice(x, r0, rows, c0, cols)
/// </code>
/// Counts and offsets are number literals. Every shape is checked as the expression is built.</summary>
public static class RoleExpression
{
    public interface ISymbols
    {
        RoleNode? Resolve(string name);
    }

    public static RoleNode Compile(string text, RoleGraph graph, ISymbols symbols, string role)
    {
        var p = new Parser(text, graph, symbols, role);
        var node = p.ParseSum();
        p.ExpectEnd();
        return node;
    }

    sealed class Parser(string text, RoleGraph graph, ISymbols symbols, string role)
    {
        int pos;

        AdderException Error(string message) => new($"role {role}: {message} (in '{Limits.Echo(text)}')");

        void SkipSpace() { while (pos < text.Length && char.IsWhiteSpace(text[pos])) pos++; }
        bool Peek(char c) { SkipSpace(); return pos < text.Length && text[pos] == c; }
        bool Accept(char c) { if (!Peek(c)) return false; pos++; return true; }
        void Expect(char c) { if (!Accept(c)) throw Error(pos < text.Length ? $"expected '{c}' at '{Limits.Echo(text[pos..])}'" : $"expected '{c}' at the end"); }
        public void ExpectEnd() { SkipSpace(); if (pos < text.Length) throw Error($"unexpected '{Limits.Echo(text[pos..])}'"); }

        public RoleNode ParseSum()
        {
            var left = ParseProduct();
            while (true)
            {
                double sign = Accept('+') ? 1 : Accept('-') ? -1 : 0;
                if (sign == 0) return left;
                var right = ParseProduct();
                if (right.Rows != left.Rows || right.Cols != left.Cols)
                    throw Error($"cannot add {left.Value.ShapeText} and {right.Value.ShapeText}");
                left = graph.Add(new RoleNodes.Sum(left, right, sign));
            }
        }

        RoleNode ParseProduct()
        {
            var left = ParseUnary();
            while (true)
            {
                if (Accept('@'))
                {
                    var right = ParseUnary();
                    if (left.Cols != right.Rows) throw Error($"cannot multiply {left.Value.ShapeText} by {right.Value.ShapeText}");
                    left = graph.Add(new RoleNodes.MatMul(left, right));
                }
                else if (Accept('*'))
                {
                    var right = ParseUnary();
                    bool leftScalar = left.Rows == 1 && left.Cols == 1, rightScalar = right.Rows == 1 && right.Cols == 1;
                    if (!leftScalar && !rightScalar) throw Error($"'*' needs a scalar side, got {left.Value.ShapeText} and {right.Value.ShapeText} (use '@' for a matrix product)");
                    left = leftScalar ? graph.Add(new RoleNodes.Scale(left, right)) : graph.Add(new RoleNodes.Scale(right, left));
                }
                else return left;
            }
        }

        RoleNode ParseUnary()
        {
            if (Accept('-'))
            {
                var x = ParseUnary();
                return graph.Add(new RoleNodes.Scale(Constant(-1), x));
            }
            return ParseAtom();
        }

        RoleNode Constant(double value)
        {
            var m = new Mat(1, 1);
            m.Data[0] = value;
            return graph.Add(new RoleNodes.Constant(m));
        }

        RoleNode ParseAtom()
        {
            SkipSpace();
            if (Accept('('))
            {
                var inner = ParseSum();
                Expect(')');
                return inner;
            }
            if (pos < text.Length && (char.IsDigit(text[pos]) || text[pos] == '.')) return Constant(ParseNumber());
            string name = ParseName();
            if (Accept('(')) return ParseCall(name);
            return symbols.Resolve(name) ?? throw Error($"'{Limits.Echo(name)}' is neither a stored parameter nor a role defined before it");
        }

        double ParseNumber()
        {
            int start = pos;
            while (pos < text.Length && (char.IsDigit(text[pos]) || text[pos] is '.' or 'e' or 'E'
                   || (text[pos] is '-' or '+' && pos > start && text[pos - 1] is 'e' or 'E'))) pos++;
            if (!double.TryParse(text.AsSpan(start, pos - start), NumberStyles.Float, CultureInfo.InvariantCulture, out double x) || !double.IsFinite(x))
                throw Error($"bad number '{Limits.Echo(text[start..pos])}'");
            return x;
        }

        string ParseName()
        {
            SkipSpace();
            int start = pos;
            while (pos < text.Length && (char.IsLetterOrDigit(text[pos]) || text[pos] is '_' or '.')) pos++;
            if (pos == start) throw Error(pos < text.Length ? $"unexpected '{Limits.Echo(text[pos..])}'" : "unexpected end");
            return text[start..pos];
        }

        List<object> ParseArguments()
        {
            var args = new List<object>();
            if (Accept(')')) return args;
            do
            {
                SkipSpace();
                // a bare number is kept as a literal (a count or an offset); anything else is an expression
                int save = pos;
                if (pos < text.Length && (char.IsDigit(text[pos]) || text[pos] is '.' or '-'))
                {
                    bool negative = Accept('-');
                    SkipSpace();
                    if (pos < text.Length && (char.IsDigit(text[pos]) || text[pos] == '.'))
                    {
                        double x = ParseNumber();
                        if (Peek(',') || Peek(')')) { args.Add(negative ? -x : x); continue; }
                    }
                    pos = save;
                }
                args.Add(ParseSum());
            } while (Accept(','));
            Expect(')');
            return args;
        }

        RoleNode Node(object arg, string fn) => arg switch
        {
            RoleNode n => n,
            double x => Constant(x),
            _ => throw Error($"{fn}: bad argument"),
        };

        int Count(object arg, string fn, string what, int min = 0)
        {
            if (arg is not double x || x != Math.Floor(x) || x < min || x > 4096)
                throw Error($"{fn}: {what} must be a whole number from {min} to 4096");
            return (int)x;
        }

        double Literal(object arg, string fn, string what) =>
            arg is double x ? x : throw Error($"{fn}: {what} must be a number literal (it is frozen, not a parameter)");

        void Arity(List<object> args, string fn, int n, string signature)
        {
            if (args.Count != n) throw Error($"{fn} takes {n} arguments: {fn}({signature})");
        }

        RoleNode ParseCall(string fn)
        {
            var args = ParseArguments();
            switch (fn)
            {
                case "T":
                    Arity(args, fn, 1, "x");
                    return graph.Add(new RoleNodes.Transpose(Node(args[0], fn)));
                case "rot":
                {
                    Arity(args, fn, 2, "angle, n");
                    var angle = Node(args[0], fn);
                    if (angle.Rows != 1 || angle.Cols != 1) throw Error($"rot: the angle must be a scalar, got {angle.Value.ShapeText}");
                    int n = Count(args[1], fn, "n", 2);
                    if (n % 2 != 0) throw Error($"rot: n must be even (pairs are rotated), got {n}");
                    return graph.Add(new RoleNodes.Rotation(angle, n));
                }
                case "arc":
                {
                    Arity(args, fn, 2, "p, n");
                    var p3 = Node(args[0], fn);
                    if (p3.Rows * p3.Cols != 3) throw Error($"arc: p must hold 3 values (A, s, δ), got {p3.Value.ShapeText}");
                    return graph.Add(new RoleNodes.Arc(p3, Count(args[1], fn, "n", 1)));
                }
                case "spiral":
                {
                    Arity(args, fn, 3, "amp, slope, n");
                    double amp = Literal(args[0], fn, "amp"), slope = Literal(args[1], fn, "slope");
                    int n = Count(args[2], fn, "n", 1);
                    var m = new Mat(n, 3);
                    for (int i = 0; i < n; i++)
                    {
                        double angle = 2 * Math.PI * i / n;
                        m[i, 0] = amp * Math.Cos(angle); m[i, 1] = amp * Math.Sin(angle); m[i, 2] = slope * i;
                    }
                    return graph.Add(new RoleNodes.Constant(m));
                }
                case "zeros":
                    Arity(args, fn, 2, "rows, cols");
                    return graph.Add(new RoleNodes.Constant(new Mat(Count(args[0], fn, "rows", 1), Count(args[1], fn, "cols", 1))));
                case "pad":
                {
                    Arity(args, fn, 5, "x, rows, cols, r0, c0");
                    var x = Node(args[0], fn);
                    int rows = Count(args[1], fn, "rows", 1), cols = Count(args[2], fn, "cols", 1), r0 = Count(args[3], fn, "r0"), c0 = Count(args[4], fn, "c0");
                    if (r0 + x.Rows > rows || c0 + x.Cols > cols)
                        throw Error($"pad: {x.Value.ShapeText} at ({r0}, {c0}) does not fit in {rows}×{cols}");
                    return graph.Add(new RoleNodes.Place(rows, cols, [(x, r0, c0)]));
                }
                case "hcat":
                case "vcat":
                {
                    if (args.Count < 1) throw Error($"{fn} needs at least one argument");
                    var parts = args.Select(a => Node(a, fn)).ToList();
                    bool horizontal = fn == "hcat";
                    int fixedDim = horizontal ? parts[0].Rows : parts[0].Cols;
                    var placed = new List<(RoleNode, int, int)>();
                    int at = 0;
                    foreach (var part in parts)
                    {
                        int d = horizontal ? part.Rows : part.Cols;
                        if (d != fixedDim)
                            throw Error($"{fn}: parts have {(horizontal ? "rows" : "columns")} {fixedDim} and {d} (a split that does not add up)");
                        placed.Add(horizontal ? (part, 0, at) : (part, at, 0));
                        at += horizontal ? part.Cols : part.Rows;
                    }
                    return horizontal ? graph.Add(new RoleNodes.Place(fixedDim, at, placed.ToArray()))
                                      : graph.Add(new RoleNodes.Place(at, fixedDim, placed.ToArray()));
                }
                case "slice":
                {
                    Arity(args, fn, 5, "x, r0, rows, c0, cols");
                    var x = Node(args[0], fn);
                    int r0 = Count(args[1], fn, "r0"), rows = Count(args[2], fn, "rows", 1), c0 = Count(args[3], fn, "c0"), cols = Count(args[4], fn, "cols", 1);
                    if (r0 + rows > x.Rows || c0 + cols > x.Cols)
                        throw Error($"slice: rows {r0}..{r0 + rows - 1}, columns {c0}..{c0 + cols - 1} are outside {x.Value.ShapeText}");
                    return graph.Add(new RoleNodes.Slice(x, r0, rows, c0, cols));
                }
                default:
                    throw Error($"unknown function '{Limits.Echo(fn)}' (known: T, rot, arc, spiral, zeros, pad, hcat, vcat, slice)");
            }
        }
    }
}
