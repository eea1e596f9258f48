import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import medial_axis

from pipeline.factors.morphology import analyse
from pipeline.factors.tiling import tile


def _blobs(n=6, size=40, seed=0):
    rng = np.random.default_rng(seed)
    batch = np.zeros((n, size, size), bool)
    for i in range(n):
        r, c = rng.integers(5, size - 15, 2)
        batch[i, r : r + rng.integers(3, 10), c : c + rng.integers(3, 10)] = True
    batch[-1] = False  # a blank image takes part too
    return batch


def test_pack_unpack_round_trip():
    batch = _blobs()
    tiling = tile(batch, margin=2)
    assert np.array_equal(tiling.unpack(tiling.pack(batch)), batch)
    assert tiling.mosaic_shape[0] * tiling.mosaic_shape[1] < batch[0].size * len(batch)


def test_distance_on_mosaic_equals_per_image():
    batch = _blobs()
    tiling = tile(batch, margin=1)
    ours = tiling.unpack(ndi.distance_transform_edt(tiling.pack(batch)), 0.0)
    ref = np.stack([ndi.distance_transform_edt(b) for b in batch])
    np.testing.assert_array_equal(ours, ref)


def test_medial_axis_thickness_matches_per_image(digits):
    images = digits[0][:30]
    morph = analyse(images, 4, np.random.default_rng(0))
    per_image = []
    for b in morph.binary:
        skel, dist = medial_axis(b, return_distance=True, rng=0)
        per_image.append(2 * dist[skel].mean() / 4)
    np.testing.assert_allclose(morph.thickness, per_image, rtol=0.03)
