using System.Globalization;

namespace Adder.Core;

/// <summary>A small matrix of doubles, row-major; a vector of n is n×1, a scalar 1×1.</summary>
public sealed class Mat(int rows, int cols)
{
    public int Rows { get; } = rows;
    public int Cols { get; } = cols;
    public double[] Data { get; } = new double[rows * cols];
    public double this[int r, int c] { get => Data[r * Cols + c]; set => Data[r * Cols + c] = value; }
    public string ShapeText => $"{Rows}×{Cols}";
}

/// <summary>One operation of the role graph: its value is computed from its inputs' values, and its
/// backward adds its gradient's share into its inputs' gradients (reverse mode).</summary>
public abstract class RoleNode(int rows, int cols)
{
    public Mat Value { get; } = new(rows, cols);
    public Mat Grad { get; } = new(rows, cols);
    public int Rows => Value.Rows;
    public int Cols => Value.Cols;
    public abstract void Forward(ReadOnlySpan<double> parameters);
    public abstract void Backward(Span<double> parameterGrad);
    /// <summary>The same operation as a PyTorch expression over the names of its inputs (the AdderBoard
    /// export materialises the roles with it, from the model's own parameters).</summary>
    public abstract string Python(Func<RoleNode, string> name);
}

/// <summary>The effective matrices of a model's roles as functions of its stored parameters: a tape of
/// nodes in evaluation order, built from each role's expression (<see cref="RoleExpression"/>). Forward
/// materialises every role from the flat parameter buffer; Backward pulls the roles' gradients back
/// into the stored parameters' gradient. At these sizes the whole graph costs microseconds a step.</summary>
public sealed class RoleGraph
{
    readonly List<RoleNode> tape = [];
    readonly Dictionary<string, RoleNode> roles = [];

    /// <summary>The tape in evaluation order.</summary>
    public IReadOnlyList<RoleNode> Tape => tape;

    public IReadOnlyDictionary<string, RoleNode> Roles => roles;
    internal T Add<T>(T node) where T : RoleNode { tape.Add(node); return node; }
    internal void Name(string role, RoleNode node) => roles[role] = node;

    public void Forward(ReadOnlySpan<double> parameters)
    {
        foreach (var n in tape) n.Forward(parameters);
    }

    /// <summary>Role gradients must be in each role node's Grad; accumulates into parameterGrad (not cleared).</summary>
    public void Backward(Span<double> parameterGrad)
    {
        for (int i = tape.Count - 1; i >= 0; i--) tape[i].Backward(parameterGrad);
    }

    public void ClearGradients()
    {
        foreach (var n in tape) Array.Clear(n.Grad.Data);
    }
}

/// <summary>The nodes a role expression can use.</summary>
static class RoleNodes
{
    public sealed class Parameter(int offset, int rows, int cols, string parameterName) : RoleNode(rows, cols)
    {
        public string ParameterName => parameterName;
        public override string Python(Func<RoleNode, string> name) => $"P[{Quote(parameterName)}].reshape({Rows}, {Cols})";
        public override void Forward(ReadOnlySpan<double> p) { for (int i = 0; i < Value.Data.Length; i++) Value.Data[i] = p[offset + i]; }
        public override void Backward(Span<double> g) { for (int i = 0; i < Grad.Data.Length; i++) g[offset + i] += Grad.Data[i]; }
    }

    public sealed class Constant : RoleNode
    {
        public Constant(Mat m) : base(m.Rows, m.Cols) => m.Data.CopyTo(Value.Data, 0);
        public override string Python(Func<RoleNode, string> name) =>
            $"torch.tensor([{string.Join(", ", Value.Data.Select(Number))}], dtype=torch.float64).reshape({Rows}, {Cols})";
        public override void Forward(ReadOnlySpan<double> p) { }
        public override void Backward(Span<double> g) { }
    }

    public sealed class MatMul(RoleNode a, RoleNode b) : RoleNode(a.Rows, b.Cols)
    {
        public override string Python(Func<RoleNode, string> name) => $"{name(a)} @ {name(b)}";
        public override void Forward(ReadOnlySpan<double> p)
        {
            for (int i = 0; i < Rows; i++)
                for (int j = 0; j < Cols; j++)
                {
                    double s = 0;
                    for (int k = 0; k < a.Cols; k++) s += a.Value[i, k] * b.Value[k, j];
                    Value[i, j] = s;
                }
        }
        public override void Backward(Span<double> g)
        {
            for (int i = 0; i < Rows; i++)
                for (int j = 0; j < Cols; j++)
                {
                    double d = Grad[i, j];
                    for (int k = 0; k < a.Cols; k++)
                    {
                        a.Grad.Data[i * a.Cols + k] += d * b.Value[k, j];
                        b.Grad.Data[k * b.Cols + j] += d * a.Value[i, k];
                    }
                }
        }
    }

    /// <summary>a + sign·b, same shapes.</summary>
    public sealed class Sum(RoleNode a, RoleNode b, double sign) : RoleNode(a.Rows, a.Cols)
    {
        public override string Python(Func<RoleNode, string> name) => $"{name(a)} {(sign > 0 ? "+" : "-")} {name(b)}";
        public override void Forward(ReadOnlySpan<double> p) { for (int i = 0; i < Value.Data.Length; i++) Value.Data[i] = a.Value.Data[i] + sign * b.Value.Data[i]; }
        public override void Backward(Span<double> g)
        {
            for (int i = 0; i < Grad.Data.Length; i++) { a.Grad.Data[i] += Grad.Data[i]; b.Grad.Data[i] += sign * Grad.Data[i]; }
        }
    }

    /// <summary>A 1×1 node times a matrix.</summary>
    public sealed class Scale(RoleNode s, RoleNode x) : RoleNode(x.Rows, x.Cols)
    {
        public override string Python(Func<RoleNode, string> name) => $"{name(s)}.reshape(()) * {name(x)}";
        public override void Forward(ReadOnlySpan<double> p) { double k = s.Value.Data[0]; for (int i = 0; i < Value.Data.Length; i++) Value.Data[i] = k * x.Value.Data[i]; }
        public override void Backward(Span<double> g)
        {
            double k = s.Value.Data[0], ds = 0;
            for (int i = 0; i < Grad.Data.Length; i++) { x.Grad.Data[i] += k * Grad.Data[i]; ds += x.Value.Data[i] * Grad.Data[i]; }
            s.Grad.Data[0] += ds;
        }
    }

    public sealed class Transpose(RoleNode x) : RoleNode(x.Cols, x.Rows)
    {
        public override string Python(Func<RoleNode, string> name) => $"{name(x)}.t()";
        public override void Forward(ReadOnlySpan<double> p) { for (int i = 0; i < Rows; i++) for (int j = 0; j < Cols; j++) Value[i, j] = x.Value[j, i]; }
        public override void Backward(Span<double> g) { for (int i = 0; i < Rows; i++) for (int j = 0; j < Cols; j++) x.Grad.Data[j * x.Cols + i] += Grad[i, j]; }
    }

    /// <summary>n×n block-diagonal rotation by one angle of the pairs (0,1), (2,3), …: [[cos, −sin], [sin, cos]].</summary>
    public sealed class Rotation(RoleNode angle, int size) : RoleNode(size, size)
    {
        readonly int n = size;
        public override string Python(Func<RoleNode, string> name) => $"_rot({name(angle)}, {n})";
        public override void Forward(ReadOnlySpan<double> p)
        {
            double a = angle.Value.Data[0], c = Math.Cos(a), s = Math.Sin(a);
            for (int i = 0; i < n; i += 2) { Value[i, i] = c; Value[i, i + 1] = -s; Value[i + 1, i] = s; Value[i + 1, i + 1] = c; }
        }
        public override void Backward(Span<double> g)
        {
            double a = angle.Value.Data[0], c = Math.Cos(a), s = Math.Sin(a), d = 0;
            for (int i = 0; i < n; i += 2)
                d += -s * Grad[i, i] - c * Grad[i, i + 1] + c * Grad[i + 1, i] - s * Grad[i + 1, i + 1];
            angle.Grad.Data[0] += d;
        }
    }

    /// <summary>The circular-arc table: row d = A·(cos(s + d·δ), sin(s + d·δ)) from p = (A, s, δ).</summary>
    public sealed class Arc(RoleNode p3, int rows) : RoleNode(rows, 2)
    {
        readonly int n = rows;
        public override string Python(Func<RoleNode, string> name) => $"_arc({name(p3)}, {n})";
        public override void Forward(ReadOnlySpan<double> p)
        {
            double A = p3.Value.Data[0], s = p3.Value.Data[1], delta = p3.Value.Data[2];
            for (int d = 0; d < n; d++) { double t = s + d * delta; Value[d, 0] = A * Math.Cos(t); Value[d, 1] = A * Math.Sin(t); }
        }
        public override void Backward(Span<double> g)
        {
            double A = p3.Value.Data[0], s = p3.Value.Data[1], delta = p3.Value.Data[2], dA = 0, dt = 0, dDelta = 0;
            for (int d = 0; d < n; d++)
            {
                double t = s + d * delta, c = Math.Cos(t), sn = Math.Sin(t), g0 = Grad[d, 0], g1 = Grad[d, 1];
                dA += g0 * c + g1 * sn;
                double dAngle = A * (-g0 * sn + g1 * c);
                dt += dAngle;
                dDelta += d * dAngle;
            }
            p3.Grad.Data[0] += dA; p3.Grad.Data[1] += dt; p3.Grad.Data[2] += dDelta;
        }
    }

    /// <summary>Inputs placed at offsets of a zero matrix (pad, hcat, vcat are this).</summary>
    public sealed class Place(int rows, int cols, (RoleNode Node, int Row, int Col)[] parts) : RoleNode(rows, cols)
    {
        public override string Python(Func<RoleNode, string> name) =>
            $"_place({Rows}, {Cols}, [{string.Join(", ", parts.Select(p => $"({name(p.Node)}, {p.Row}, {p.Col})"))}])";
        public override void Forward(ReadOnlySpan<double> p)
        {
            Array.Clear(Value.Data);
            foreach (var (x, r0, c0) in parts)
                for (int i = 0; i < x.Rows; i++) for (int j = 0; j < x.Cols; j++) Value[r0 + i, c0 + j] = x.Value[i, j];
        }
        public override void Backward(Span<double> g)
        {
            foreach (var (x, r0, c0) in parts)
                for (int i = 0; i < x.Rows; i++) for (int j = 0; j < x.Cols; j++) x.Grad.Data[i * x.Cols + j] += Grad[r0 + i, c0 + j];
        }
    }

    /// <summary>A block of x: rows r0.., cols c0...</summary>
    public sealed class Slice(RoleNode x, int r0, int rows, int c0, int cols) : RoleNode(rows, cols)
    {
        public override string Python(Func<RoleNode, string> name) => $"{name(x)}[{r0}:{r0 + Rows}, {c0}:{c0 + Cols}]";
        public override void Forward(ReadOnlySpan<double> p) { for (int i = 0; i < Rows; i++) for (int j = 0; j < Cols; j++) Value[i, j] = x.Value[r0 + i, c0 + j]; }
        public override void Backward(Span<double> g) { for (int i = 0; i < Rows; i++) for (int j = 0; j < Cols; j++) x.Grad.Data[(r0 + i) * x.Cols + c0 + j] += Grad[i, j]; }
    }

    public static string Number(double x) => x.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>A Python string literal of any text (JSON's escapes are valid Python).</summary>
    public static string Quote(string s) => System.Text.Json.JsonSerializer.Serialize(s);
}
