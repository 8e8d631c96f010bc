import CKernels

/// The compute kernels' run-time settings.
public enum Kernels {
    /// Threads the kernels may use. Read at start from ALBERTMOE_NUM_THREADS, else the library's default.
    public static var threads: Int {
        get { Int(ak_get_num_threads()) }
        set { ak_set_num_threads(Int32(clamping: newValue)) }
    }

    /// Gives the tensor memory blocks kept for reuse back to the system (e.g. after training, before serving).
    public static func releaseCachedMemory() { BlockCache.shared.trim() }

    /// The instruction set the kernels run with: "avx512" (SGEMM on AVX-512, the rest on AVX2/FMA), "avx2-fma"
    /// or "portable".
    public static var isa: String { String(cString: ak_kernel_isa()) }
}
