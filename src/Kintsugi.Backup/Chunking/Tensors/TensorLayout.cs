namespace Kintsugi.Backup.Chunking.Tensors;

/// <summary>
/// One tensor's bytes inside a container file. <see cref="Offset"/> and <see cref="Length"/> are
/// absolute in the file. <see cref="DType"/> is the container's own spelling normalised to upper
/// case (F32, F16, BF16, F8_E4M3, F8_E5M2, F64, I64, I32, I16, I8, U8, BOOL, Q4_0, …) or "UNKNOWN".
/// <see cref="ElementSize"/> is the size in bytes of one element where the bytes are plain
/// fixed-size elements (1, 2, 4 or 8), and 0 where they are not (quantised blocks, unknown).
/// </summary>
public sealed record TensorSegment(string Name, string DType, IReadOnlyList<long> Shape, long Offset, long Length, int ElementSize);

/// <summary>
/// The tensors found in a container file, sorted by offset, never overlapping, each inside the file.
/// Bytes between tensors (headers, pickles, zip records, padding) are not listed: whoever splits the
/// file treats them as opaque bytes.
/// </summary>
/// <param name="Format">"safetensors", "pytorch-zip", "npy", "npz", "gguf", "onnx", or "onnx-external" (a file of initializer bytes named by an ONNX model beside it).</param>
public sealed record TensorLayout(string Format, IReadOnlyList<TensorSegment> Tensors);
