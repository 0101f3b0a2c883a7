using System.Security.Cryptography;
using System.Text;

namespace Kintsugi.Backup;

/// <summary>
/// A key file: 32 random bytes that open a repository through their own key slot, with no key
/// derivation (a random 256-bit secret needs no stretching). Text, so it can be read and copied:
/// the first line that is not a comment is <c>kintsugi-key-file-v1:BASE64</c>.
/// </summary>
public static class KeyFile
{
    private const string Prefix = "kintsugi-key-file-v1:";

    public const int SecretSize = 32;

    /// <summary>Writes a new key file (mode 0600) that must not exist yet; returns its secret.</summary>
    public static byte[] Create(string path, string comment)
    {
        ArgumentNullException.ThrowIfNull(comment);
        var secret = RandomNumberGenerator.GetBytes(SecretSize);
        var text = new StringBuilder();
        foreach (var line in comment.Split('\n'))
        {
            // A control character (a CR in a repository path) must not end the comment line early.
            text.Append("# ").Append(string.Concat(line.Select(c => char.IsControl(c) ? '?' : c))).Append('\n');
        }
        text.Append(Prefix).Append(Convert.ToBase64String(secret)).Append('\n');
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        };
        try
        {
            using var stream = new FileStream(path, options);
            stream.Write(Encoding.UTF8.GetBytes(text.ToString()));
            stream.Flush(flushToDisk: true);
        }
        catch (IOException) when (File.Exists(path) || Directory.Exists(path))
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"{path} already exists; a key file is never overwritten: choose a new name");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KintsugiException(ErrorKind.NotWritable, $"cannot write key file {path}: {e.Message}");
        }
        return secret;
    }

    /// <summary>Whether <paramref name="firstLine"/>, read as a password, is the first line of a key file (its comment or its key).</summary>
    public static bool IsKeyFileLine(string firstLine) =>
        firstLine.StartsWith(Prefix, StringComparison.Ordinal) || firstLine.StartsWith("# " + CommentStart, StringComparison.Ordinal);

    /// <summary>How the comment <see cref="Repository.AddKeyFileAsync"/> writes begins.</summary>
    public const string CommentStart = "Kintsugi key file:";

    /// <summary>A key file is a few hundred bytes; more than this is not one (and /dev/zero must not fill the memory).</summary>
    private const int MaxLength = 64 * 1024;

    /// <summary>The secret of the key file at <paramref name="path"/>.</summary>
    public static byte[] Read(string path)
    {
        string[] lines;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read);
            var buffer = new byte[MaxLength + 1];
            int length = 0;
            int n;
            while (length < buffer.Length && (n = stream.Read(buffer, length, buffer.Length - length)) > 0)
            {
                length += n;
            }
            if (length > MaxLength)
            {
                throw new KintsugiException(ErrorKind.InvalidInput, $"{path} is longer than {MaxLength / 1024} KiB, so it is not a Kintsugi key file");
            }
            lines = Encoding.UTF8.GetString(buffer, 0, length).Split('\n');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"cannot read key file {path}: {e.Message}");
        }
        foreach (var raw in lines)
        {
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }
            if (line.StartsWith(Prefix, StringComparison.Ordinal))
            {
                try
                {
                    var secret = Convert.FromBase64String(line[Prefix.Length..]);
                    if (secret.Length == SecretSize)
                    {
                        return secret;
                    }
                }
                catch (FormatException)
                {
                }
            }
            break;
        }
        throw new KintsugiException(ErrorKind.InvalidInput, $"{path} is not a Kintsugi key file (one is made by `kintsugi key add --new-key-file FILE`; a password belongs in --password-file)");
    }
}
