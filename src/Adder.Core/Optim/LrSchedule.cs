namespace Adder.Core;

/// <summary>Linear warm-up, then cosine decay to a floor (SPEC section 7).</summary>
public static class LrSchedule
{
    public static double At(int step, int totalSteps, double lr, int warmup, double floorRatio)
    {
        if (step < warmup) return lr * (step + 1) / warmup;
        double lrMin = floorRatio * lr;
        double span = Math.Max(1, totalSteps - warmup);
        return lrMin + (lr - lrMin) * 0.5 * (1 + Math.Cos(Math.PI * (step - warmup) / span));
    }
}
