using Kintsugi.Backup.Engine;

namespace Kintsugi.Backup.Tests;

public sealed class PathPatternTests
{
    private static bool Match(string pattern, string path, bool isDirectory = false, bool ignoreCase = false) =>
        PathPattern.Parse(pattern, ignoreCase).Matches(path, isDirectory);

    [Theory]
    [InlineData("*.pt", "/a/b/x.pt")]
    [InlineData("*.pt", "/x.pt")]
    [InlineData("x.pt", "/deep/down/x.pt")]
    [InlineData("cache/tmp", "/x/cache/tmp")]
    [InlineData("cache/tmp", "/cache/tmp")]
    [InlineData("/data/cache", "/data/cache")]
    [InlineData("/data/*.log", "/data/run.log")]
    [InlineData("/data/**/*.log", "/data/run.log")]
    [InlineData("/data/**/*.log", "/data/a/b/c/run.log")]
    [InlineData("/**/*.log", "/run.log")]
    [InlineData("a/**/b", "/a/b")]
    [InlineData("a/**/b", "/x/a/y/z/b")]
    [InlineData("ckpt-?", "/runs/ckpt-7")]
    [InlineData("ckpt-[0-9]", "/runs/ckpt-3")]
    [InlineData("ckpt-[!0-9]", "/runs/ckpt-x")]
    [InlineData("ckpt-[^0-9]", "/runs/ckpt-x")]
    [InlineData("[]x]", "/]")]
    [InlineData("a\\*b", "/a*b")]
    [InlineData("*", "/anything")]
    [InlineData("**", "/anything/at/all")]
    [InlineData("/", "/etc/passwd")]
    [InlineData("data//cache/", "/data/cache")]
    [InlineData("/a/./x/../b", "/a/b")]
    public void Matches(string pattern, string path) =>
        Assert.True(Match(pattern, path, isDirectory: pattern.EndsWith('/')), $"{pattern} should match {path}");

    [Theory]
    [InlineData("*.pt", "/a/b/x.pth")]
    [InlineData("*.pt", "/a/b/x.PT")]
    [InlineData("cache/tmp", "/x/cache/tmpfoo")]
    [InlineData("cache/tmp", "/x/cache/other/tmp")]
    [InlineData("/data/cache", "/x/data/cache")]
    [InlineData("/data/*.log", "/data/sub/run.log")]
    [InlineData("a/**/b", "/a/c")]
    [InlineData("ckpt-?", "/runs/ckpt-10")]
    [InlineData("ckpt-[0-9]", "/runs/ckpt-x")]
    [InlineData("ckpt-[!0-9]", "/runs/ckpt-3")]
    [InlineData("a\\*b", "/axxb")]
    [InlineData("a*", "/b/ca")]
    public void Does_not_match(string pattern, string path) =>
        Assert.False(Match(pattern, path), $"{pattern} should not match {path}");

    [Theory]
    [InlineData("cache", "/home/u/cache/a/b.bin")]
    [InlineData("/home/u", "/home/u/x")]
    [InlineData("*.d", "/etc/conf.d/x/y")]
    [InlineData("cache/", "/home/u/cache/file")]
    public void A_pattern_matching_a_folder_covers_everything_under_it(string pattern, string path) =>
        Assert.True(Match(pattern, path), $"{pattern} should cover {path}");

    [Fact]
    public void A_trailing_slash_matches_folders_only()
    {
        var p = PathPattern.Parse("cache/");
        Assert.True(p.DirectoryOnly);
        Assert.True(p.Matches("/a/cache", isDirectory: true));
        Assert.False(p.Matches("/a/cache", isDirectory: false));
        // A path under a folder named cache: its parent is a folder, so it is covered.
        Assert.True(p.Matches("/a/cache/f", isDirectory: false));
    }

    [Fact]
    public void Ignore_case_matches_letters_of_either_case_also_in_classes()
    {
        Assert.True(Match("*.PT", "/a/x.pt", ignoreCase: true));
        Assert.True(Match("/Data/Cache", "/data/CACHE/x", ignoreCase: true));
        Assert.True(Match("run-[a-c]", "/RUN-B", ignoreCase: true));
        Assert.False(Match("run-[a-c]", "/RUN-B"));
        Assert.False(Match("run-[a-c]", "/run-d", ignoreCase: true));
    }

    [Fact]
    public void Later_patterns_win_and_a_negation_includes_again()
    {
        var filter = new PathFilter([PathPattern.Parse("*.log"), PathPattern.Parse("!keep.log")]);
        Assert.True(filter.IsExcluded("/a/run.log", false));
        Assert.False(filter.IsExcluded("/a/keep.log", false));
        Assert.False(filter.IsExcluded("/a/run.txt", false));

        var reversed = new PathFilter([PathPattern.Parse("!keep.log"), PathPattern.Parse("*.log")]);
        Assert.True(reversed.IsExcluded("/a/keep.log", false));
    }

    [Fact]
    public void A_negation_can_bring_back_a_folder_out_of_everything()
    {
        var filter = new PathFilter([PathPattern.Parse("/home/u/*"), PathPattern.Parse("!/home/u/Documents")]);
        Assert.True(filter.IsExcluded("/home/u/Music", true));
        Assert.False(filter.IsExcluded("/home/u/Documents", true));
        Assert.False(filter.IsExcluded("/home/u/Documents/a.txt", false));
        Assert.False(filter.IsExcluded("/home/u", true));
    }

    [Fact]
    public void An_empty_filter_excludes_nothing()
    {
        var filter = new PathFilter([]);
        Assert.True(filter.IsEmpty);
        Assert.False(filter.IsExcluded("/a", true));
    }

    [Fact]
    public void Negation_and_text_are_kept()
    {
        var p = PathPattern.Parse("!/x/*.bin");
        Assert.True(p.Negated);
        Assert.Equal("!/x/*.bin", p.Text);
        Assert.True(p.Matches("/x/a.bin", false));
    }

    [Theory]
    [InlineData("/data/**/*.pt", "/data", true)]
    [InlineData("/data/**/*.pt", "/data/a/b", true)]
    [InlineData("/data/**/*.pt", "/", true)]
    [InlineData("/data/**/*.pt", "/other", false)]
    [InlineData("/data/run-*/ckpt", "/data/run-1", true)]
    [InlineData("/data/run-*/ckpt", "/data/old-1", false)]
    [InlineData("/data/run-*/ckpt", "/data/run-1/ckpt/deep", true)]
    [InlineData("*.pt", "/anywhere/at/all", true)]
    [InlineData("/a/b", "/a/b", true)]
    [InlineData("/a/b", "/a/c", false)]
    public void Could_match_under_says_whether_a_folder_must_be_entered(string pattern, string directory, bool expected) =>
        Assert.Equal(expected, PathPattern.Parse(pattern).CouldMatchUnder(directory));

    [Theory]
    [InlineData("data[", "'['")]
    [InlineData("/a/[abc/b", "'['")]
    [InlineData("[z-a]", "backwards")]
    [InlineData("trailing\\", "backslash")]
    [InlineData("", "empty")]
    [InlineData("!", "empty")]
    public void A_malformed_pattern_is_an_error_naming_it(string pattern, string problem)
    {
        var e = Assert.Throws<KintsugiException>(() => PathPattern.Parse(pattern));
        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.Contains($"\"{pattern}\"", e.Message, StringComparison.Ordinal);
        Assert.Contains(problem, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Star_patterns_agree_with_a_plain_reference_on_random_names()
    {
        int seed = Environment.TickCount;
        Console.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        const string alphabet = "ab.";
        for (int round = 0; round < 2000; round++)
        {
            string name = new(Enumerable.Range(0, rng.Next(1, 7)).Select(_ => alphabet[rng.Next(alphabet.Length)]).ToArray());
            string glob = new(Enumerable.Range(0, rng.Next(1, 5)).Select(_ => "ab.*?"[rng.Next(5)]).ToArray());
            if (glob is "." or "..")
            {
                continue; // a pattern's . and .. are path steps, not names
            }
            bool expected = System.Text.RegularExpressions.Regex.IsMatch(name,
                "^" + string.Concat(glob.Select(c => c switch { '*' => ".*", '?' => ".", _ => System.Text.RegularExpressions.Regex.Escape(c.ToString()) })) + "$");
            Assert.True(expected == Match("/" + glob, "/" + name), $"seed {seed}: glob {glob} on {name} should be {expected}");
        }
    }
}
