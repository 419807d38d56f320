"""Image features for FID-style metrics: image sources -> resize -> network -> statistics.

One module per role (nothing is imported here, so ``import genbench.features`` stays cheap):

* sources of images: ``decode`` (bytes -> uint8 RGB, errors naming the file), ``folder``
  (image folders), ``npz`` (npz fields, streamed ``arr_0`` images), ``hf_datasets``
  (``hf:PATH[:SPLIT]``), ``sources`` (what a ``PATH`` names, as loaders), ``crop`` (ADM's centre
  crop), ``quantise`` (float model outputs -> uint8, by rule);
* the network's input: ``resize`` (the resize modes of clean-fid);
* extractors: ``weights`` (lookup, sha256, trust gate), ``extractor_base`` (``ResizingExtractor``),
  ``extractor_inception``, ``extractor_torchscript``, ``extractor_clip`` (CLIP-FID, CMMD's
  variant), ``extractor_dinov2`` (FD_DINOv2), ``build`` (names -> extractors, their identity);
* statistics and metrics: ``cache`` (statistics files and their cache), ``accumulate`` (streamed
  float64 sums and a capped sample of rows), ``statistics`` (sources -> features -> mean and
  covariance), ``fid`` (FID / FD, sFID, IS, KID, precision/recall, density/coverage, CMMD, Vendi
  with their conventions), ``commands`` (``genbench fid``, ``is``, ``stats``).
"""
