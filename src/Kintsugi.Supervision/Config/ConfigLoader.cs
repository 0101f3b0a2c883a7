using System.Globalization;
using System.Text.RegularExpressions;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Storage;
using Kintsugi.Supervision.Policies;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Kintsugi.Supervision.Config;

/// <summary>
/// Loads kintsugi.yaml into a validated <see cref="SupervisorConfig"/>. Every problem is reported
/// as "file:line:column: field.path: what is wrong", and an unknown field is an error, so a typo
/// never silently changes behaviour. The syntax is documented field by field in docs/CONFIG.md.
/// </summary>
public static class ConfigLoader
{
    private static readonly Dictionary<string, int> SignalNumbers = new(StringComparer.Ordinal)
    {
        ["SIGHUP"] = 1, ["SIGINT"] = 2, ["SIGQUIT"] = 3, ["SIGKILL"] = 9, ["SIGUSR1"] = 10, ["SIGUSR2"] = 12, ["SIGTERM"] = 15,
    };

    public static SupervisorConfig Load(string path)
    {
        string full = Path.GetFullPath(path);
        string text;
        try
        {
            text = File.ReadAllText(full);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ConfigException($"{path}: no such file; write a kintsugi.yaml (docs/CONFIG.md) or pass --config PATH");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{path}: cannot read: {e.Message}");
        }
        return Parse(text, full);
    }

    public static SupervisorConfig Parse(string text, string sourcePath)
    {
        string file = Path.GetFileName(sourcePath);
        string baseDir = Path.GetDirectoryName(Path.GetFullPath(sourcePath))!;
        var stream = new YamlStream();
        var parser = new TrackingParser(new Parser(new StringReader(text)));
        try
        {
            stream.Load(parser);
        }
        catch (AnchorNotFoundException) when (parser.UnknownAlias is var (name, at))
        {
            throw new ConfigException($"{file}:{at.Line}:{at.Column}: not valid YAML: *{name} refers to no anchor; define '&{name}' on the value it stands for");
        }
        catch (YamlException e)
        {
            throw NotYaml(file, text, parser, e.Start, e.Message);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet's scanner and loader throw these, without a position, on some broken input
            // (an unclosed '[' with more lines after it).
            throw NotYaml(file, text, parser, null, "cannot be read from here on");
        }
        if (stream.Documents.Count == 0)
        {
            throw new ConfigException($"{file}: the file is empty; it needs at least a 'workloads' section");
        }
        if (stream.Documents.Count > 1)
        {
            var second = parser.Documents[1];
            throw new ConfigException($"{file}:{second.Line}:{second.Column}: a second YAML document starts here, and kintsugi.yaml is read as one: remove this '---' and move what follows into the first");
        }
        var root = new YamlNode(file, "", stream.Documents[0].RootNode);
        string repository = Path.Combine(baseDir, ".kintsugi", "repository");
        string? passwordFile = null;
        string? keyFile = null;
        YamlNode? keyFileNode = null;
        string journal = Path.Combine(baseDir, ".kintsugi", "journal.db");
        var strategy = Strategy.OneForOne;
        var workloads = new List<WorkloadSpec>();
        var copies = new List<(CopySpec Spec, YamlNode Node)>();
        bool sawWorkloads = false;
        var priority = ProtectionPriority.Low;
        long limitUpload = 0;
        foreach (var (key, value) in root.MappingWithExtensions("repository", "password-file", "key-file", "journal", "strategy", "copies", "protection", "workloads"))
        {
            switch (key)
            {
                case "repository":
                    repository = RepositoryLocation(value, baseDir);
                    break;
                case "copies":
                    copies.AddRange(value.Sequence().Select(item => (ParseCopy(item, baseDir), item)));
                    break;
                case "protection":
                    foreach (var (field, setting) in value.Mapping("priority", "limit-upload"))
                    {
                        if (field == "priority")
                        {
                            priority = setting.Scalar switch
                            {
                                "low" => ProtectionPriority.Low,
                                "idle" => ProtectionPriority.Idle,
                                "normal" => ProtectionPriority.Normal,
                                var p => throw setting.Error($"expected low, idle or normal, got '{p}'"),
                            };
                        }
                        else
                        {
                            limitUpload = ByteRate(setting);
                        }
                    }
                    break;
                case "password-file":
                    passwordFile = Path.GetFullPath(value.NonEmpty(), baseDir);
                    break;
                case "key-file":
                    keyFile = Path.GetFullPath(value.NonEmpty(), baseDir);
                    keyFileNode = value;
                    break;
                case "journal":
                    journal = Path.GetFullPath(value.NonEmpty(), baseDir);
                    break;
                case "strategy":
                    strategy = value.Scalar switch
                    {
                        "one-for-one" => Strategy.OneForOne,
                        "one-for-all" => Strategy.OneForAll,
                        var s => throw value.Error($"expected one-for-one or one-for-all, got '{s}'"),
                    };
                    break;
                case "workloads":
                    sawWorkloads = true;
                    foreach (var (name, spec) in value.Mapping())
                    {
                        if (!Regex.IsMatch(name, "^[A-Za-z0-9][A-Za-z0-9_.-]*$"))
                        {
                            throw spec.Error($"workload name '{name}' must start with a letter or digit and hold only letters, digits, '.', '_' and '-'");
                        }
                        workloads.Add(ParseWorkload(name, spec, baseDir));
                    }
                    break;
            }
        }
        if (keyFileNode is not null && passwordFile is not null)
        {
            throw keyFileNode.Value.Error("this and 'password-file' each open the repository; keep one");
        }
        CheckCopies(repository, copies);
        if (!sawWorkloads || workloads.Count == 0)
        {
            throw root.Error("no workloads: add a 'workloads' section with at least one workload");
        }
        var ports = workloads.Where(w => w.Port is not null).SelectMany(w => Enumerable.Range(w.Port!.Value, w.Replicas).Select(p => (p, w.Name))).GroupBy(x => x.p).FirstOrDefault(g => g.Count() > 1);
        if (ports is not null)
        {
            throw new ConfigException($"{file}: port {ports.Key} is given to more than one replica ({string.Join(", ", ports.Select(x => x.Name))}); space the workloads' ports apart by their replica counts");
        }
        return new SupervisorConfig
        {
            SourcePath = Path.GetFullPath(sourcePath),
            Repository = repository,
            PasswordFile = passwordFile,
            KeyFile = keyFile,
            Journal = journal,
            Copies = [.. copies.Select(c => c.Spec)],
            ProtectionPriority = priority,
            LimitUpload = limitUpload,
            Strategy = strategy,
            Workloads = workloads,
        };
    }

    /// <summary>
    /// A repository as written in the config: a remote URL (s3:…, azure:…) is kept as it is (it is no
    /// path, so it is not made relative to the config's folder); a folder, or local:FOLDER, is made absolute.
    /// </summary>
    private static string RepositoryLocation(YamlNode node, string baseDir)
    {
        string value = node.NonEmpty().Trim();
        if (value.StartsWith("s3:", StringComparison.Ordinal))
        {
            // s3:http(s)://host[:port]/bucket[/prefix]
            return Uri.TryCreate(value["s3:".Length..], UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.AbsolutePath.Trim('/').Length > 0
                ? value
                : throw node.Error($"'{value}' is not an S3 repository URL; write s3:https://HOST/BUCKET[/PREFIX] (e.g. s3:https://s3.amazonaws.com/bucket/checkpoints)");
        }
        if (value.StartsWith("azure:", StringComparison.Ordinal))
        {
            // azure:container:/prefix
            string rest = value["azure:".Length..];
            int colon = rest.IndexOf(':', StringComparison.Ordinal);
            string container = colon < 0 ? rest : rest[..colon];
            return container.Length > 0 && (colon < 0 || rest[(colon + 1)..].StartsWith('/'))
                ? value
                : throw node.Error($"'{value}' is not an Azure repository URL; write azure:CONTAINER:/PREFIX (e.g. azure:checkpoints:/job1)");
        }
        string path = value.StartsWith("local:", StringComparison.Ordinal) ? value["local:".Length..] : value;
        return path.Length > 0 ? Path.GetFullPath(path, baseDir) : throw node.Error("local: needs a folder after it");
    }

    /// <summary>One item of 'copies': a repository URL or folder, or a mapping with 'repository' and its own credentials and upload limit.</summary>
    private static CopySpec ParseCopy(YamlNode item, string baseDir)
    {
        if (item.IsEmpty)
        {
            throw item.Error("an empty copy; give a repository URL or folder (e.g. s3:https://HOST/BUCKET/PREFIX), or remove the item");
        }
        if (item.IsScalar)
        {
            return new CopySpec { Repository = RepositoryLocation(item, baseDir), At = item.Position };
        }
        if (!item.IsMapping)
        {
            throw item.Error("expected a repository URL or folder, or a mapping with 'repository'");
        }
        string? repository = null;
        string? passwordFile = null;
        string? keyFile = null;
        YamlNode? keyFileNode = null;
        long limit = 0;
        foreach (var (key, value) in item.Mapping("repository", "password-file", "key-file", "limit-upload"))
        {
            switch (key)
            {
                case "repository":
                    repository = RepositoryLocation(value, baseDir);
                    break;
                case "password-file":
                    passwordFile = Path.GetFullPath(value.NonEmpty(), baseDir);
                    break;
                case "key-file":
                    keyFile = Path.GetFullPath(value.NonEmpty(), baseDir);
                    keyFileNode = value;
                    break;
                case "limit-upload":
                    limit = ByteRate(value);
                    break;
            }
        }
        if (keyFileNode is not null && passwordFile is not null)
        {
            throw keyFileNode.Value.Error("this and 'password-file' each open the copy's repository; keep one");
        }
        return new CopySpec
        {
            Repository = repository ?? throw item.Error("a copy needs 'repository' (a URL such as s3:https://HOST/BUCKET/PREFIX, or a folder)"),
            PasswordFile = passwordFile,
            KeyFile = keyFile,
            LimitUpload = limit,
            At = item.Position,
        };
    }

    /// <summary>Bytes per second: a whole number, optionally with K, M or G (powers of 1024), e.g. 50M.</summary>
    private static long ByteRate(YamlNode node)
    {
        string s = node.Scalar.Trim();
        long unit = s.Length > 0 ? char.ToUpperInvariant(s[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, _ => 1 } : 1;
        string digits = unit == 1 ? s : s[..^1];
        return long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long n) && n > 0 && n <= long.MaxValue / unit
            ? n * unit
            : throw node.Error($"expected bytes per second, a positive whole number optionally with K, M or G (e.g. 50M), got '{s}'");
    }

    /// <summary>A copy must name a repository other than the main one and the other copies (a copy onto itself protects nothing).</summary>
    private static void CheckCopies(string repository, List<(CopySpec Spec, YamlNode Node)> copies)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal) { SameRepositoryKey(repository) };
        foreach (var (spec, node) in copies)
        {
            if (!seen.Add(SameRepositoryKey(spec.Repository)))
            {
                throw node.Error(SameRepositoryKey(spec.Repository) == SameRepositoryKey(repository)
                    ? $"{spec.Repository} is the main 'repository' itself; a copy must go to another repository"
                    : $"{spec.Repository} is listed twice in 'copies'; remove one");
            }
        }
    }

    private static string SameRepositoryKey(string repository) => StoreFactory.IsRemote(repository) ? repository.TrimEnd('/') : Path.TrimEndingDirectorySeparator(repository);

    /// <summary>A syntax error, at the best position known: YamlDotNet's own, else the open bracket, the indenting tab or the last event read.</summary>
    private static ConfigException NotYaml(string file, string text, TrackingParser parser, Mark? at, string message)
    {
        message = message.TrimEnd('.');
        long line;
        long column;
        var open = parser.Open;
        if (at is { } m && (m.Line > 1 || m.Column > 1))
        {
            (line, column) = (m.Line, m.Column);
            if (open is { } o && message.Contains("did not find expected ','", StringComparison.Ordinal))
            {
                message += $" (the '{o.Bracket}' at line {o.Start.Line}, column {o.Start.Column} is not closed)";
            }
        }
        else if (message.Contains("tab", StringComparison.Ordinal) && IndentingTab(text) is { } tab)
        {
            (line, column) = tab;
            message = "a tab in the indentation; YAML indents with spaces only";
        }
        else if (at is null && open is { } o)
        {
            (line, column) = (o.Start.Line, o.Start.Column);
            message = $"this '{o.Bracket}' is not closed (a '{(o.Bracket == '[' ? ']' : '}')}' or a ',' is missing)";
        }
        else
        {
            (line, column) = (parser.Last.Line, parser.Last.Column);
        }
        return new ConfigException($"{file}:{line}:{column}: not valid YAML: {message}");
    }

    private static (long Line, long Column)? IndentingTab(string text)
    {
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string indent = lines[i][..(lines[i].Length - lines[i].TrimStart(' ', '\t').Length)];
            if (indent.Contains('\t', StringComparison.Ordinal) && indent.Length < lines[i].TrimEnd('\r').Length)
            {
                return (i + 1, indent.IndexOf('\t', StringComparison.Ordinal) + 1);
            }
        }
        return null;
    }

    private static WorkloadSpec ParseWorkload(string name, YamlNode node, string baseDir)
    {
        IReadOnlyList<string>? command = null;
        string cwd = baseDir;
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        int replicas = 1;
        int? port = null;
        CheckpointSpec? checkpoints = null;
        var restart = new RestartSpec();
        var stop = new StopSpec();
        var probes = new List<ProbeSpec>();
        var monitors = new List<MonitorSpec>();
        var healthy = HealthyWhen.Progress;
        var fields = node.Mapping("command", "cwd", "env", "replicas", "port", "checkpoints", "restart", "stop", "probes", "monitors", "healthy");
        // cwd first: other relative paths of the workload resolve against it.
        string? commandAt = null;
        string? cwdAt = null;
        foreach (var (key, value) in fields.Where(f => f.Key == "cwd"))
        {
            cwd = Path.GetFullPath(value.NonEmpty(), baseDir);
            cwdAt = value.Position;
        }
        foreach (var (key, value) in fields)
        {
            switch (key)
            {
                case "command":
                    if (value.IsScalar)
                    {
                        // One string would be run as a program of that whole name: there is no shell to split it.
                        string[] words = value.Scalar.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                        throw value.Error($"command must be a list of the program and its arguments, e.g. [{(words.Length > 0 ? string.Join(", ", words) : "python, train.py")}] (no shell)");
                    }
                    var items = value.Sequence();
                    command = items.Select(n => n.Scalar).ToList();
                    if (command.Count == 0 || command[0].Length == 0)
                    {
                        throw value.Error("the command is empty; give the program and its arguments as a list");
                    }
                    commandAt = items[0].Position;
                    break;
                case "env":
                    foreach (var (k, v) in value.Mapping())
                    {
                        env[k] = v.Scalar;
                    }
                    break;
                case "replicas":
                    replicas = value.Int(1, 64);
                    break;
                case "port":
                    port = value.Int(1, 65535);
                    break;
                case "healthy":
                    healthy = value.Scalar switch
                    {
                        "progress" => HealthyWhen.Progress,
                        "started" => HealthyWhen.Started,
                        var h => throw value.Error($"expected progress (a metric line or a checkpoint) or started, got '{h}'"),
                    };
                    break;
                case "checkpoints":
                    checkpoints = ParseCheckpoints(value, cwd);
                    break;
                case "restart":
                    restart = ParseRestart(value);
                    break;
                case "stop":
                    stop = ParseStop(value);
                    break;
                case "probes":
                    probes.AddRange(value.Sequence().Select(p => ParseProbe(p, cwd)));
                    break;
                case "monitors":
                    monitors.AddRange(value.Sequence().Select(m => ParseMonitor(m, cwd)));
                    break;
            }
        }
        if (command is null)
        {
            throw node.Error("missing field 'command' (the program and its arguments, as a list)");
        }
        if (port is int p && p + replicas - 1 > 65535)
        {
            throw node.Error($"port {p} plus {replicas} replicas runs past 65535");
        }
        if (probes.OfType<HttpProbeSpec>().Any(h => h.Url.Contains("{port}", StringComparison.Ordinal)) && port is null)
        {
            throw node.Error("a probe URL uses {port} but the workload has no 'port'");
        }
        if (probes.OfType<TcpProbeSpec>().Any(t => t.Port == 0) && port is null)
        {
            throw node.Error("a tcp probe without 'port' checks the replica's port, but the workload has no 'port'");
        }
        if (monitors.Any(m => m.Then is RollbackActionSpec) || probes.Any(pr => pr.Then is RollbackActionSpec))
        {
            if (checkpoints is null)
            {
                throw node.Error("a rollback needs checkpoints: add 'checkpoints: { dir: … }'");
            }
        }
        var spec = new WorkloadSpec
        {
            Name = name,
            Command = command,
            WorkingDirectory = cwd,
            Environment = env,
            Replicas = replicas,
            Port = port,
            Checkpoints = checkpoints,
            Restart = restart,
            Stop = stop,
            Probes = probes,
            Monitors = monitors,
            Healthy = healthy,
            CommandAt = commandAt,
            WorkingDirectoryAt = cwdAt,
        };
        CheckAdjustments(spec);
        return spec;
    }

    private static CheckpointSpec ParseCheckpoints(YamlNode node, string cwd)
    {
        string? dir = null;
        string? dirAt = null;
        bool backup = true;
        int keep = 5;
        var settle = TimeSpan.FromSeconds(1);
        var exclude = new List<PathPattern>();
        foreach (var (key, value) in node.Mapping("dir", "backup", "keep-last", "settle", "exclude"))
        {
            switch (key)
            {
                case "dir":
                    dir = Path.GetFullPath(value.NonEmpty(), cwd);
                    dirAt = value.Position;
                    break;
                case "backup":
                    backup = value.Scalar switch
                    {
                        "on-change" => true,
                        "off" => false,
                        var s => throw value.Error($"expected on-change or off, got '{s}'"),
                    };
                    break;
                case "keep-last":
                    keep = value.Int(1, 100_000);
                    break;
                case "settle":
                    settle = value.Duration();
                    break;
                case "exclude":
                    foreach (var item in value.IsScalar ? [value] : value.Sequence())
                    {
                        try
                        {
                            exclude.Add(PathPattern.Parse(item.Scalar));
                        }
                        catch (KintsugiException e)
                        {
                            throw item.Error(e.Message);
                        }
                    }
                    break;
            }
        }
        return new CheckpointSpec
        {
            Exclude = exclude,
            Directory = dir ?? throw node.Error("missing field 'dir' (the folder the workload writes checkpoints to)"),
            BackupOnChange = backup,
            KeepLast = keep,
            SettleTime = settle,
            DirectoryAt = dirAt,
        };
    }

    private static RestartSpec ParseRestart(YamlNode node)
    {
        var spec = new RestartSpec();
        foreach (var (key, value) in node.Mapping("when", "backoff", "budget"))
        {
            switch (key)
            {
                case "when":
                    spec = spec with
                    {
                        When = value.Scalar switch
                        {
                            "on-failure" => RestartWhen.OnFailure,
                            "always" => RestartWhen.Always,
                            "never" => RestartWhen.Never,
                            var s => throw value.Error($"expected on-failure, always or never, got '{s}'"),
                        },
                    };
                    break;
                case "backoff":
                    var b = new BackoffSpec();
                    foreach (var (k, v) in value.Mapping("initial", "max", "factor", "jitter", "reset-after"))
                    {
                        b = k switch
                        {
                            "initial" => b with { Initial = v.Duration() },
                            "max" => b with { Max = v.Duration() },
                            "factor" => b with { Factor = v.Double(1, 100) },
                            "jitter" => b with { Jitter = v.Double(0, 1) },
                            _ => b with { ResetAfter = v.Duration() },
                        };
                    }
                    if (b.Max < b.Initial)
                    {
                        throw value.Error($"max ({DurationSyntax.Format(b.Max)}) is smaller than initial ({DurationSyntax.Format(b.Initial)}); raise max or lower initial");
                    }
                    spec = spec with { Backoff = b };
                    break;
                case "budget":
                    var g = new BudgetSpec();
                    foreach (var (k, v) in value.Mapping("restarts", "within"))
                    {
                        g = k == "restarts" ? g with { Restarts = v.Int(0, 1_000_000) } : g with { Within = v.Duration() };
                    }
                    spec = spec with { Budget = g };
                    break;
            }
        }
        return spec;
    }

    private static StopSpec ParseStop(YamlNode node)
    {
        var spec = new StopSpec();
        foreach (var (key, value) in node.Mapping("signal", "grace"))
        {
            spec = key == "signal" ? spec with { Signal = ParseSignal(value) } : spec with { Grace = value.Duration() };
        }
        return spec;
    }

    private static int ParseSignal(YamlNode node)
    {
        string s = node.Scalar;
        if (SignalNumbers.TryGetValue(s, out int n) || SignalNumbers.TryGetValue("SIG" + s, out n))
        {
            return n;
        }
        if (int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out n) && n is >= 1 and <= 64)
        {
            return n;
        }
        throw node.Error($"expected a signal name ({string.Join(", ", SignalNumbers.Keys)}) or number, got '{s}'");
    }

    private static readonly string[] ProbeTimingFields = ["every", "timeout", "initial-delay", "startup", "failures", "successes", "then"];

    private static ProbeSpec ParseProbe(YamlNode node, string cwd)
    {
        string[] kinds = ["http", "tcp", "exec", "heartbeat", "progress"];
        var fields = node.Mapping([.. kinds, .. ProbeTimingFields]);
        var kindFields = fields.Where(f => kinds.Contains(f.Key, StringComparer.Ordinal)).ToList();
        if (kindFields.Count != 1)
        {
            throw node.Error($"a probe names exactly one kind: {string.Join(", ", kinds)}");
        }
        var (kind, body) = kindFields[0];
        ProbeSpec probe = kind switch
        {
            "http" => ParseHttp(body),
            "tcp" => ParseTcp(body),
            "exec" => new ExecProbeSpec(body.IsMapping ? Field(body, "command", "exec probe").Strings() : body.Strings()),
            "heartbeat" => ParseHeartbeat(body, cwd),
            _ => ParseProgress(body),
        };
        foreach (var (key, value) in fields.Where(f => !kinds.Contains(f.Key, StringComparer.Ordinal)))
        {
            probe = key switch
            {
                "every" => probe with { Every = Positive(value) },
                "timeout" => probe with { Timeout = Positive(value) },
                "initial-delay" => probe with { InitialDelay = value.Duration() },
                "startup" => probe with { StartupBudget = value.Duration() },
                "failures" => probe with { FailureThreshold = value.Int(1, 1000) },
                "successes" => probe with { SuccessThreshold = value.Int(1, 1000) },
                _ => probe with { Then = ParseAction(value) },
            };
        }
        if (probe.Timeout > probe.Every)
        {
            throw node.Error($"timeout ({DurationSyntax.Format(probe.Timeout)}) is longer than the period 'every' ({DurationSyntax.Format(probe.Every)}); shorten 'timeout' or lengthen 'every'");
        }
        return probe;
    }

    private static TimeSpan Positive(YamlNode node)
    {
        var d = node.Duration();
        return d > TimeSpan.Zero ? d : throw node.Error("must be longer than 0");
    }

    private static YamlNode Field(YamlNode mapping, string name, string what, params string[] others)
    {
        foreach (var (key, value) in mapping.Mapping([name, .. others]))
        {
            if (key == name)
            {
                return value;
            }
        }
        throw mapping.Error($"{what} needs '{name}'");
    }

    private static HttpProbeSpec ParseHttp(YamlNode body)
    {
        var urlNode = body.IsScalar ? body : Field(body, "url", "an http probe");
        string url = urlNode.NonEmpty();
        string check = url.Replace("{port}", "1", StringComparison.Ordinal);
        if (!Uri.TryCreate(check, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
        {
            throw urlNode.Error($"'{url}' is not an http:// or https:// URL");
        }
        return new HttpProbeSpec(url);
    }

    private static TcpProbeSpec ParseTcp(YamlNode body)
    {
        string host = "127.0.0.1";
        int port = 0;
        foreach (var (key, value) in body.Mapping("host", "port"))
        {
            if (key == "host")
            {
                host = value.NonEmpty();
            }
            else
            {
                port = value.Int(0, 65535);
            }
        }
        return new TcpProbeSpec(host, port);
    }

    private static HeartbeatProbeSpec ParseHeartbeat(YamlNode body, string cwd)
    {
        string? file = null;
        TimeSpan? stale = null;
        foreach (var (key, value) in body.Mapping("file", "stale-after"))
        {
            if (key == "file")
            {
                file = Path.GetFullPath(value.NonEmpty(), cwd);
            }
            else
            {
                stale = Positive(value);
            }
        }
        return new HeartbeatProbeSpec(file ?? throw body.Error("a heartbeat probe needs 'file'"), stale ?? throw body.Error("a heartbeat probe needs 'stale-after'"))
        {
            Every = TimeSpan.FromSeconds(Math.Clamp(stale.Value.TotalSeconds / 4, 0.1, 10)),
            Timeout = TimeSpan.FromSeconds(Math.Clamp(stale.Value.TotalSeconds / 4, 0.1, 10)),
            FailureThreshold = 1,
        };
    }

    private static ProgressProbeSpec ParseProgress(YamlNode body)
    {
        string metric = "step";
        TimeSpan? stalls = null;
        foreach (var (key, value) in body.Mapping("metric", "stalls-after"))
        {
            if (key == "metric")
            {
                metric = value.NonEmpty();
            }
            else
            {
                stalls = Positive(value);
            }
        }
        var after = stalls ?? throw body.Error("a progress probe needs 'stalls-after'");
        return new ProgressProbeSpec(metric, after)
        {
            Every = TimeSpan.FromSeconds(Math.Clamp(after.TotalSeconds / 4, 0.1, 10)),
            Timeout = TimeSpan.FromSeconds(Math.Clamp(after.TotalSeconds / 4, 0.1, 10)),
            FailureThreshold = 1,
        };
    }

    private static MonitorSpec ParseMonitor(YamlNode node, string cwd)
    {
        string[] kinds = ["exit", "log", "metric", "checkpoint"];
        var fields = node.Mapping([.. kinds, "then"]);
        var kindFields = fields.Where(f => f.Key != "then").ToList();
        if (kindFields.Count != 1)
        {
            throw node.Error($"a monitor names exactly one kind: {string.Join(", ", kinds)}");
        }
        var thenNode = fields.Where(f => f.Key == "then").Select(f => (YamlNode?)f.Value).FirstOrDefault();
        var then = thenNode is { } t ? ParseAction(t) : null;
        var (kind, body) = kindFields[0];
        MonitorSpec monitor = kind switch
        {
            "exit" => ParseExit(body, then),
            "log" => ParseLog(body, cwd, then),
            "metric" => ParseMetric(body, then),
            _ => new CheckpointMonitorSpec { Then = then ?? new RecordActionSpec() },
        };
        return monitor;
    }

    private static ExitMonitorSpec ParseExit(YamlNode body, ActionSpec? then)
    {
        var codes = new List<int>();
        var signals = new List<int>();
        foreach (var (key, value) in body.Mapping("codes", "signals"))
        {
            foreach (var item in value.IsScalar ? [value] : value.Sequence())
            {
                if (key == "codes")
                {
                    codes.Add(item.Int(0, 255));
                }
                else
                {
                    signals.Add(ParseSignal(item));
                }
            }
        }
        if (codes.Count + signals.Count == 0)
        {
            throw body.Error("an exit monitor needs 'codes' or 'signals'");
        }
        return new ExitMonitorSpec(codes, signals) { Then = then ?? throw body.Error("an exit monitor needs 'then'") };
    }

    private static LogMonitorSpec ParseLog(YamlNode body, string cwd, ActionSpec? then)
    {
        string? pattern = null;
        var source = LogSource.Output;
        string? file = null;
        YamlNode patternNode = body;
        if (body.IsScalar)
        {
            pattern = body.NonEmpty();
        }
        else
        {
            foreach (var (key, value) in body.Mapping("pattern", "source", "file"))
            {
                switch (key)
                {
                    case "pattern":
                        pattern = value.NonEmpty();
                        patternNode = value;
                        break;
                    case "source":
                        source = value.Scalar switch
                        {
                            "output" => LogSource.Output,
                            "stdout" => LogSource.StdOut,
                            "stderr" => LogSource.StdErr,
                            var s => throw value.Error($"expected output, stdout or stderr (or give 'file'), got '{s}'"),
                        };
                        break;
                    case "file":
                        file = Path.GetFullPath(value.NonEmpty(), cwd);
                        source = LogSource.File;
                        break;
                }
            }
        }
        if (pattern is null)
        {
            throw body.Error("a log monitor needs a 'pattern'");
        }
        try
        {
            _ = new Regex(pattern, RegexOptions.None, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException e)
        {
            throw patternNode.Error($"'{pattern}' is not a valid regular expression: {e.Message}");
        }
        return new LogMonitorSpec(pattern, source, file) { Then = then ?? throw body.Error("a log monitor needs 'then'") };
    }

    private static MetricMonitorSpec ParseMetric(YamlNode body, ActionSpec? then)
    {
        string? name = null;
        (MetricRuleKind Kind, double Value)? rule = null;
        foreach (var (key, value) in body.Mapping("name", "is", "above", "below"))
        {
            switch (key)
            {
                case "name":
                    name = value.NonEmpty();
                    break;
                case "is":
                    rule = value.Scalar == "nan-or-inf" ? (MetricRuleKind.NanOrInf, 0) : throw value.Error($"expected nan-or-inf, got '{value.Scalar}'");
                    break;
                case "above":
                    var m = Regex.Match(value.Scalar, @"^(.*)x-running-max$");
                    if (m.Success)
                    {
                        // Below 1 the rule would fire on values under the running max, on a metric that improves.
                        rule = double.TryParse(m.Groups[1].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double k) && double.IsFinite(k) && k >= 1
                            ? (MetricRuleKind.AboveRunningMax, k)
                            : throw value.Error($"expected a factor of at least 1 before x-running-max (e.g. 10x-running-max), got '{value.Scalar}'");
                    }
                    else
                    {
                        rule = (MetricRuleKind.Above, value.Double(double.MinValue, double.MaxValue));
                    }
                    break;
                case "below":
                    rule = (MetricRuleKind.Below, value.Double(double.MinValue, double.MaxValue));
                    break;
            }
        }
        if (name is null || rule is null)
        {
            throw body.Error("a metric monitor needs 'name' and one rule: 'is: nan-or-inf', 'above: 10', 'above: 10x-running-max' or 'below: 0'");
        }
        return new MetricMonitorSpec(name, rule.Value.Kind, rule.Value.Value) { Then = then ?? throw body.Error("a metric monitor needs 'then'") };
    }

    /// <summary>restart | rollback | failover | give-up | record, or a mapping with one of them and its options.</summary>
    private static ActionSpec ParseAction(YamlNode node)
    {
        if (node.IsScalar)
        {
            return node.Scalar switch
            {
                "restart" => new RestartActionSpec(),
                "rollback" => new RollbackActionSpec(),
                "failover" => new FailoverActionSpec(),
                "give-up" => new GiveUpActionSpec(),
                "record" => new RecordActionSpec(),
                var s => throw node.Error($"expected an action: restart, rollback, failover, give-up or record, got '{s}'"),
            };
        }
        var fields = node.Mapping("restart", "rollback", "failover", "give-up", "record");
        if (fields.Count != 1)
        {
            throw node.Error("an action names exactly one of restart, rollback, failover, give-up, record");
        }
        var (kind, body) = fields[0];
        switch (kind)
        {
            case "restart":
                var adjustments = new List<Adjustment>();
                if (!body.IsEmpty)
                {
                    foreach (var (key, value) in body.Mapping("adjust"))
                    {
                        foreach (var (target, changes) in value.Mapping("env", "args"))
                        {
                            foreach (var (name, change) in changes.Mapping())
                            {
                                adjustments.Add(ParseAdjustment(target == "env" ? AdjustTarget.Env : AdjustTarget.Arg, name, change));
                            }
                        }
                    }
                }
                return new RestartActionSpec { Adjustments = adjustments };
            case "rollback":
                int skip = 0;
                if (!body.IsEmpty)
                {
                    foreach (var (_, value) in body.Mapping("skip-steps"))
                    {
                        skip = value.Int(0, int.MaxValue);
                    }
                }
                return new RollbackActionSpec { SkipSteps = skip };
            case "failover":
                return new FailoverActionSpec();
            case "give-up":
                return new GiveUpActionSpec();
            default:
                return new RecordActionSpec();
        }
    }

    /// <summary>
    /// halve | double | x0.5 (multiply) | any other value (set). An x followed by a number that is not
    /// a usable factor (x0, x-1, x1e40, xInfinity) is refused rather than taken as a value to set.
    /// </summary>
    private static Adjustment ParseAdjustment(AdjustTarget target, string name, YamlNode change)
    {
        string s = change.Scalar;
        var (op, value) = s switch
        {
            "halve" => (AdjustOp.Halve, (string?)null),
            "double" => (AdjustOp.Double, null),
            _ when s.StartsWith('x') && double.TryParse(s[1..], NumberStyles.Float, CultureInfo.InvariantCulture, out _)
                => Adjuster.TryFactor(s[1..], out _)
                    ? (AdjustOp.Multiply, s[1..])
                    : throw change.Error($"'{s}': a factor must be a positive number (e.g. x0.5)"),
            _ => (AdjustOp.Set, s),
        };
        return new Adjustment(target, name, op, value) { At = change.Position, Field = change.Path };
    }

    /// <summary>
    /// Adjustments that can never be applied, as far as the file tells: a numeric operation on an
    /// option whose value in 'command' is not a number (or that is not in it), or on a variable the
    /// workload's own 'env' sets to something that is not a number. A variable the file does not set
    /// may come from the environment kintsugi runs in: that is checked at start.
    /// </summary>
    private static void CheckAdjustments(WorkloadSpec workload)
    {
        foreach (var failure in Adjuster.Check(workload, inherited: null))
        {
            if (failure.Adjustment.Target == AdjustTarget.Env && failure.Problem == AdjustmentProblem.Missing)
            {
                continue;
            }
            string hint = failure.Adjustment.Target == AdjustTarget.Env ? " (as the workload's 'env' sets it)" : " (in 'command')";
            throw new ConfigException($"{failure.Adjustment.Where(workload.Name)}: {failure.Reason}{hint}");
        }
    }
}
