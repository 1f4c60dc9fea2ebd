using static Adder.Kernels.Native.CudaDriver;

namespace Adder.Kernels;

/// <summary>A stream (ManagedCuda's CudaStream), with graph capture: work enqueued between
/// <see cref="BeginCapture"/> and <see cref="EndCapture"/> is recorded, not run.</summary>
public sealed class CudaStream : IDisposable
{
    public nint Stream { get; private set; }

    public CudaStream()
    {
        Cuda.Check(cuStreamCreate(out var stream, 0), "cuStreamCreate");
        Stream = stream;
    }

    public void Synchronize() => Cuda.Check(cuStreamSynchronize(Stream), "cuStreamSynchronize");

    /// <summary>Thread-local capture: other threads' CUDA calls do not invalidate it.</summary>
    public void BeginCapture() =>
        Cuda.Check(cuStreamBeginCapture_v2(Stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture_v2");

    public CudaGraph EndCapture()
    {
        Cuda.Check(cuStreamEndCapture(Stream, out var graph), "cuStreamEndCapture");
        return new CudaGraph(graph);
    }

    public void Dispose()
    {
        if (Stream == 0) return;
        var s = Stream;
        Stream = 0;
        Cuda.Check(cuStreamDestroy_v2(s), "cuStreamDestroy_v2");
    }
}

/// <summary>A captured graph (ManagedCuda's CudaGraph); <see cref="Instantiate"/> makes it launchable.</summary>
public sealed class CudaGraph : IDisposable
{
    public nint Graph { get; private set; }

    internal CudaGraph(nint graph) => Graph = graph;

    public CudaGraphExec Instantiate()
    {
        Cuda.Check(cuGraphInstantiateWithFlags(out var exec, Graph, 0), "cuGraphInstantiateWithFlags");
        return new CudaGraphExec(exec);
    }

    public void Dispose()
    {
        if (Graph == 0) return;
        var g = Graph;
        Graph = 0;
        Cuda.Check(cuGraphDestroy(g), "cuGraphDestroy");
    }
}

/// <summary>An instantiated graph: one launch replays every captured kernel and copy.</summary>
public sealed class CudaGraphExec : IDisposable
{
    public nint GraphExec { get; private set; }

    internal CudaGraphExec(nint exec) => GraphExec = exec;

    public void Launch(CudaStream stream) => Cuda.Check(cuGraphLaunch(GraphExec, stream.Stream), "cuGraphLaunch");

    public void Dispose()
    {
        if (GraphExec == 0) return;
        var e = GraphExec;
        GraphExec = 0;
        Cuda.Check(cuGraphExecDestroy(e), "cuGraphExecDestroy");
    }
}

/// <summary>A timing event (ManagedCuda's CudaEvent).</summary>
public sealed class CudaEvent : IDisposable
{
    public nint Event { get; private set; }

    public CudaEvent()
    {
        Cuda.Check(cuEventCreate(out var e, CU_EVENT_DEFAULT), "cuEventCreate");
        Event = e;
    }

    public void Record(CudaStream stream) => Cuda.Check(cuEventRecord(Event, stream.Stream), "cuEventRecord");

    public void Synchronize() => Cuda.Check(cuEventSynchronize(Event), "cuEventSynchronize");

    /// <summary>Milliseconds between two recorded events.</summary>
    public static float ElapsedTime(CudaEvent start, CudaEvent end)
    {
        Cuda.Check(cuEventElapsedTime(out var ms, start.Event, end.Event), "cuEventElapsedTime");
        return ms;
    }

    public void Dispose()
    {
        if (Event == 0) return;
        var e = Event;
        Event = 0;
        Cuda.Check(cuEventDestroy_v2(e), "cuEventDestroy_v2");
    }
}
