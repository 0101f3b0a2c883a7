using Kintsugi.Backup.Chunking.Tensors;

namespace Kintsugi.Backup.Tests;

/// <summary>Which tensors are cut into pieces, and that the README says so.</summary>
public sealed class TensorSplitterTests
{
    [Fact]
    public void A_tensor_under_the_threshold_stays_in_the_opaque_bytes_and_one_at_it_is_split()
    {
        long min = TensorSplitter.MinTensorBytes;
        var layout = new TensorLayout("safetensors",
        [
            new TensorSegment("bias", "F32", [(min - 4) / 4], 100, min - 4, 4),
            new TensorSegment("weight", "F32", [min / 4], 100 + min, min, 4),
        ]);

        var (ranges, tensors) = TensorSplitter.Plan(layout);

        Assert.Equal(["weight"], tensors.Select(t => t.Name));
        Assert.Equal(
            [new SplitRange(0, 100 + min, -1, 0), new SplitRange(100 + min, min, 0, 0), new SplitRange(100 + 2 * min, -1, -1, 0)],
            ranges);
    }

    [Fact]
    public void The_README_states_the_threshold_below_which_tensors_are_not_split()
    {
        string readme = File.ReadAllText(Path.Combine(RepositoryRoot(), "README.md"));
        string flat = string.Join(' ', readme.Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries));

        Assert.Contains($"Tensors under {TensorSplitter.MinTensorBytes / 1024} KiB (biases, norms) are not split", flat, StringComparison.Ordinal);
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Kintsugi.slnx")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"no folder above {AppContext.BaseDirectory} holds Kintsugi.slnx");
    }
}
