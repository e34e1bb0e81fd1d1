"""retrain's Python package.

- retrain.client: the coordinator's gRPC client (RetrainClient), and the
  `retrain-client` program that builds a dataset and waits for it.
- retrain.data: a PyTorch IterableDataset over a retrain dataset, of
  TFRecord or WebDataset shards (needs torch and torchvision).
- retrain.shards: the shards' readers, with no dependency on torch.
- retrain.v1: the API's stubs, generated from proto/ when the package is
  built.
"""

from retrain._version import __version__

__all__ = ["__version__"]
