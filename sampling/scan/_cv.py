"""OpenCV, typed loosely on purpose.

OpenCV 5's bundled stubs type every array as ``Mat | ndarray[integer |
floating]``, which would need a cast at each of the many calls here, where
the arrays are ``uint8`` or ``float32`` by construction. The arrays are typed
at our own function boundaries instead.
"""

from typing import Any

import cv2 as _cv2

cv2: Any = _cv2
