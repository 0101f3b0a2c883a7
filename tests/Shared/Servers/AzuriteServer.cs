using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Kintsugi.Tests.Shared;

/// <summary>
/// Azurite's blob service (the Azure Storage emulator, npm <c>azurite</c>) on a free loopback port
/// with its own temporary folder, and one container made ready. Disposing stops it (its whole
/// process tree) and removes the folder, whether the test passed or not.
/// </summary>
internal sealed class AzuriteServer : IAsyncDisposable
{
    /// <summary>The emulator's well-known account and key (public: they are in its documentation).</summary>
    public const string Account = "devstoreaccount1";

    public const string Key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private readonly Process _process;
    private readonly StringBuilder _log = new();

    private AzuriteServer(Process process, int port, string folder)
    {
        _process = process;
        Port = port;
        Folder = folder;
    }

    public int Port { get; }

    /// <summary>The emulator's workspace (its database and blob extents).</summary>
    public string Folder { get; }

    /// <summary>The blob service endpoint, path-style: <c>http://127.0.0.1:PORT/devstoreaccount1</c>.</summary>
    public string Endpoint => $"http://127.0.0.1:{Port}/{Account}";

    public string ConnectionString => $"DefaultEndpointsProtocol=http;AccountName={Account};AccountKey={Key};BlobEndpoint={Endpoint};";

    /// <summary>What the emulator printed (for a failing test's output).</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>An environment with this server's connection string and nothing else (for <c>StoreOptions.Environment</c>).</summary>
    public Func<string, string?> Environment(IReadOnlyDictionary<string, string>? more = null) => name =>
        name == "AZURE_STORAGE_CONNECTION_STRING" ? ConnectionString : more is not null && more.TryGetValue(name, out var v) ? v : null;

    /// <summary>Starts Azurite and waits until it answers; creates <paramref name="containers"/>.</summary>
    public static async Task<AzuriteServer> StartAsync(params string[] containers)
    {
        string program = TestServers.Program("azurite-blob");
        string folder = Path.Combine(Path.GetTempPath(), "kintsugi-azurite-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));
        Directory.CreateDirectory(folder);
        int port = FreePort();
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = folder,
        };
        foreach (string arg in new[] { "--blobHost", "127.0.0.1", "--blobPort", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-l", folder, "--skipApiVersionCheck", "--disableTelemetry", "--silent" })
        {
            start.ArgumentList.Add(arg);
        }
        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start " + program);
        var server = new AzuriteServer(process, port, folder);
        process.OutputDataReceived += (_, e) => server.Append(e.Data);
        process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await server.WaitUntilAnsweringAsync(containers);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_log)
            {
                _log.AppendLine(line);
            }
        }
    }

    private async Task WaitUntilAnsweringAsync(string[] containers)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        var service = new Azure.Storage.Blobs.BlobServiceClient(ConnectionString, new Azure.Storage.Blobs.BlobClientOptions { Retry = { MaxRetries = 0 } });
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"azurite-blob exited with {_process.ExitCode}: {Log}");
            }
            try
            {
                foreach (string container in containers)
                {
                    await service.GetBlobContainerClient(container).CreateIfNotExistsAsync();
                }
                await service.GetPropertiesAsync();
                return;
            }
            catch (Exception e) when (e is Azure.RequestFailedException or HttpRequestException or IOException && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        finally
        {
            _process.Dispose();
            try
            {
                Directory.Delete(Folder, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
