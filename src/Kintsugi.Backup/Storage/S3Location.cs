namespace Kintsugi.Backup.Storage;

/// <summary>
/// Where an S3 repository lives, parsed from <c>s3:http(s)://host[:port]/bucket[/prefix]</c>, or
/// <c>s3:host/bucket[/prefix]</c> (https). Amazon's own endpoints (<c>*.amazonaws.com</c>) are
/// addressed by region; any other endpoint (MinIO, R2, s3rver…) by path style.
/// </summary>
public sealed record S3Location(string Url, Uri Endpoint, string Bucket, string Prefix)
{
    /// <summary>The object-name prefix, ending in '/' unless it is empty.</summary>
    public string KeyPrefix => Prefix.Length == 0 ? "" : Prefix + "/";

    /// <summary>Amazon S3 itself, rather than another service speaking its protocol.</summary>
    public bool IsAmazon => Endpoint.Host.EndsWith(".amazonaws.com", StringComparison.OrdinalIgnoreCase);

    /// <summary>The region an Amazon endpoint names (<c>s3.eu-west-1.amazonaws.com</c>), or null.</summary>
    public string? EndpointRegion
    {
        get
        {
            string[] labels = Endpoint.Host.ToLowerInvariant().Split('.');
            return IsAmazon && labels.Length == 4 && labels[0] == "s3" ? labels[1]
                : IsAmazon && labels.Length == 3 && labels[0].StartsWith("s3-", StringComparison.Ordinal) ? labels[0][3..]
                : null;
        }
    }

    public override string ToString() => Url;

    /// <summary>Parses a repository URL; a malformed one is an <see cref="ErrorKind.InvalidInput"/> error of one line.</summary>
    public static S3Location Parse(string url)
    {
        ArgumentNullException.ThrowIfNull(url);
        const string Form = "write s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX] or s3:s3.amazonaws.com/BUCKET[/PREFIX]";
        if (!url.StartsWith("s3:", StringComparison.Ordinal))
        {
            throw Bad(url, "it does not start with s3:", Form);
        }
        string rest = url["s3:".Length..];
        if (!rest.Contains("://", StringComparison.Ordinal))
        {
            rest = "https://" + rest.TrimStart('/');
        }
        if (!Uri.TryCreate(rest, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Host.Length == 0)
        {
            throw Bad(url, "it is not an http or https address", Form);
        }
        if (uri.UserInfo.Length > 0)
        {
            throw Bad(url.Replace(uri.UserInfo + "@", "", StringComparison.Ordinal), "it holds credentials", "give them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), never in the URL");
        }
        if (uri.Query.Length > 0 || uri.Fragment.Length > 0)
        {
            // A query may carry a presigned signature: the line names the URL without it.
            throw Bad(url[..url.IndexOfAny(['?', '#'])] + "?…", "it has a query or a fragment (credentials belong in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, never in the URL)", Form);
        }
        string path = Uri.UnescapeDataString(uri.AbsolutePath).Trim('/');
        int slash = path.IndexOf('/', StringComparison.Ordinal);
        string bucket = slash < 0 ? path : path[..slash];
        string prefix = slash < 0 ? "" : path[(slash + 1)..].TrimEnd('/');
        if (bucket.Length == 0)
        {
            throw Bad(url, "it names no bucket", Form);
        }
        if (!IsBucketName(bucket))
        {
            throw Bad(url, $"'{bucket}' is not a bucket name", "a bucket name is 3 to 63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit");
        }
        if (prefix.Split('/').Any(part => part.Length == 0 && prefix.Length > 0 || part is "." or ".."))
        {
            throw Bad(url, $"the prefix '{prefix}' has an empty, '.' or '..' part", Form);
        }
        var endpoint = new Uri($"{uri.Scheme}://{uri.Authority}/");
        string canonical = $"s3:{endpoint.Scheme}://{endpoint.Authority}/{bucket}" + (prefix.Length > 0 ? "/" + prefix : "");
        return new S3Location(canonical, endpoint, bucket, prefix);
    }

    private static bool IsBucketName(string name) =>
        name.Length is >= 3 and <= 63
        && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '-')
        && char.IsAsciiLetterOrDigit(name[0]) && char.IsAsciiLetterOrDigit(name[^1]);

    private static KintsugiException Bad(string url, string why, string what) =>
        new(ErrorKind.InvalidInput, $"{url}: not an S3 repository URL ({why}); {what}");
}
