"""How tests/data/v1-*.edgb were made: real bundles of format 1, kept so format 2 must decode them.

Run in a checkout of commit 9313f59 (the last one writing format 1), with the shipped weights:

    python tests/data/make_v1_bundles.py WTA_TRAIN/images/envA_20.JPG tests/data

It writes a 384x256 crop of a wta-train frame (Apache-2.0) as v1-photo.jpg with its blade mask,
a jpeg-exact bundle and a ROI-eML bundle (Bit-swap blade seeded by the background) of it, and
the SHA-256 of what that checkout decoded them to (v1-decoded.json).
"""
import hashlib
import io
import json
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from edge.codec.container import encode_bundle, decode_bundle, FORMAT_VERSION
from edge.codec.imageio import read_image
from edge.codec.metadata import source_metadata_from_bytes
from edge.codec.photo import CodingSettings, Coders, compress_pixels, decompress_bundle
assert FORMAT_VERSION == 1
out = Path(sys.argv[2])
src = Image.open(sys.argv[1]).convert("RGB")
crop = src.crop((672, 224, 672 + 384, 224 + 256))
buf = io.BytesIO(); crop.save(buf, "JPEG", quality=90); data = buf.getvalue()
(out / "v1-photo.jpg").write_bytes(data)
mask_img = Image.open(sys.argv[1].replace("images", "masks").replace(".JPG", ".png")).convert("L").crop((672, 224, 1056, 480))
mask = np.array(mask_img) > 127
Image.fromarray((mask * 255).astype(np.uint8)).save(out / "v1-photo.mask.png")
image = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
meta = source_metadata_from_bytes(data, "v1-photo.jpg", "v1-photo.jpg")
coders = Coders()
hashes = {}
for name, settings in [("v1-jpeg-exact.edgb", CodingSettings(mode="roi", blade="jpeg-exact", bg_quality=0)),
                       ("v1-bitswap-roi.edgb", CodingSettings(mode="roi", blade="lossless", bg_quality=0))]:
    b = encode_bundle(compress_pixels(image, meta, settings, coders, mask, source_bytes=data).bundle)
    (out / name).write_bytes(b)
    dec = decompress_bundle(decode_bundle(b), coders)
    hashes[name] = hashlib.sha256(np.ascontiguousarray(dec.image).tobytes()).hexdigest()
    print(name, len(b), mask.mean())
(out / "v1-decoded.json").write_text(json.dumps(hashes, indent=1) + "\n")
