namespace Kintsugi.Micro;

/// <summary>Whether ZstdNet's native libzstd loads here, and which file it came from.</summary>
public static class NativeZstd
{
    public const string Category = "native-zstd";

    private static readonly Lazy<(bool Available, string Detail)> s_probe = new(Probe);

    public static bool Available => s_probe.Value.Available;

    public static string Detail => s_probe.Value.Detail;

    private static (bool, string) Probe()
    {
        try
        {
            using var compressor = new ZstdNet.Compressor(new ZstdNet.CompressionOptions(1));
            var packed = compressor.Wrap(new byte[4096]);
            using var decompressor = new ZstdNet.Decompressor();
            if (decompressor.Unwrap(packed).Length != 4096)
            {
                return (false, "libzstd loaded but a round trip failed");
            }
            var loaded = File.ReadLines("/proc/self/maps")
                .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(parts => parts.Length >= 6 && parts[5].Contains("libzstd", StringComparison.Ordinal) && parts[5].Contains(".so", StringComparison.Ordinal))
                .Select(parts => parts[5])
                .Distinct()
                .ToList();
            return (true, loaded.Count > 0 ? "loaded " + string.Join(", ", loaded) : "loaded (library path not found in /proc/self/maps)");
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException or TypeInitializationException)
        {
            return (false, $"{e.GetType().Name}: {e.Message}");
        }
    }
}
