namespace Kintsugi.Supervision.Config;

/// <summary>How a repository is named in the journal, `kintsugi status` and metrics: its URL or folder with no secret in it.</summary>
public static class RepositoryLabel
{
    /// <summary>
    /// The repository as configured, less anything that may be a credential: the user and password
    /// of an s3: URL and the query (a SAS token) of any URL.
    /// </summary>
    public static string Of(string repository)
    {
        ArgumentNullException.ThrowIfNull(repository);
        if (repository.StartsWith("s3:", StringComparison.Ordinal)
            && Uri.TryCreate(repository["s3:".Length..], UriKind.Absolute, out var uri))
        {
            return "s3:" + new UriBuilder(uri) { UserName = "", Password = "", Query = "" }.Uri.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped);
        }
        if (repository.StartsWith("azure:", StringComparison.Ordinal) && repository.IndexOf('?', StringComparison.Ordinal) is >= 0 and var q)
        {
            return repository[..q];
        }
        return repository;
    }
}
