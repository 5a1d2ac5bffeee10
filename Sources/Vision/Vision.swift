// Vision: everything between an image file and the float tensor a backbone eats, with the exact
// semantics of Pillow 13 + torchvision 0.29.
//
// - `ImageDecoder.decode(path:)` / `decode(data:name:)` -> `RGBImage` (8-bit RGB, HWC): JPEG through
//   libturbojpeg, PNG through libpng, as Pillow's `Image.open(f).convert("RGB")`; typed `VisionError`s
//   for empty, truncated, garbage, unsupported (GIF, WebP, BMP, TIFF, ...) and oversized files.
//   `ImageDecoder.header(...)` reads dimensions only.
// - `Transforms.validation(img, into:)`: Resize(256) + CenterCrop(224) + ToTensor + Normalize fused,
//   CHW float32 written in place (e.g. into a batch). `Transforms.resizeCenterCrop` gives the uint8 crop.
//   Resizing is Pillow's fixed-point antialiased bilinear (`PillowResample`), bit-exact.
// - `Transforms.augment(img, rng:)` / `training(img, rng:into:)`: RandomResizedCrop(224) +
//   RandomHorizontalFlip(0.5), drawing from `AugmentRNG` (SplitMix64 keyed by seed, epoch, image index).
// - `ImageFolder.scan(root:)`, `DatasetLayout.detect(root:)`: torchvision's ImageFolder listing.
// - `PNGWriter`, `renderPreviewGrid` / `writePreviewGrid` (`probe preview`).
// (`probe bench vision` is in module Benchmarks.)
