"""Export: the DEL network as ONNX, a torch.export program or safetensors (`writers`),
with its metadata (`metadata`), and ONNX Runtime inference in place of the eager
network (`runtime`). `graph` is the network as a graph with fixed inputs and outputs."""
