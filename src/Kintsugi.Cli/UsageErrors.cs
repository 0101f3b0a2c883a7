using System.CommandLine;
using System.CommandLine.Parsing;

namespace Kintsugi.Cli;

/// <summary>
/// Command-line mistakes System.CommandLine does not name well: a mistyped command (it says only
/// "Required command was not provided") and an unknown option where a command takes paths (it takes
/// the option as a path). Each gives one line that names the word, with a suggestion when one is close.
/// </summary>
internal static class UsageErrors
{
    /// <summary>The message for the first such mistake in <paramref name="parse"/>, or null.</summary>
    public static string? Find(ParseResult parse)
    {
        var result = parse.CommandResult;
        var command = result.Command;
        string see = $"(see `{CommandPath(result)} --help`)";
        if (command.Subcommands.Count > 0 && parse.UnmatchedTokens.FirstOrDefault(t => !IsOptionLike(t)) is { } word)
        {
            var names = command.Subcommands.Where(c => !c.Hidden).SelectMany(c => c.Aliases.Prepend(c.Name));
            return $"unknown command '{word}'{Suggest(word, names)} {see}";
        }
        if (parse.UnmatchedTokens.FirstOrDefault(IsOptionLike) is { } option)
        {
            return $"unknown option '{option}'{Suggest(option, OptionNames(result))} {see}";
        }
        // Where a command takes paths, System.CommandLine gives it any word, even one like an option.
        // Such a word before `--` is a mistyped option; after `--` it is a path.
        int doubleDash = IndexOf(parse.Tokens, parse.Tokens.FirstOrDefault(t => t.Type == TokenType.DoubleDash));
        for (SymbolResult? r = result; r is CommandResult c; r = c.Parent)
        {
            foreach (var (argument, token) in c.Children.OfType<ArgumentResult>().SelectMany(a => a.Tokens.Select(t => (a.Argument, t))))
            {
                if (IsOptionLike(token.Value) && (doubleDash < 0 || IndexOf(parse.Tokens, token) < doubleDash))
                {
                    // A snapshot id never starts with '-': no hint about paths there.
                    return argument.Name == "snapshot"
                        ? $"unknown option '{token.Value}'{Suggest(token.Value, OptionNames(result))} {see}"
                        : $"unknown option '{token.Value}'{Suggest(token.Value, OptionNames(result))} (a path that starts with '-' goes after `--`; see `{CommandPath(result)} --help`)";
                }
            }
        }
        return null;
    }

    /// <summary>"kintsugi key add" for the command <paramref name="result"/> stands for.</summary>
    public static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r is CommandResult c; r = c.Parent)
        {
            names.Add(c.Parent is null ? "kintsugi" : c.Command.Name);
        }
        names.Reverse();
        return string.Join(' ', names);
    }

    private static bool IsOptionLike(string token) => token.Length > 1 && token[0] == '-';

    private static int IndexOf(IReadOnlyList<Token> tokens, Token? token)
    {
        if (token is null)
        {
            return -1;
        }
        for (int i = 0; i < tokens.Count; i++)
        {
            if (ReferenceEquals(tokens[i], token))
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>The options <paramref name="result"/>'s command takes: its own, and those its parents share with it.</summary>
    private static IEnumerable<string> OptionNames(CommandResult result)
    {
        var options = new List<Option>(result.Command.Options);
        for (var r = result.Parent; r is CommandResult c; r = c.Parent)
        {
            options.AddRange(c.Command.Options.Where(o => o.Recursive));
        }
        return options.Where(o => !o.Hidden).SelectMany(o => o.Aliases.Prepend(o.Name));
    }

    /// <summary>"; did you mean 'X'?" for the closest of <paramref name="candidates"/>, when one is close enough to be a typo.</summary>
    internal static string Suggest(string word, IEnumerable<string> candidates)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            int d = Distance(word, candidate);
            if (d < bestDistance)
            {
                (best, bestDistance) = (candidate, d);
            }
        }
        int allowed = word.TrimStart('-').Length switch { <= 1 => 0, <= 3 => 1, _ => 2 };
        return best is not null && bestDistance <= allowed ? $"; did you mean '{best}'?" : "";
    }

    /// <summary>Edits (insert, delete, replace, swap two neighbours) that turn <paramref name="a"/> into <paramref name="b"/>.</summary>
    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }
        for (int j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 1]) ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }
        return d[a.Length, b.Length];
    }
}
