namespace Kintsugi.Backup.Storage;

/// <summary>
/// Opens the store a repository URL names: <c>s3:http(s)://host[:port]/bucket[/prefix]</c>,
/// <c>azure:container:/prefix</c>, or a local folder (a path, or <c>local:PATH</c>).
/// </summary>
public static class StoreFactory
{
    /// <summary>Whether <paramref name="url"/> names a remote store (s3:, azure:).</summary>
    public static bool IsRemote(string url) =>
        url.StartsWith("s3:", StringComparison.Ordinal) || url.StartsWith("azure:", StringComparison.Ordinal);

    /// <summary>Opens the store; a malformed URL or missing credentials is an <see cref="ErrorKind.InvalidInput"/> error naming the URL.</summary>
    public static IBlobStore Open(string url, StoreOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(url);
        options ??= new StoreOptions();
        options.Validate();
        if (url.StartsWith("s3:", StringComparison.Ordinal))
        {
            return S3BlobStore.Open(url, options);
        }
        if (url.StartsWith("azure:", StringComparison.Ordinal))
        {
            return AzureBlobStore.Open(url, options);
        }
        string path = url.StartsWith("local:", StringComparison.Ordinal) ? url["local:".Length..] : url;
        return new LocalBlobStore(path);
    }
}
