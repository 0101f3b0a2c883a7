using System.Buffers.Binary;
using System.Text;

namespace Kintsugi.Micro;

/// <summary>What a benchmark buffer holds.</summary>
public enum DataKind
{
    /// <summary>fp32 weights drawn from N(0, 0.02), little-endian: what a model checkpoint mostly is.</summary>
    Fp32Weights,

    /// <summary>Uniform random bytes: already compressed or encrypted content.</summary>
    Random,

    /// <summary>English-like prose (Zipf-distributed words, punctuation, numbers, line breaks).</summary>
    Text,
}

/// <summary>Deterministic benchmark inputs: the same seed gives the same bytes in every process.</summary>
public static class TestData
{
    public const int MiB = 1 << 20;
    public const int Seed = 20240601;

    public static byte[] Create(DataKind kind, int length, int seed = Seed)
    {
        var rng = new Random(seed);
        return kind switch
        {
            DataKind.Fp32Weights => Fp32Weights(length, rng),
            DataKind.Random => RandomBytes(length, rng),
            DataKind.Text => Text(length, rng),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
    }

    public static byte[] RandomBytes(int length, Random rng)
    {
        var data = new byte[length];
        rng.NextBytes(data);
        return data;
    }

    /// <summary>fp32 N(0, sigma) by Box-Muller, little-endian.</summary>
    public static byte[] Fp32Weights(int length, Random rng, double sigma = 0.02)
    {
        var data = new byte[length];
        for (int i = 0; i + 4 <= length; i += 4)
        {
            BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i), (float)(sigma * Gaussian(rng)));
        }
        return data;
    }

    /// <summary>
    /// The same fp32 weights after a small training step: every weight moved by N(0, sigma * relative),
    /// so the sign and exponent bytes mostly stay and the mantissas change (the "base" of a delta).
    /// </summary>
    public static byte[] MovedCopy(ReadOnlySpan<byte> fp32, double sigma, double relative, int seed = Seed + 1)
    {
        var rng = new Random(seed);
        var moved = fp32.ToArray();
        for (int i = 0; i + 4 <= moved.Length; i += 4)
        {
            float w = BinaryPrimitives.ReadSingleLittleEndian(moved.AsSpan(i));
            BinaryPrimitives.WriteSingleLittleEndian(moved.AsSpan(i), w + (float)(sigma * relative * Gaussian(rng)));
        }
        return moved;
    }

    private static double Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble();
        double u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    private static readonly string[] s_words =
    [
        "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not", "he",
        "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were", "their", "one",
        "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no", "she",
        "other", "its", "may", "these", "what", "them", "than", "some", "him", "time", "into", "only", "do", "could", "new",
        "about", "two", "first", "then", "also", "after", "any", "like", "should", "our", "well", "such", "where", "most",
        "model", "backup", "snapshot", "repository", "training", "checkpoint", "weights", "layer", "gradient", "epoch",
        "storage", "network", "system", "process", "memory", "value", "result", "change", "people", "world", "state",
        "between", "under", "through", "because", "without", "against", "during", "although", "however", "therefore",
        "government", "information", "development", "important", "different", "following", "experiment", "measurement",
        "compression", "encryption", "deduplication", "performance", "throughput", "latency", "distribution", "parameter",
        "river", "mountain", "village", "morning", "evening", "summer", "winter", "history", "language", "question",
        "answer", "problem", "reason", "example", "number", "group", "company", "country", "city", "school", "family",
    ];

    /// <summary>Prose with Zipf-distributed words: compresses like natural text, not like a repeated file.</summary>
    public static byte[] Text(int length, Random rng)
    {
        var cumulative = new double[s_words.Length];
        double total = 0;
        for (int i = 0; i < s_words.Length; i++)
        {
            total += 1.0 / (i + 1);
            cumulative[i] = total;
        }
        var sb = new StringBuilder(length + 256);
        int sentences = 0;
        while (sb.Length < length)
        {
            int words = rng.Next(5, 22);
            for (int w = 0; w < words; w++)
            {
                string word;
                if (rng.Next(40) == 0)
                {
                    word = rng.Next(100_000).ToString(System.Globalization.CultureInfo.InvariantCulture);
                }
                else
                {
                    int idx = Array.BinarySearch(cumulative, rng.NextDouble() * total);
                    word = s_words[idx < 0 ? Math.Min(~idx, s_words.Length - 1) : idx];
                }
                if (w == 0)
                {
                    sb.Append(char.ToUpperInvariant(word[0])).Append(word, 1, word.Length - 1);
                }
                else
                {
                    sb.Append(word);
                }
                if (w < words - 1)
                {
                    sb.Append(rng.Next(12) == 0 ? ", " : " ");
                }
            }
            sb.Append(rng.Next(10) == 0 ? '?' : '.');
            sentences++;
            sb.Append(sentences % rng.Next(3, 8) == 0 ? "\n\n" : " ");
        }
        return Encoding.UTF8.GetBytes(sb.ToString(0, length));
    }
}
