using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Tests;

/// <summary>kintsugi.yaml's 'repository' as a remote URL, and the 'copies' list: what parses into what, and each mistake in one line.</summary>
public sealed class RepositoryConfigTests
{
    private const string Source = "/etc/app/kintsugi.yaml";

    private const string Workloads = "workloads:\n  t:\n    command: [a]\n";

    private static SupervisorConfig Parse(string yaml) => ConfigLoader.Parse(yaml, Source);

    private static string Refused(string yaml) => Assert.Throws<ConfigException>(() => Parse(yaml)).Message;

    [Theory]
    [InlineData("s3:http://127.0.0.1:9000/bucket/prefix")]
    [InlineData("s3:https://s3.amazonaws.com/bucket")]
    [InlineData("azure:checkpoints:/job1")]
    [InlineData("azure:checkpoints")]
    public void A_remote_repository_is_kept_as_written_not_made_a_path_beside_the_config(string url)
    {
        Assert.Equal(url, Parse($"repository: {url}\n" + Workloads).Repository);
    }

    [Theory]
    [InlineData("repo", "/etc/app/repo")]
    [InlineData("./local-repo", "/etc/app/local-repo")]
    [InlineData("local:backups/r", "/etc/app/backups/r")]
    [InlineData("/srv/r", "/srv/r")]
    public void A_local_repository_is_a_folder_relative_to_the_config(string written, string expected)
    {
        Assert.Equal(expected, Parse($"repository: {written}\n" + Workloads).Repository);
    }

    [Theory]
    [InlineData("repository: s3:bucket/prefix\n", "kintsugi.yaml:1:13: repository: 's3:bucket/prefix' is not an S3 repository URL; write s3:https://HOST/BUCKET[/PREFIX]")]
    [InlineData("repository: s3:https://host\n", "is not an S3 repository URL")]
    [InlineData("repository: azure:c:prefix\n", "kintsugi.yaml:1:13: repository: 'azure:c:prefix' is not an Azure repository URL; write azure:CONTAINER:/PREFIX")]
    [InlineData("repository: \"azure:\"\n", "is not an Azure repository URL")]
    public void A_malformed_remote_repository_is_refused_with_the_form_to_write(string yaml, string expected)
    {
        Assert.Contains(expected, Refused(yaml + Workloads), StringComparison.Ordinal);
    }

    [Fact]
    public void Copies_are_a_list_of_folders_or_urls_each_with_optional_credentials_and_upload_limit()
    {
        var config = Parse("""
            repository: ./local-repo
            password-file: secrets/main
            copies:
              - ./offsite-repo
              - repository: s3:https://s3.amazonaws.com/bucket/ckpt
                password-file: secrets/s3
                limit-upload: 50M
              - { repository: "azure:ckpt:/job", key-file: keys/az.key, limit-upload: 1024 }
            workloads:
              t:
                command: [a]
            """);
        Assert.Equal("/etc/app/local-repo", config.Repository);
        Assert.Equal(3, config.Copies.Count);
        Assert.Equal("/etc/app/offsite-repo", config.Copies[0].Repository);
        Assert.Null(config.Copies[0].PasswordFile);
        Assert.Equal(0, config.Copies[0].LimitUpload);
        Assert.Equal("s3:https://s3.amazonaws.com/bucket/ckpt", config.Copies[1].Repository);
        Assert.Equal("/etc/app/secrets/s3", config.Copies[1].PasswordFile);
        Assert.Equal(50L << 20, config.Copies[1].LimitUpload);
        Assert.Equal("azure:ckpt:/job", config.Copies[2].Repository);
        Assert.Equal("/etc/app/keys/az.key", config.Copies[2].KeyFile);
        Assert.Equal(1024, config.Copies[2].LimitUpload);
    }

    [Fact]
    public void Without_copies_the_list_is_empty()
    {
        Assert.Empty(Parse(Workloads).Copies);
        Assert.Empty(Parse("copies: []\n" + Workloads).Copies);
    }

    [Theory]
    [InlineData("repository: ./r\ncopies: [./r]\n", "kintsugi.yaml:2:10: copies[0]: /etc/app/r is the main 'repository' itself; a copy must go to another repository")]
    [InlineData("repository: /etc/app/r/\ncopies: [r]\n", "/etc/app/r is the main 'repository' itself")]
    [InlineData("copies: [.kintsugi/repository]\n", "is the main 'repository' itself")]
    [InlineData("repository: s3:https://h/b/p\ncopies: [\"s3:https://h/b/p/\"]\n", "s3:https://h/b/p/ is the main 'repository' itself")]
    [InlineData("copies: [./a, a]\n", "kintsugi.yaml:1:15: copies[1]: /etc/app/a is listed twice in 'copies'; remove one")]
    [InlineData("copies:\n  -\n", "copies[0]: an empty copy; give a repository URL or folder")]
    [InlineData("copies: [\"\"]\n", "copies[0]: an empty copy")]
    [InlineData("copies:\n", "copies: no value; give a list, or [] for none")]
    [InlineData("copies: ./a\n", "copies: expected a list")]
    [InlineData("copies:\n  - { repo: ./a }\n", "kintsugi.yaml:2:7: copies[0]: unknown field 'repo' (expected one of: repository, password-file, key-file, limit-upload)")]
    [InlineData("copies:\n  - { password-file: p }\n", "copies[0]: a copy needs 'repository'")]
    [InlineData("copies:\n  - { repository: ./a, password-file: p, key-file: k }\n", "copies[0].key-file: this and 'password-file' each open the copy's repository; keep one")]
    [InlineData("copies:\n  - { repository: ./a, limit-upload: fast }\n", "copies[0].limit-upload: expected bytes per second, a positive whole number optionally with K, M or G (e.g. 50M), got 'fast'")]
    [InlineData("copies:\n  - { repository: ./a, limit-upload: 0 }\n", "got '0'")]
    [InlineData("copies:\n  - { repository: \"s3:nope\" }\n", "copies[0].repository: 's3:nope' is not an S3 repository URL")]
    public void A_mistake_in_copies_is_one_line_naming_where_and_what_to_do(string yaml, string expected)
    {
        string message = Refused(yaml + Workloads);
        Assert.Contains(expected, message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', message);
    }

    [Theory]
    [InlineData("s3:https://AKIA:secret@s3.example.com/bucket/p?X-Amz-Signature=abc", "s3:https://s3.example.com/bucket/p")]
    [InlineData("azure:ckpt:/job?sv=2024&sig=secret", "azure:ckpt:/job")]
    [InlineData("/srv/repo", "/srv/repo")]
    public void A_repository_is_labelled_without_secrets(string repository, string label)
    {
        Assert.Equal(label, RepositoryLabel.Of(repository));
    }

    [Fact]
    public void Protection_is_low_priority_without_an_upload_limit_unless_the_config_says_otherwise()
    {
        var defaults = Parse(Workloads);
        Assert.Equal(ProtectionPriority.Low, defaults.ProtectionPriority);
        Assert.Equal(0, defaults.LimitUpload);
        var set = Parse("protection: { priority: idle, limit-upload: 2M }\n" + Workloads);
        Assert.Equal(ProtectionPriority.Idle, set.ProtectionPriority);
        Assert.Equal(2L << 20, set.LimitUpload);
        Assert.Equal(ProtectionPriority.Normal, Parse("protection:\n  priority: normal\n" + Workloads).ProtectionPriority);
    }

    [Theory]
    [InlineData("protection: { priority: high }\n", "kintsugi.yaml:1:25: protection.priority: expected low, idle or normal, got 'high'")]
    [InlineData("protection: { nice: 10 }\n", "protection: unknown field 'nice' (expected one of: priority, limit-upload)")]
    [InlineData("protection: { limit-upload: 2 MB }\n", "protection.limit-upload: expected bytes per second")]
    [InlineData("protection: low\n", "protection: expected a mapping")]
    public void A_mistake_in_protection_is_one_line_naming_where_and_what_to_do(string yaml, string expected)
    {
        Assert.Contains(expected, Refused(yaml + Workloads), StringComparison.Ordinal);
    }
}
