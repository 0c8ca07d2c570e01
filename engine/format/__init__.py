"""Every byte of the .hsic format, one submodule per part (the spec is docs/format.md):

- :mod:`engine.format.container`: the file: prefix, header, tile index, CRCs, the scene section, the optional trailer;
- :mod:`engine.format.header_codec`: the compact header (per-band metadata as typed columns), what writers write;
- :mod:`engine.format.tile`: a tile payload: flags, no-data and NaN masks, the error-bounded length prefix;
- :mod:`engine.format.overview`: the overview section stored in the trailer (magic, descriptor, index);
- :mod:`engine.format.residual`: the residual section of an error-bounded tile;
- :mod:`engine.format.strings`: how learned codecs pack their rANS strings, counts and tile means;
- :mod:`engine.format.klt`: the fixed-size records of the ``klt`` codec's stage and tile bytes.

Nothing else in engine/ packs or unpacks format bytes. The codec numbers stored in files are the
append-only table of :mod:`engine.codec_ids`.
"""
