using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Kintsugi.Tests.Shared;

/// <summary>
/// s3rver (npm, installed by test.sh) on a free loopback port with its own temporary folder and
/// one bucket, <see cref="Bucket"/>; its key is <see cref="AccessKey"/>/<see cref="SecretKey"/>
/// (s3rver checks signatures: any other key is refused). Disposing kills it and removes the folder.
/// </summary>
public sealed class S3rverServer : IAsyncDisposable
{
    public const string AccessKey = "S3RVER";
    public const string SecretKey = "S3RVER";
    public const string Bucket = "kintsugi";

    private readonly Process _process;
    private readonly string _folder;

    private S3rverServer(Process process, string folder, int port)
    {
        _process = process;
        _folder = folder;
        Port = port;
    }

    public int Port { get; }

    /// <summary>The endpoint, <c>http://127.0.0.1:PORT</c>.</summary>
    public string Endpoint => $"http://127.0.0.1:{Port}";

    /// <summary>A repository URL in the bucket under <paramref name="prefix"/>.</summary>
    public string Url(string prefix) => $"s3:{Endpoint}/{Bucket}/{prefix}";

    /// <summary>The environment a store reads its credentials from.</summary>
    public Func<string, string?> Environment => name => name switch
    {
        "AWS_ACCESS_KEY_ID" => AccessKey,
        "AWS_SECRET_ACCESS_KEY" => SecretKey,
        "AWS_REGION" => "us-east-1",
        _ => null,
    };

    public static async Task<S3rverServer> StartAsync()
    {
        string program = TestServers.Program("s3rver");
        string folder = Path.Combine(Path.GetTempPath(), "s3-s3rver-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(folder);
        int port = FreePort();
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[] { "-d", folder, "-a", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--configure-bucket", Bucket, "--silent" })
        {
            info.ArgumentList.Add(arg);
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException("s3rver did not start");
        var server = new S3rverServer(process, folder, port);
        var errors = new System.Text.StringBuilder();
        process.ErrorDataReceived += (_, e) =>
        {
            lock (errors)
            {
                errors.AppendLine(e.Data);
            }
        };
        process.OutputDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (true)
            {
                if (process.HasExited)
                {
                    string stderr;
                    lock (errors)
                    {
                        stderr = errors.ToString();
                    }
                    throw new InvalidOperationException($"s3rver exited with {process.ExitCode} before answering: {stderr}");
                }
                try
                {
                    // Any HTTP answer will do (the bucket listing is refused without a signature).
                    using var response = await http.GetAsync($"{server.Endpoint}/{Bucket}");
                    if ((int)response.StatusCode > 0)
                    {
                        return server;
                    }
                }
                catch (HttpRequestException)
                {
                }
                catch (TaskCanceledException)
                {
                }
                if (DateTime.UtcNow > deadline)
                {
                    throw new InvalidOperationException($"s3rver did not answer on port {port} within 60 s");
                }
                await Task.Delay(100);
            }
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await _process.WaitForExitAsync(cts.Token);
            }
        }
        catch (InvalidOperationException)
        {
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            _process.Dispose();
            try
            {
                Directory.Delete(_folder, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }
}
