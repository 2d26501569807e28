"""The check the report tests share: an HTML artifact embeds real, non-empty PNG figures."""

import base64
import re

PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def png_images(page: str, at_least: int) -> list[bytes]:
    """The PNGs embedded in `page`; asserts there are at least `at_least`, each a PNG of a drawn figure."""
    images = [base64.b64decode(data) for data in PNG.findall(str(page))]
    assert len(images) >= at_least, f"{len(images)} images in the page, expected at least {at_least}"
    for image in images:
        assert image.startswith(b"\x89PNG\r\n\x1a\n") and len(image) > 5_000, len(image)  # a blank one is ~2 kB
    return images
