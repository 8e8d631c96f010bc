// `import AlbertMoE` is enough for a user's own training loop: tensors, layers and optimizers come with it.
@_exported import Layers
@_exported import Optimizers
@_exported import Tensors
