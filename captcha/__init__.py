"""Read text CAPTCHAs with two ResNet-50 forms: one-go and sequential.

    import captcha
    rec = captcha.Recognizer.from_pretrained("weights")
    rec.predict("data/9oFyb.png").one_go.text
"""
from .errors import CaptchaError, DatasetError, ImageError, LabelError, SpecError, WeightsError
from .recognizer import CharReading, Prediction, Reading, Recognizer
from .spec import CaptchaSpec

__version__ = "0.1.0"
__all__ = ["CaptchaError", "CaptchaSpec", "CharReading", "DatasetError", "ImageError", "LabelError", "Prediction",
           "Reading", "Recognizer", "SpecError", "WeightsError"]
