// Weights: PyTorch and safetensors weight files without Python.
//
// Reading (`loadStateDict(path:)`, which sniffs the format from the bytes):
//   - torch.save zip files (torch >= 1.6): Zip.swift finds `<folder>/data.pkl` and `<folder>/data/<key>`
//     (any folder name), STORED entries only, ZIP64 aware.
//   - torch.save legacy files: magic, protocol and sys_info pickles, the state_dict pickle, the storage key
//     list, then each storage as a u64 element count and raw little-endian elements (TorchReader.swift).
//   - safetensors (Safetensors.swift).
// The pickle machine (Pickle.swift) runs only the opcodes a state_dict uses and names only allow-listed
// globals (OrderedDict, torch._utils._rebuild_tensor_v2/_rebuild_parameter, torch.*Storage); anything else
// is refused by name before it could be used. Tensors are views (offset, size, stride) into shared
// storages; Materialize.swift checks each view against its storage and copies it out contiguous as float32
// (int64 also kept exactly). Bad bytes give a WeightsError, never a crash.
//
// Writing: `writeTorchZip` (loads in torch.load with weights_only=True; see tools/check_torch_load.py)
// and `writeSafetensors`. Reporting: `inspectReport` for `probe weights inspect`.
// Sources of torchvision's official files: `WeightSource` (explicit path, cache/weights/, verified download).
