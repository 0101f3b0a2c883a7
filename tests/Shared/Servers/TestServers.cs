namespace Kintsugi.Tests.Shared;

/// <summary>Where the test servers installed by test.sh (npm into <c>.servers/</c>) are found.</summary>
internal static class TestServers
{
    /// <summary>KINTSUGI_SERVERS_DIR if set, else <c>.servers</c> in the repository root (the folder holding Kintsugi.slnx).</summary>
    public static string Directory
    {
        get
        {
            string? fromEnv = Environment.GetEnvironmentVariable("KINTSUGI_SERVERS_DIR");
            if (!string.IsNullOrEmpty(fromEnv))
            {
                return fromEnv;
            }
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Kintsugi.slnx")))
                {
                    return Path.Combine(dir.FullName, ".servers");
                }
            }
            throw new InvalidOperationException("cannot find the repository root (Kintsugi.slnx) above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>The path of an npm-installed program (s3rver, azurite-blob); fails with how to install it when missing.</summary>
    public static string Program(string name)
    {
        string path = Path.Combine(Directory, "node_modules", ".bin", name);
        return File.Exists(path)
            ? path
            : throw new InvalidOperationException($"{name} is not installed at {path}: run ./test.sh, which installs it with npm, or set KINTSUGI_SERVERS_DIR");
    }
}
