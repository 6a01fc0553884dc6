"""Read text CAPTCHAs with two ResNet-50 forms: one-go and sequential.

    import captcha
    rec = captcha.Recognizer.from_pretrained("weights")
    rec.predict("data/9oFyb.png").answer.text
"""
from .errors import CaptchaError, DatasetError, ImageError, LabelError, SpecError, WeightsError
from .recognizer import Answer, CharReading, Prediction, Reading, Recognizer
from .spec import CaptchaSpec

__version__ = "0.1.0"
__all__ = ["Answer", "CaptchaError", "CaptchaSpec", "CharReading", "DatasetError", "ImageError", "LabelError", "Prediction",
           "Reading", "Recognizer", "SpecError", "WeightsError"]
