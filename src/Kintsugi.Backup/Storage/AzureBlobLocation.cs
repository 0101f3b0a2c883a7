namespace Kintsugi.Backup.Storage;

/// <summary>
/// Where an Azure Blob repository lives: <c>azure:container:/prefix</c> (the prefix is optional:
/// <c>azure:container</c> or <c>azure:container:/</c> is the container's root). Object names are
/// the prefix, a slash, and the local layout's relative path (<c>config</c>, <c>keys/…</c>,
/// <c>data/ab/ab…</c>…).
/// </summary>
public sealed record AzureBlobLocation
{
    private AzureBlobLocation(string container, string prefix)
    {
        Container = container;
        Prefix = prefix;
    }

    public string Container { get; }

    /// <summary>The folder inside the container, without slashes at either end; empty for the root.</summary>
    public string Prefix { get; }

    /// <summary>The URL as a user writes it (it holds no credentials).</summary>
    public string Url => Prefix.Length == 0 ? $"azure:{Container}:/" : $"azure:{Container}:/{Prefix}";

    /// <summary>Parses <c>azure:container[:/prefix]</c>; a malformed URL is one <see cref="ErrorKind.InvalidInput"/> line naming it.</summary>
    public static AzureBlobLocation Parse(string url)
    {
        ArgumentNullException.ThrowIfNull(url);
        const string Scheme = "azure:";
        if (!url.StartsWith(Scheme, StringComparison.Ordinal))
        {
            throw Invalid(url, "it does not start with azure:");
        }
        string rest = url[Scheme.Length..];
        // '@' (user info), '?' (a SAS token), ';' (a connection string), '#' and '://' (an https URL) never belong in
        // azure:CONTAINER:/PREFIX and may carry a secret: refused, and the line names only what comes before them.
        int secret = rest.IndexOfAny(['@', '?', ';', '#']);
        int doubleSlash = rest.IndexOf("://", StringComparison.Ordinal);
        int cut = secret < 0 ? doubleSlash : doubleSlash < 0 ? secret : Math.Min(secret, doubleSlash);
        if (cut >= 0)
        {
            throw Invalid(Scheme + rest[..cut] + "…", "it holds '@', '?', ';', '#' or '://', as a URL, SAS token or connection string would; give credentials in AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN (and AZURE_STORAGE_ENDPOINT for another endpoint)");
        }
        int colon = rest.IndexOf(':', StringComparison.Ordinal);
        string container = colon < 0 ? rest : rest[..colon];
        string path = colon < 0 ? "" : rest[(colon + 1)..];
        if (!IsContainerName(container))
        {
            throw Invalid(url, $"'{container}' is not a container name (3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit)");
        }
        string prefix = path.Trim('/');
        if (prefix.Length > 0)
        {
            foreach (string segment in prefix.Split('/'))
            {
                if (segment.Length == 0 || segment is "." or ".." || segment.Contains('\\', StringComparison.Ordinal) || segment.Any(char.IsControl))
                {
                    throw Invalid(url, $"the prefix '{path}' has an empty, '.', '..' or control-character segment");
                }
            }
            if (prefix.Length > 512)
            {
                throw Invalid(url, "the prefix is longer than 512 characters");
            }
        }
        return new AzureBlobLocation(container, prefix);
    }

    /// <summary>The object name of a repository file: the local layout's relative path under the prefix.</summary>
    public string ObjectName(FileKind kind, string name)
    {
        if (name.Length < 2 || name.Contains('/', StringComparison.Ordinal) || name.Contains('.', StringComparison.Ordinal))
        {
            throw new ArgumentException($"invalid repository file name '{name}'", nameof(name));
        }
        string relative = kind switch
        {
            FileKind.Config => "config",
            FileKind.Key => "keys/" + name,
            FileKind.Pack => $"data/{name[..2]}/{name}",
            FileKind.Index => "index/" + name,
            FileKind.Snapshot => "snapshots/" + name,
            FileKind.Lock => "locks/" + name,
            FileKind.Parity => "parity/" + name,
            FileKind.ParitySettings => "parity/settings",
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        return Under(relative);
    }

    /// <summary>A relative path under the prefix.</summary>
    public string Under(string relative) => Prefix.Length == 0 ? relative : Prefix + "/" + relative;

    private static bool IsContainerName(string name) =>
        name.Length is >= 3 and <= 63
        && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-')
        && name[0] != '-' && name[^1] != '-'
        && !name.Contains("--", StringComparison.Ordinal);

    private static KintsugiException Invalid(string url, string why) =>
        new(ErrorKind.InvalidInput, $"{url}: not an Azure repository URL ({why}); write azure:CONTAINER:/PREFIX");
}
