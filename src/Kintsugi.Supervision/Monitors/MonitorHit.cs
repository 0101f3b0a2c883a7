using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Monitors;

/// <summary>A monitor whose rule an event met, and a line saying how.</summary>
public readonly record struct MonitorHit(MonitorSpec Monitor, string Detail);
