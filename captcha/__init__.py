"""Read text CAPTCHAs with two ResNet-50 forms: one-go and sequential."""
from .errors import CaptchaError, DatasetError, ImageError, LabelError, SpecError, WeightsError
from .spec import CaptchaSpec

__version__ = "0.1.0"
