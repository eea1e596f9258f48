import numpy as np
from skimage import transform

from pipeline.factors.resample import pyramid_expand, pyramid_reduce


def test_expand_equals_scikit_image(digits):
    images = digits[0][:20] / 255.0
    ours = pyramid_expand(images, 4)
    ref = np.stack([transform.pyramid_expand(im, upscale=4, order=3) for im in images])
    assert ours.shape == (20, 112, 112)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


def test_reduce_equals_scikit_image(digits):
    binary = pyramid_expand(digits[0][:20] / 255.0, 4) > 0.5
    ours = pyramid_reduce(binary.astype(float), 4)
    ref = np.stack([transform.pyramid_reduce(b.astype(float), downscale=4, order=3) for b in binary])
    assert ours.shape == (20, 28, 28)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


def test_expand_then_reduce_keeps_a_digit_close():
    rng = np.random.default_rng(1)
    image = np.zeros((1, 28, 28))
    image[0, 8:20, 12:16] = rng.uniform(0.8, 1.0, (12, 4))
    back = pyramid_reduce(pyramid_expand(image, 4), 4)
    assert np.abs(back - image).mean() < 0.05
