print("kernel-bench: not built yet")
