using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Kintsugi.Tests.Shared;

/// <summary>
/// An HTTP/1.1 reverse proxy on a free loopback port in front of an emulator (s3rver, Azurite), with faults a test
/// scripts while it runs: error answers, connections dropped mid-body, stalls, a bandwidth cap, and the server gone.
/// </summary>
/// <remarks>
/// Requests and responses are forwarded byte for byte (request line, headers, Host included, and bodies with their
/// own framing), so signed requests still verify when the client is pointed at <see cref="Url"/>: the emulators do
/// not check the Host against their own port. Each request gets a fresh upstream connection; the client's
/// connection is kept alive as HTTP/1.1 says. Every fault is claimed atomically, so concurrent requests never fire
/// a fault more often than it was scripted.
/// </remarks>
internal sealed class FaultProxy : IAsyncDisposable
{
    /// <summary>For <c>times</c>: the fault fires on every matching request until cancelled.</summary>
    public const int Always = int.MaxValue;

    private readonly IPEndPoint _upstream;
    private readonly ErrorStyle _style;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly List<ProxyFault> _faults = [];
    private readonly List<ProxyRequest> _requests = [];
    private readonly ConcurrentDictionary<string, int> _byMethod = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Socket, Task> _clients = new();
    private readonly Pacer _upPacer = new();
    private readonly Pacer _downPacer = new();
    private TcpListener? _listener;
    private Task _acceptLoop = Task.CompletedTask;
    private bool _cut;
    private long _bytesPerSecond;
    private long _bytesUp;
    private long _bytesDown;
    private int _connections;
    private int _cutConnections;
    private int _requestIds;

    private FaultProxy(IPEndPoint upstream, ErrorStyle style, TimeProvider time)
    {
        _upstream = upstream;
        _style = style;
        _time = time;
    }

    /// <summary>Starts a proxy on a free loopback port in front of <paramref name="upstream"/> (http://host:port).</summary>
    public static FaultProxy Start(Uri upstream, ErrorStyle style = ErrorStyle.S3, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        IPAddress address = upstream.IsLoopback && !IPAddress.TryParse(upstream.Host, out _) ? IPAddress.Loopback : IPAddress.Parse(upstream.Host);
        var proxy = new FaultProxy(new IPEndPoint(address, upstream.Port), style, time ?? TimeProvider.System);
        proxy.Listen(0);
        return proxy;
    }

    /// <summary>The proxy's port on 127.0.0.1 (the same after a <see cref="Cut"/> and <see cref="Restore"/>).</summary>
    public int Port { get; private set; }

    /// <summary>http://127.0.0.1:PORT/ — point the client here.</summary>
    public Uri Url => new($"http://127.0.0.1:{Port}/");

    /// <summary>The cap on bytes per second in each direction, shared by all connections; 0 means no cap.</summary>
    public long BytesPerSecond
    {
        get => Interlocked.Read(ref _bytesPerSecond);
        set => Interlocked.Exchange(ref _bytesPerSecond, Math.Max(0, value));
    }

    /// <summary>Bytes forwarded to the upstream (request heads and bodies).</summary>
    public long BytesUp => Interlocked.Read(ref _bytesUp);

    /// <summary>Bytes forwarded or answered to clients (response heads and bodies).</summary>
    public long BytesDown => Interlocked.Read(ref _bytesDown);

    /// <summary>Client connections accepted and served (not those closed by a cut).</summary>
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>Client connections the cut closed: those open when it began and those accepted while it lasted.</summary>
    public int CutConnections => Volatile.Read(ref _cutConnections);

    /// <summary>Whether the proxy is cut off (see <see cref="Cut"/>).</summary>
    public bool IsCut
    {
        get { lock (_gate) { return _cut; } }
    }

    /// <summary>The requests seen so far, in arrival order (including those a fault answered or dropped).</summary>
    public IReadOnlyList<ProxyRequest> Requests
    {
        get { lock (_gate) { return [.. _requests]; } }
    }

    /// <summary>How many requests with this method (GET, PUT, …) arrived.</summary>
    public int CountOf(string method) => _byMethod.TryGetValue(method, out int count) ? count : 0;

    /// <summary>Forgets the recorded requests and the counts by method.</summary>
    public void ClearRequests()
    {
        lock (_gate)
        {
            _requests.Clear();
            _byMethod.Clear();
        }
    }

    /// <summary>
    /// Answers the next <paramref name="times"/> matching requests itself with <paramref name="status"/> and an error
    /// body in the proxy's <see cref="ErrorStyle"/>, without reaching the upstream (the request body is read and
    /// discarded, unless the client waits for 100-continue: then the connection is closed after the answer).
    /// </summary>
    public ProxyFault Fail(HttpStatusCode status, int times = 1, Func<ProxyRequest, bool>? when = null, TimeSpan? retryAfter = null, string? code = null) =>
        Add(new ProxyFault(FaultKind.Fail, times, when) { Status = status, RetryAfter = retryAfter, Code = code });

    /// <summary>Forwards the head and the first <paramref name="afterBytes"/> bytes of the next matching responses whose
    /// body is longer, then closes the client's connection.</summary>
    public ProxyFault DropResponse(long afterBytes, int times = 1, Func<ProxyRequest, bool>? when = null) =>
        Add(new ProxyFault(FaultKind.DropResponse, times, when) { AfterBytes = afterBytes });

    /// <summary>Forwards the head and the first <paramref name="afterBytes"/> bytes of the next matching request bodies
    /// that are longer, then closes both connections: the upstream sees an aborted upload, the client a reset.</summary>
    public ProxyFault DropRequest(long afterBytes, int times = 1, Func<ProxyRequest, bool>? when = null) =>
        Add(new ProxyFault(FaultKind.DropRequest, times, when) { AfterBytes = afterBytes });

    /// <summary>Holds the next matching requests for <paramref name="duration"/> before sending any byte upstream.</summary>
    public ProxyFault StallRequest(TimeSpan duration, int times = 1, Func<ProxyRequest, bool>? when = null) =>
        Add(new ProxyFault(FaultKind.StallRequest, times, when) { Duration = duration });

    /// <summary>Holds the responses to the next matching requests for <paramref name="duration"/> before sending the
    /// client any byte of them (a 100-continue included).</summary>
    public ProxyFault StallResponse(TimeSpan duration, int times = 1, Func<ProxyRequest, bool>? when = null) =>
        Add(new ProxyFault(FaultKind.StallResponse, times, when) { Duration = duration });

    /// <summary>Cancels every scripted fault (their counters stay readable).</summary>
    public void ClearFaults()
    {
        lock (_gate)
        {
            foreach (ProxyFault fault in _faults)
            {
                fault.Cancel();
            }
            _faults.Clear();
        }
    }

    /// <summary>
    /// The server is gone: open client connections are closed, and new ones are refused (the port stops listening)
    /// or, with <paramref name="refuse"/> false, accepted and closed at once. <see cref="Restore"/> brings it back.
    /// </summary>
    public void Cut(bool refuse = true)
    {
        lock (_gate)
        {
            _cut = true;
            if (refuse)
            {
                _listener?.Stop();
                _listener = null;
            }
        }
        foreach (Socket client in _clients.Keys)
        {
            Interlocked.Increment(ref _cutConnections);
            Abort(client);
        }
    }

    /// <summary>Ends a <see cref="Cut"/>: listens again on the same port.</summary>
    public void Restore()
    {
        lock (_gate)
        {
            _cut = false;
            if (_listener is null)
            {
                Listen(Port);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        lock (_gate)
        {
            _listener?.Stop();
            _listener = null;
        }
        foreach (Socket client in _clients.Keys)
        {
            Abort(client);
        }
        await Task.WhenAll(_clients.Values.Append(_acceptLoop)).ContinueWith(_ => { }, TaskScheduler.Default);
        _stop.Dispose();
    }

    private ProxyFault Add(ProxyFault fault)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fault.AfterBytes);
        lock (_gate)
        {
            _faults.Add(fault);
        }
        return fault;
    }

    /// <summary>The first fault of this kind that matches and still has a firing left, which it then uses.</summary>
    private ProxyFault? Claim(FaultKind kind, ProxyRequest request, Func<ProxyFault, bool>? applies = null)
    {
        ProxyFault[] faults;
        lock (_gate)
        {
            faults = [.. _faults];
        }
        foreach (ProxyFault fault in faults)
        {
            if (fault.Kind == kind && (applies?.Invoke(fault) ?? true) && fault.TryClaim(request))
            {
                return fault;
            }
        }
        return null;
    }

    private void Listen(int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Start();
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        _listener = listener;
        Task previous = _acceptLoop;
        _acceptLoop = Task.WhenAll(previous, AcceptAsync(listener));
    }

    private async Task AcceptAsync(TcpListener listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
            {
                return; // stopped by a cut or by disposal
            }
            if (IsCut)
            {
                Interlocked.Increment(ref _cutConnections);
                Abort(client);
                continue;
            }
            Interlocked.Increment(ref _connections);
            client.NoDelay = true;
            var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Task serving = Task.Run(async () =>
            {
                await started.Task;
                await ServeAsync(client);
            });
            _clients[client] = serving;
            started.SetResult();
        }
    }

    private static void Abort(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // already closed
        }
    }

    private async Task ServeAsync(Socket client)
    {
        try
        {
            await using var stream = new NetworkStream(client, ownsSocket: true);
            var reader = new HttpReader(stream);
            while (true)
            {
                byte[]? head = await reader.ReadHeadAsync(_stop.Token);
                if (head is null || !await ExchangeAsync(head, reader, stream, _stop.Token))
                {
                    break;
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException or DroppedException)
        {
            // the client went away, a fault dropped the connection, a cut, or disposal
        }
        finally
        {
            _clients.TryRemove(client, out _);
            client.Dispose();
        }
    }

    /// <summary>One request and its response; whether the client's connection stays open for the next.</summary>
    private async Task<bool> ExchangeAsync(byte[] head, HttpReader client, NetworkStream clientStream, CancellationToken cancel)
    {
        ProxyRequest request = ProxyRequest.Parse(head);
        lock (_gate)
        {
            _requests.Add(request);
            _byMethod.AddOrUpdate(request.Method, 1, (_, n) => n + 1);
        }
        BodyFraming requestBody = BodyFraming.OfRequest(request);
        bool expectsContinue = request.Header("Expect")?.Contains("100-continue", StringComparison.OrdinalIgnoreCase) ?? false;
        bool clientCloses = HasToken(request.Header("Connection"), "close");
        var toClient = new Sink(this, clientStream, _downPacer, isUp: false);

        if (Claim(FaultKind.Fail, request) is { } fail)
        {
            if (!expectsContinue)
            {
                await CopyBodyAsync(client, requestBody, new Sink(this, Stream.Null, null, isUp: false), cancel);
            }
            await WriteErrorAsync(toClient, fail, closing: expectsContinue || clientCloses, cancel);
            return !(expectsContinue || clientCloses);
        }
        if (Claim(FaultKind.StallRequest, request) is { } stallRequest)
        {
            await Task.Delay(stallRequest.Duration, _time, cancel);
        }
        ProxyFault? dropRequest = Claim(FaultKind.DropRequest, request, f => requestBody.IsLongerThan(f.AfterBytes));
        ProxyFault? stallResponse = Claim(FaultKind.StallResponse, request);

        using var upstreamSocket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await upstreamSocket.ConnectAsync(_upstream, cancel);
        }
        catch (SocketException)
        {
            await WriteErrorAsync(toClient, new ProxyFault(FaultKind.Fail, 1, null) { Status = HttpStatusCode.BadGateway }, closing: true, cancel);
            return false;
        }
        await using var upstreamStream = new NetworkStream(upstreamSocket, ownsSocket: false);
        var upstream = new HttpReader(upstreamStream);
        var toUpstream = new Sink(this, upstreamStream, _upPacer, isUp: true);
        using var exchange = CancellationTokenSource.CreateLinkedTokenSource(cancel);

        await toUpstream.WriteAsync(head, exchange.Token);
        Task pump = PumpRequestBodyAsync(client, requestBody, toUpstream, dropRequest, exchange);
        try
        {
            bool keepOpen = await ForwardResponseAsync(request, upstream, toClient, stallResponse, exchange.Token);
            await pump;
            return keepOpen && !clientCloses;
        }
        catch
        {
            await exchange.CancelAsync();
            await pump.ContinueWith(_ => { }, TaskScheduler.Default);
            throw;
        }
    }

    private static async Task PumpRequestBodyAsync(HttpReader client, BodyFraming body, Sink toUpstream, ProxyFault? drop, CancellationTokenSource exchange)
    {
        await Task.Yield();
        try
        {
            if (drop is not null)
            {
                toUpstream.DropAfter(drop.AfterBytes);
            }
            await CopyBodyAsync(client, body, toUpstream, exchange.Token);
        }
        catch
        {
            await exchange.CancelAsync();
            throw;
        }
    }

    private async Task<bool> ForwardResponseAsync(ProxyRequest request, HttpReader upstream, Sink toClient, ProxyFault? stall, CancellationToken cancel)
    {
        while (true)
        {
            byte[] head = await upstream.ReadHeadAsync(cancel) ?? throw new IOException("the upstream closed the connection before answering");
            if (stall is not null)
            {
                await Task.Delay(stall.Duration, _time, cancel);
                stall = null;
            }
            int status = ProxyRequest.ParseStatus(head);
            if (status is >= 100 and < 200 && status != 101)
            {
                await toClient.WriteAsync(head, cancel); // 100-continue and other interim answers
                continue;
            }
            var response = ProxyRequest.Parse(head);
            BodyFraming body = BodyFraming.OfResponse(request.Method, status, response);
            if (Claim(FaultKind.DropResponse, request, f => body.IsLongerThan(f.AfterBytes)) is { } drop)
            {
                await toClient.WriteAsync(head, cancel);
                toClient.DropAfter(drop.AfterBytes);
            }
            else
            {
                await toClient.WriteAsync(head, cancel);
            }
            await CopyBodyAsync(upstream, body, toClient, cancel);
            return body.Kind != BodyKind.UntilClose && !HasToken(response.Header("Connection"), "close");
        }
    }

    private async Task WriteErrorAsync(Sink toClient, ProxyFault fault, bool closing, CancellationToken cancel)
    {
        int status = (int)fault.Status;
        string requestId = "fault-proxy-" + Interlocked.Increment(ref _requestIds).ToString(CultureInfo.InvariantCulture);
        string code = fault.Code ?? DefaultCode(status);
        string body = _style == ErrorStyle.S3
            ? $"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>Injected by the fault proxy.</Message><RequestId>{requestId}</RequestId><HostId>fault-proxy</HostId></Error>"
            : $"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Error><Code>{code}</Code><Message>Injected by the fault proxy.\nRequestId:{requestId}\nTime:{_time.GetUtcNow():yyyy-MM-ddTHH:mm:ss.fffffffZ}</Message></Error>";
        byte[] bodyBytes = Encoding.UTF8.GetBytes(body);
        var head = new StringBuilder();
        head.Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {status} {ReasonPhrase(status)}\r\n");
        head.Append("Content-Type: application/xml\r\n");
        head.Append(CultureInfo.InvariantCulture, $"Content-Length: {bodyBytes.Length}\r\n");
        head.Append(CultureInfo.InvariantCulture, $"Date: {_time.GetUtcNow():R}\r\n");
        if (_style == ErrorStyle.S3)
        {
            head.Append(CultureInfo.InvariantCulture, $"x-amz-request-id: {requestId}\r\n");
        }
        else
        {
            head.Append(CultureInfo.InvariantCulture, $"x-ms-request-id: {requestId}\r\nx-ms-error-code: {code}\r\n");
        }
        if (fault.RetryAfter is { } retryAfter)
        {
            head.Append(CultureInfo.InvariantCulture, $"Retry-After: {(long)Math.Ceiling(retryAfter.TotalSeconds)}\r\n");
        }
        head.Append(closing ? "Connection: close\r\n" : "Connection: keep-alive\r\n");
        head.Append("\r\n");
        await toClient.WriteAsync(Encoding.Latin1.GetBytes(head.ToString()), cancel);
        await toClient.WriteAsync(bodyBytes, cancel);
    }

    private string DefaultCode(int status) => (_style, status) switch
    {
        (ErrorStyle.S3, 503) => "SlowDown",
        (ErrorStyle.S3, 500) => "InternalError",
        (ErrorStyle.S3, 429) => "TooManyRequests",
        (ErrorStyle.Azure, 503) => "ServerBusy",
        (ErrorStyle.Azure, 500) => "InternalError",
        (ErrorStyle.Azure, 429) => "TooManyRequests",
        (_, 502) => "BadGateway",
        _ => "InjectedFault",
    };

    private static string ReasonPhrase(int status) => status switch
    {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        412 => "Precondition Failed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected Fault",
    };

    private static bool HasToken(string? value, string token) =>
        value is not null && value.Split(',').Any(part => part.Trim().Equals(token, StringComparison.OrdinalIgnoreCase));

    private static async Task CopyBodyAsync(HttpReader from, BodyFraming body, Sink to, CancellationToken cancel)
    {
        switch (body.Kind)
        {
            case BodyKind.None:
                return;
            case BodyKind.Length:
                await from.CopyAsync(body.Length, to, cancel);
                return;
            case BodyKind.UntilClose:
                await from.CopyAsync(long.MaxValue, to, cancel);
                return;
            case BodyKind.Chunked:
                while (true)
                {
                    byte[] sizeLine = await from.ReadLineAsync(cancel);
                    await to.WriteAsync(sizeLine, cancel);
                    string size = Encoding.Latin1.GetString(sizeLine).Split(';')[0].Trim();
                    long length = long.Parse(size, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    if (length == 0)
                    {
                        byte[] trailer;
                        do
                        {
                            trailer = await from.ReadLineAsync(cancel);
                            await to.WriteAsync(trailer, cancel);
                        }
                        while (trailer.Length > 2);
                        return;
                    }
                    await from.CopyAsync(length + 2, to, cancel); // the chunk and its CRLF
                }
        }
    }

    /// <summary>Writes one direction of an exchange: paced to the cap, counted, and cut after a fault's byte budget.</summary>
    private sealed class Sink(FaultProxy proxy, Stream stream, Pacer? pacer, bool isUp)
    {
        private long _budget = long.MaxValue;

        public void DropAfter(long bytes) => _budget = bytes;

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancel)
        {
            bool drop = data.Length > _budget;
            if (drop)
            {
                data = data[..(int)_budget];
            }
            _budget -= data.Length;
            while (!data.IsEmpty)
            {
                long rate = proxy.BytesPerSecond;
                int piece = rate > 0 && pacer is not null ? (int)Math.Clamp(rate / 20, 1, 16384) : data.Length;
                piece = Math.Min(piece, data.Length);
                if (rate > 0 && pacer is not null)
                {
                    await pacer.WaitAsync(piece, rate, proxy._time, cancel);
                }
                await stream.WriteAsync(data[..piece], cancel);
                if (pacer is not null)
                {
                    Interlocked.Add(ref isUp ? ref proxy._bytesUp : ref proxy._bytesDown, piece);
                }
                data = data[piece..];
            }
            if (drop)
            {
                await stream.FlushAsync(cancel);
                throw new DroppedException();
            }
        }
    }

    /// <summary>Spaces writes so that one direction never runs ahead of the cap (no credit is saved while idle).</summary>
    private sealed class Pacer
    {
        private readonly Lock _gate = new();
        private long _next;

        public async ValueTask WaitAsync(int bytes, long rate, TimeProvider time, CancellationToken cancel)
        {
            long now = time.GetTimestamp();
            long cost = (long)(bytes * (double)time.TimestampFrequency / rate);
            long start;
            lock (_gate)
            {
                start = Math.Max(now, _next);
                _next = start + cost;
            }
            if (start > now)
            {
                await Task.Delay(time.GetElapsedTime(now, start), time, cancel);
            }
        }
    }

    /// <summary>Buffered reading of HTTP/1.1 framing from one connection.</summary>
    private sealed class HttpReader(Stream stream)
    {
        private const int MaxHead = 64 * 1024;
        private readonly byte[] _buffer = new byte[64 * 1024];
        private int _start;
        private int _end;

        /// <summary>The head up to and including the blank line; null when the peer closed between messages.</summary>
        public async Task<byte[]?> ReadHeadAsync(CancellationToken cancel)
        {
            int scanned = 0;
            while (true)
            {
                int at = _buffer.AsSpan(_start + scanned, _end - _start - scanned).IndexOf("\r\n\r\n"u8);
                if (at >= 0)
                {
                    int length = scanned + at + 4;
                    byte[] head = _buffer.AsSpan(_start, length).ToArray();
                    _start += length;
                    return head;
                }
                scanned = Math.Max(0, _end - _start - 3);
                if (_end - _start >= MaxHead)
                {
                    throw new IOException("an HTTP head longer than 64 KiB");
                }
                if (await FillAsync(cancel) == 0)
                {
                    return _end == _start ? null : throw new IOException("the connection closed inside an HTTP head");
                }
            }
        }

        public async Task<byte[]> ReadLineAsync(CancellationToken cancel)
        {
            int scanned = 0;
            while (true)
            {
                int at = _buffer.AsSpan(_start + scanned, _end - _start - scanned).IndexOf("\r\n"u8);
                if (at >= 0)
                {
                    int length = scanned + at + 2;
                    byte[] line = _buffer.AsSpan(_start, length).ToArray();
                    _start += length;
                    return line;
                }
                scanned = Math.Max(0, _end - _start - 1);
                if (_end - _start >= MaxHead)
                {
                    throw new IOException("an HTTP line longer than 64 KiB");
                }
                if (await FillAsync(cancel) == 0)
                {
                    throw new IOException("the connection closed inside a chunked body");
                }
            }
        }

        /// <summary>Copies <paramref name="count"/> bytes (or up to the end of the stream for long.MaxValue).</summary>
        public async Task CopyAsync(long count, Sink to, CancellationToken cancel)
        {
            while (count > 0)
            {
                if (_start == _end && await FillAsync(cancel) == 0)
                {
                    if (count == long.MaxValue)
                    {
                        return;
                    }
                    throw new IOException("the connection closed inside a body");
                }
                int piece = (int)Math.Min(count, _end - _start);
                await to.WriteAsync(_buffer.AsMemory(_start, piece), cancel);
                _start += piece;
                if (count != long.MaxValue)
                {
                    count -= piece;
                }
            }
        }

        private async Task<int> FillAsync(CancellationToken cancel)
        {
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            int read = await stream.ReadAsync(_buffer.AsMemory(_end), cancel);
            _end += read;
            return read;
        }
    }

    private sealed class DroppedException : Exception
    {
        public DroppedException()
            : base("the fault proxy dropped the connection")
        {
        }
    }
}

/// <summary>The look of the proxy's own error answers: S3's XML error body, or Azure Blob Storage's with x-ms-error-code.</summary>
internal enum ErrorStyle
{
    S3,
    Azure,
}

internal enum FaultKind
{
    Fail,
    DropRequest,
    DropResponse,
    StallRequest,
    StallResponse,
}

/// <summary>One scripted fault: fires on up to <see cref="Remaining"/> more matching requests, counting in <see cref="Fired"/>.</summary>
internal sealed class ProxyFault
{
    private readonly Func<ProxyRequest, bool>? _when;
    private int _remaining;
    private int _fired;

    internal ProxyFault(FaultKind kind, int times, Func<ProxyRequest, bool>? when)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(times);
        Kind = kind;
        _remaining = times;
        _when = when;
    }

    public FaultKind Kind { get; }

    /// <summary>How often the fault fired.</summary>
    public int Fired => Volatile.Read(ref _fired);

    /// <summary>How many more times it fires (<see cref="FaultProxy.Always"/> counts down too, but not visibly).</summary>
    public int Remaining => Volatile.Read(ref _remaining);

    internal HttpStatusCode Status { get; init; }

    internal TimeSpan? RetryAfter { get; init; }

    internal string? Code { get; init; }

    internal long AfterBytes { get; init; }

    internal TimeSpan Duration { get; init; }

    /// <summary>Stops the fault from firing again.</summary>
    public void Cancel() => Interlocked.Exchange(ref _remaining, 0);

    internal bool TryClaim(ProxyRequest request)
    {
        if (Remaining <= 0 || !(_when?.Invoke(request) ?? true))
        {
            return false;
        }
        while (true)
        {
            int remaining = Volatile.Read(ref _remaining);
            if (remaining <= 0)
            {
                return false;
            }
            if (Interlocked.CompareExchange(ref _remaining, remaining - 1, remaining) == remaining)
            {
                Interlocked.Increment(ref _fired);
                return true;
            }
        }
    }
}

/// <summary>A request (or response) head as the proxy saw it.</summary>
internal sealed class ProxyRequest
{
    private ProxyRequest(string method, string target, IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        Method = method;
        Target = target;
        Headers = headers;
    }

    /// <summary>GET, PUT, …; for a response head, the HTTP version.</summary>
    public string Method { get; }

    /// <summary>The request target as sent: path and query.</summary>
    public string Target { get; }

    /// <summary>The target's path, without the query.</summary>
    public string Path => Target.Split('?', 2)[0];

    /// <summary>The target's query, without the '?' ("" when none).</summary>
    public string Query => Target.Split('?', 2) is [_, string query] ? query : "";

    /// <summary>The headers in order, as sent.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; }

    /// <summary>The first header with this name (any case), or null.</summary>
    public string? Header(string name) =>
        Headers.FirstOrDefault(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase)) is { Key: not null } found ? found.Value : null;

    public override string ToString() => Method + " " + Target;

    internal static ProxyRequest Parse(byte[] head)
    {
        string[] lines = Encoding.Latin1.GetString(head).Split("\r\n");
        string[] first = lines[0].Split(' ', 3);
        if (first.Length < 2)
        {
            throw new IOException("not an HTTP/1.1 start line: " + lines[0]);
        }
        var headers = new List<KeyValuePair<string, string>>();
        foreach (string line in lines.Skip(1).Where(l => l.Length > 0))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0)
            {
                headers.Add(new(line[..colon].Trim(), line[(colon + 1)..].Trim()));
            }
        }
        return new ProxyRequest(first[0], first[1], headers);
    }

    internal static int ParseStatus(byte[] head)
    {
        string first = Encoding.Latin1.GetString(head, 0, Math.Min(head.Length, 64)).Split(' ', 3)[1];
        return int.Parse(first, NumberStyles.None, CultureInfo.InvariantCulture);
    }
}

internal enum BodyKind
{
    None,
    Length,
    Chunked,
    UntilClose,
}

/// <summary>How a message's body ends (RFC 9112 section 6.3).</summary>
internal readonly record struct BodyFraming(BodyKind Kind, long Length)
{
    /// <summary>Whether the body is known or may be longer than <paramref name="bytes"/> (what a drop needs).</summary>
    public bool IsLongerThan(long bytes) => Kind switch
    {
        BodyKind.Length => Length > bytes,
        BodyKind.Chunked or BodyKind.UntilClose => true,
        _ => false,
    };

    public static BodyFraming OfRequest(ProxyRequest request) => Framing(request) ?? new(BodyKind.None, 0);

    public static BodyFraming OfResponse(string requestMethod, int status, ProxyRequest response) =>
        requestMethod == "HEAD" || status is 204 or 304 || status < 200
            ? new(BodyKind.None, 0)
            : Framing(response) ?? new(BodyKind.UntilClose, 0);

    private static BodyFraming? Framing(ProxyRequest message)
    {
        if (message.Header("Transfer-Encoding")?.Contains("chunked", StringComparison.OrdinalIgnoreCase) ?? false)
        {
            return new(BodyKind.Chunked, 0);
        }
        if (message.Header("Content-Length") is { } length)
        {
            return new(BodyKind.Length, long.Parse(length, NumberStyles.None, CultureInfo.InvariantCulture));
        }
        return null;
    }
}
